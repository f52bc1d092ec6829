// `wasi:http` (client side) for the vault client component, in its worker. Nothing here
// touches the network: `handle` sends the finished request to the host (the main thread)
// as a message, and the host's boundary (`../boundary.js`) decides, adds the credential and
// sends it. The answer comes back whole (status, headers, body), so bodies are read from
// memory.

import { send } from './channel.js';
import { InputStream, OutputStream, Pollable } from './io.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

class Fields {
  constructor() {
    this._entries = [];
    this._immutable = false;
  }
  static fromList(entries) {
    const fields = new Fields();
    for (const [name, value] of entries) fields.append(name, value);
    return fields;
  }
  /** Immutable fields from the host's answer: `[lowercase name, Latin-1 value]` pairs. */
  static _frozen(entries) {
    const fields = new Fields();
    fields._entries = entries.map(([n, v]) => [n, Buffer.from(v, 'latin1')]);
    fields._immutable = true;
    return fields;
  }
  _check(name) {
    if (!TOKEN.test(name)) throw { tag: 'invalid-syntax' };
    if (this._immutable) throw { tag: 'immutable' };
  }
  get(name) {
    const lower = name.toLowerCase();
    return this._entries.filter(([n]) => n === lower).map(([, v]) => v);
  }
  has(name) {
    return this.get(name).length > 0;
  }
  set(name, values) {
    this._check(name);
    this.delete(name);
    for (const v of values) this._entries.push([name.toLowerCase(), v]);
  }
  delete(name) {
    this._check(name);
    const lower = name.toLowerCase();
    this._entries = this._entries.filter(([n]) => n !== lower);
  }
  append(name, value) {
    this._check(name);
    if (value.some((b) => b === 0x0a || b === 0x0d || b === 0x00)) throw { tag: 'invalid-syntax' };
    this._entries.push([name.toLowerCase(), value]);
  }
  entries() {
    return this._entries.map(([n, v]) => [n, v]);
  }
  /** The fields as the host's request frame carries them: `[name, Latin-1 value]` pairs. */
  _asText() {
    return this._entries.map(([n, v]) => [n, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1')]);
  }
  clone() {
    const fields = new Fields();
    fields._entries = this.entries();
    return fields;
  }
}

class RequestOptions {
  constructor() {
    this._connect = undefined;
    this._firstByte = undefined;
    this._betweenBytes = undefined;
  }
  connectTimeout() {
    return this._connect;
  }
  setConnectTimeout(d) {
    this._connect = d;
  }
  firstByteTimeout() {
    return this._firstByte;
  }
  setFirstByteTimeout(d) {
    this._firstByte = d;
  }
  betweenBytesTimeout() {
    return this._betweenBytes;
  }
  setBetweenBytesTimeout(d) {
    this._betweenBytes = d;
  }
}

class OutgoingBody {
  constructor(request) {
    this._request = request;
    this._chunks = [];
    this._streamTaken = false;
    this._stream = undefined;
  }
  write() {
    if (this._streamTaken) throw undefined;
    this._streamTaken = true;
    this._stream = new OutputStream((bytes) => this._chunks.push(new Uint8Array(bytes)));
    return this._stream;
  }
  static finish(body, trailers) {
    if (trailers !== undefined) throw { tag: 'HTTP-request-trailer-section-size', val: undefined };
    body._stream?._close();
    body._request._bodyDone(Buffer.concat(body._chunks));
  }
}

const METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

class OutgoingRequest {
  constructor(headers) {
    this._headers = headers;
    headers._immutable = true;
    this._method = { tag: 'get' };
    this._scheme = undefined;
    this._authority = undefined;
    this._path = undefined;
    this._bodyTaken = false;
    this._body = undefined;
    this._bodyFinished = false;
    this._future = undefined;
  }
  method() {
    return this._method;
  }
  setMethod(m) {
    if (m.tag === 'other' && !TOKEN.test(m.val)) throw undefined;
    this._method = m;
  }
  pathWithQuery() {
    return this._path;
  }
  setPathWithQuery(p) {
    if (p !== undefined && (!p.startsWith('/') || /[\s\x00-\x1f]/.test(p))) throw undefined;
    this._path = p;
  }
  scheme() {
    return this._scheme;
  }
  setScheme(s) {
    this._scheme = s;
  }
  authority() {
    return this._authority;
  }
  setAuthority(a) {
    if (a !== undefined && /[\s/?#@]/.test(a)) throw undefined;
    this._authority = a;
  }
  headers() {
    return this._headers;
  }
  body() {
    if (this._bodyTaken) throw undefined;
    this._bodyTaken = true;
    return new OutgoingBody(this);
  }
  _bodyDone(bytes) {
    this._body = bytes;
    this._bodyFinished = true;
    if (this._future) this._future._send(this);
  }
}

let nextId = 1;
const waiting = new Map();

/** Called by the worker for every answer the host sends back. */
export function settle(message) {
  const future = waiting.get(message.id);
  if (!future) return;
  waiting.delete(message.id);
  future._answer = message.error !== undefined ? { tag: 'err', val: message.error } : { tag: 'ok', val: new IncomingResponse(message) };
}

class FutureIncomingResponse {
  constructor() {
    this._answer = undefined;
    this._taken = false;
  }
  _send(request) {
    const id = nextId++;
    waiting.set(id, this);
    const ns = (d) => (d === undefined ? undefined : Number(d) / 1e6);
    const options = request._options;
    const scheme = request._scheme?.tag === 'HTTP' ? 'http' : request._scheme?.tag === 'other' ? request._scheme.val : 'https';
    const method = request._method.tag === 'other' ? request._method.val : request._method.tag.toUpperCase();
    send({
      type: 'request',
      id,
      method,
      scheme,
      authority: request._authority ?? '',
      path: request._path ?? '/',
      headers: request._headers._asText(),
      body: request._body,
      connectTimeoutMs: ns(options?._connect),
      firstByteTimeoutMs: ns(options?._firstByte),
      betweenBytesTimeoutMs: ns(options?._betweenBytes),
    });
  }
  subscribe() {
    return new Pollable(() => this._answer !== undefined, undefined);
  }
  get() {
    if (this._answer === undefined) return undefined;
    if (this._taken) return { tag: 'err', val: undefined };
    this._taken = true;
    return { tag: 'ok', val: this._answer };
  }
}

class IncomingResponse {
  constructor({ status, headers, body }) {
    this._status = status;
    this._headers = Fields._frozen(headers);
    this._body = body;
    this._consumed = false;
  }
  status() {
    return this._status;
  }
  headers() {
    return this._headers;
  }
  consume() {
    if (this._consumed) throw undefined;
    this._consumed = true;
    return new IncomingBody(this._body);
  }
}

class IncomingBody {
  constructor(bytes) {
    this._bytes = bytes;
    this._streamTaken = false;
  }
  stream() {
    if (this._streamTaken) throw undefined;
    this._streamTaken = true;
    return new InputStream(this._bytes);
  }
  static finish() {
    return new FutureTrailers();
  }
}

class FutureTrailers {
  subscribe() {
    return new Pollable(() => true, undefined);
  }
  get() {
    return { tag: 'ok', val: { tag: 'ok', val: undefined } };
  }
}

function handle(request, options) {
  if (request._authority === undefined || request._authority === '') throw { tag: 'HTTP-request-URI-invalid' };
  if (request._method.tag !== 'other' && !METHODS.has(request._method.tag)) throw { tag: 'HTTP-request-method-invalid' };
  const future = new FutureIncomingResponse();
  request._options = options;
  request._future = future;
  if (!request._bodyTaken || request._bodyFinished) future._send(request);
  return future;
}

export const types = {
  Fields,
  RequestOptions,
  OutgoingBody,
  OutgoingRequest,
  FutureIncomingResponse,
  IncomingResponse,
  IncomingBody,
  FutureTrailers,
};

export const outgoingHandler = { handle };

