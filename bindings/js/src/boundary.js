// The HTTP boundary, on the main thread: every request the component (in its worker) makes
// over `wasi:http` arrives here as a message, and is checked and sent as the Rust host's
// `network.rs` does:
//
// 1. the allow-list (deny by default; a Keyvault allows only its vault's origin);
// 2. an `Authorization` header set by the component is refused (the vault's credential is
//    the host's alone);
// 3. the credential is added for the vault's origin only ([`Credential`]: a static token at
//    once, Azure tokens only after the vault's challenge names a Key Vault domain);
// 4. TLS with the public roots plus the given CA (the local vault's), connect and response
//    timeouts, and a cap on the response size.
//
// A refused request is answered `HTTP-request-denied` and nothing is sent. Answers go back as
// `wasi:http` error codes or a status, headers and the whole body.

import https from 'node:https';
import http from 'node:http';
import tls from 'node:tls';
import { checkRequest } from './frames.js';
import { parseOrigin } from './policy.js';

/** Largest response body the boundary reads, in bytes. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024 + 64 * 1024;

const DEFAULT_CONNECT_MS = 10_000;
const DEFAULT_FIRST_BYTE_MS = 30_000;
const DEFAULT_BETWEEN_BYTES_MS = 30_000;

/** How many distinct origins' allow-list decisions a boundary remembers. */
const MAX_REMEMBERED_ORIGINS = 64;

function errorCode(error) {
  switch (error?.code) {
    case 'ECONNREFUSED':
      return { tag: 'connection-refused' };
    case 'ECONNRESET':
    case 'EPIPE':
      return { tag: 'connection-terminated' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { tag: 'DNS-error', val: { rcode: error.code, infoCode: undefined } };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { tag: 'destination-unavailable' };
    case 'kvrun-connect-timeout':
      return { tag: 'connection-timeout' };
    case 'kvrun-response-timeout':
      return { tag: 'HTTP-response-timeout' };
    case 'kvrun-too-large':
      return { tag: 'HTTP-response-body-size', val: BigInt(MAX_RESPONSE_BYTES) };
    default:
      if (typeof error?.code === 'string' && (error.code.startsWith('ERR_TLS') || error.code.includes('CERT') || error.code.startsWith('SELF_SIGNED') || error.code.startsWith('UNABLE_TO'))) {
        return { tag: 'TLS-certificate-error' };
      }
      return { tag: 'internal-error', val: String(error?.message ?? error) };
  }
}

/** Sends the component's requests under one Keyvault's policy and credential. */
export class Boundary {
  /**
   * @param {{ vaultOrigin: { scheme: string, host: string, port: number }, allow: import('./policy.js').AllowList, credential: import('./credential.js').Credential, caCert?: string | Buffer }} options
   */
  constructor({ vaultOrigin, allow, credential, caCert }) {
    this.vaultOrigin = vaultOrigin;
    this.allow = allow;
    this.credential = credential;
    this.stats = { sent: 0, denied: 0, tokenRefused: 0 };
    // One secure context, made once: a `ca` list given to the agent would be concatenated
    // into its connection-pool key on every request (about 0.8 ms with the public roots).
    const secureContext = caCert ? tls.createSecureContext({ ca: [...tls.rootCertificates, String(caCert)] }) : undefined;
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, secureContext });
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  }

  /** Closes pooled connections. */
  close() {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  #isVault(origin) {
    const v = this.vaultOrigin;
    return origin.scheme === v.scheme && origin.host === v.host && origin.port === v.port;
  }

  /** The origin of `scheme://authority` and whether the allow-list lets requests go there,
   * remembered per text (the component asks for the same few origins again and again). */
  #decide(scheme, authority) {
    const key = `${scheme}://${authority}`;
    let decision = this.#decisions.get(key);
    if (decision === undefined) {
      try {
        const origin = parseOrigin(key);
        decision = { origin, allowed: this.allow.allows(origin) };
      } catch {
        decision = { origin: undefined, allowed: false };
      }
      if (this.#decisions.size >= MAX_REMEMBERED_ORIGINS) this.#decisions.clear();
      this.#decisions.set(key, decision);
    }
    return decision;
  }

  #decisions = new Map();

  /**
   * Handles one request frame from the worker (`./frames.js`). Resolves to `{ status,
   * headers: [name, Latin-1 value][], body: Uint8Array }` or `{ error }` (a `wasi:http` error
   * code); never rejects.
   */
  async handle(frame) {
    let request;
    try {
      request = checkRequest(frame);
    } catch (e) {
      this.stats.denied++;
      return { error: { tag: 'internal-error', val: e.message } };
    }
    const { origin, allowed } = this.#decide(request.scheme, request.authority);
    if (origin === undefined) {
      this.stats.denied++;
      return { error: { tag: 'HTTP-request-URI-invalid' } };
    }
    if (!allowed) {
      this.stats.denied++;
      return { error: { tag: 'HTTP-request-denied' } };
    }
    const headers = {};
    for (const [name, value] of request.headers) {
      if (name === 'authorization' || name === 'proxy-authorization' || name === 'host') {
        this.stats.denied++;
        return { error: { tag: 'HTTP-request-denied' } };
      }
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const vault = this.#isVault(origin);
    try {
      let authorization = vault && this.credential.present ? await this.credential.header(origin.host) : undefined;
      let answer = await this.#send(origin, request, headers, authorization);
      if (vault && answer.status === 401) {
        const challenge = answer.headers.find(([n]) => n === 'www-authenticate')?.[1];
        const retry = challenge === undefined ? undefined : await this.credential.answer(origin.host, challenge, authorization !== undefined);
        if (retry !== undefined) {
          authorization = retry;
          answer = await this.#send(origin, request, headers, authorization);
        }
      }
      // The vault answered 401 to a request that carried a token: the token was refused,
      // which the component's message (the vault's own wire text) does not say.
      if (vault && answer.status === 401 && authorization !== undefined) this.stats.tokenRefused++;
      return answer;
    } catch (error) {
      return { error: errorCode(error) };
    }
  }

  #send(origin, request, headers, authorization) {
    const secure = origin.scheme === 'https';
    const body = request.body && request.body.length ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength) : undefined;
    const outgoing = { ...headers };
    if (authorization !== undefined) outgoing.authorization = authorization;
    if (body) outgoing['content-length'] = String(body.length);
    const host = origin.host.startsWith('[') ? origin.host.slice(1, -1) : origin.host;
    const connectMs = request.connectTimeoutMs ?? DEFAULT_CONNECT_MS;
    const firstByteMs = request.firstByteTimeoutMs ?? DEFAULT_FIRST_BYTE_MS;
    const betweenMs = request.betweenBytesTimeoutMs ?? DEFAULT_BETWEEN_BYTES_MS;
    this.stats.sent++;
    return new Promise((resolve, reject) => {
      const fail = (code) => {
        const e = new Error(code);
        e.code = code;
        req.destroy(e);
      };
      const req = (secure ? https : http).request({
        host,
        port: origin.port,
        servername: secure && !/^[\d.]+$/.test(host) && !host.includes(':') ? host : undefined,
        method: request.method,
        path: request.path,
        headers: outgoing,
        agent: secure ? this.httpsAgent : this.httpAgent,
      });
      let connectTimer = setTimeout(() => fail('kvrun-connect-timeout'), connectMs);
      let responseTimer;
      req.on('socket', (socket) => {
        const connected = () => {
          clearTimeout(connectTimer);
          connectTimer = undefined;
          responseTimer = setTimeout(() => fail('kvrun-response-timeout'), firstByteMs);
        };
        if (socket.connecting) {
          socket.once(secure ? 'secureConnect' : 'connect', connected);
        } else {
          connected();
        }
      });
      req.on('error', (e) => {
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
        reject(e);
      });
      req.on('response', (res) => {
        clearTimeout(responseTimer);
        const chunks = [];
        let size = 0;
        let idle = setTimeout(() => fail('kvrun-response-timeout'), betweenMs);
        res.on('data', (chunk) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            clearTimeout(idle);
            fail('kvrun-too-large');
            return;
          }
          chunks.push(chunk);
          clearTimeout(idle);
          idle = setTimeout(() => fail('kvrun-response-timeout'), betweenMs);
        });
        res.on('error', (e) => {
          clearTimeout(idle);
          reject(e);
        });
        res.on('end', () => {
          clearTimeout(idle);
          // The body in a buffer of its own, so it can be handed to the worker without a copy
          // (a small Buffer is a view of Node's shared 8 KB pool).
          const bytes = new Uint8Array(size);
          let at = 0;
          for (const chunk of chunks) {
            bytes.set(chunk, at);
            at += chunk.length;
          }
          const headerList = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) headerList.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
          resolve({ status: res.statusCode, headers: headerList, body: bytes });
        });
      });
      req.end(body);
    });
  }
}
