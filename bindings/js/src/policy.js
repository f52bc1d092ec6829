// Network policy for the JS host: which origins the component's `wasi:http` may reach.
// Pure logic, the same accepted forms as the Rust host's `policy.rs`:
//
// | entry                                | matches                                        | does not match                                  |
// |--------------------------------------|------------------------------------------------|-------------------------------------------------|
// | `https://myvault.vault.azure.net`     | `https://MyVault.vault.azure.net:443`          | port 8443, `http://myvault.vault.azure.net`     |
// | `https://myvault.vault.azure.net:8443`| that host on port 8443                         | the same host on 443                            |
// | `https://*.vault.azure.net`           | `https://a.vault.azure.net`, `https://a.b.…`   | `https://vault.azure.net`, `https://evil.net`   |
// | `https://localhost:8443.`             | `https://localhost:8443` (trailing dot ignored)|                                                 |
// | `http://127.0.0.1:8080`               | plain http to that loopback port only          | `http://127.0.0.1:8081`                         |
//
// Rules: `https`, or `http` for a loopback host named explicitly (no wildcard); host names
// compare case-insensitively and a trailing dot is ignored; a missing port is the scheme's
// default; the only wildcard is a leading `*.` label, which never matches the domain itself;
// no path, query or user info (a lone trailing `/` is accepted). An empty list denies
// everything.

import { isIP } from 'node:net';

/** Why an origin or an allow-list entry was refused. */
export class PolicyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PolicyError';
  }
}

function isLoopback(host) {
  if (host === 'localhost') return true;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) === 4) return bare.split('.')[0] === '127';
  if (isIP(bare) === 6) return bare === '::1' || bare === '0:0:0:0:0:0:0:1';
  return false;
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;

function validHost(host) {
  if (host.startsWith('[') && host.endsWith(']')) return isIP(host.slice(1, -1)) === 6;
  if (isIP(host) === 4) return true;
  if (host.length === 0 || host.length > 253) return false;
  return host.split('.').every((label) => label.length <= 63 && LABEL.test(label));
}

/**
 * Parses `scheme://host[:port]` (an origin, or an allow-list entry when `entry` is true, which
 * may start its host with `*.`). Returns `{ scheme, host, port, wildcard }`.
 */
export function parseOrigin(text, { entry = false } = {}) {
  const what = entry ? 'allow-list entry' : 'origin';
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(String(text));
  if (!match) throw new PolicyError(`${what} ${JSON.stringify(text)} is not scheme://host[:port]`);
  const scheme = match[1].toLowerCase();
  let rest = match[2];
  if (scheme !== 'https' && scheme !== 'http') {
    throw new PolicyError(`${what} ${JSON.stringify(text)}: only https (or http to a loopback host) is allowed`);
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest.endsWith('.')) rest = rest.slice(0, -1);
  if (/[/?#@\s]/.test(rest)) {
    throw new PolicyError(`${what} ${JSON.stringify(text)} has a path, query, user info or spaces; give only scheme://host[:port]`);
  }
  let host = rest;
  let port;
  const portMatch = /^(.*?)(?::(\d{1,5}))?$/.exec(rest);
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new PolicyError(`${what} ${JSON.stringify(text)} has an unclosed IPv6 address`);
    host = rest.slice(0, close + 1);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!/^:\d{1,5}$/.test(after)) throw new PolicyError(`${what} ${JSON.stringify(text)} has a bad port`);
      port = Number(after.slice(1));
    }
  } else if (portMatch) {
    host = portMatch[1];
    if (portMatch[2] !== undefined) port = Number(portMatch[2]);
    if (host.includes(':')) throw new PolicyError(`${what} ${JSON.stringify(text)} has a bad port`);
  }
  if (port !== undefined && (port < 1 || port > 65535)) {
    throw new PolicyError(`${what} ${JSON.stringify(text)}: port ${port} is out of range`);
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  let wildcard = false;
  if (host.startsWith('*.')) {
    if (!entry) throw new PolicyError(`origin ${JSON.stringify(text)} cannot have a wildcard`);
    wildcard = true;
    host = host.slice(2);
  }
  if (!validHost(host) || host.includes('*')) {
    throw new PolicyError(`${what} ${JSON.stringify(text)} does not name a valid host`);
  }
  if (scheme === 'http' && entry && (wildcard || !isLoopback(host))) {
    throw new PolicyError(`allow-list entry ${JSON.stringify(text)}: plain http is allowed only to a loopback host named explicitly (localhost, 127.0.0.0/8, ::1); use https`);
  }
  return { scheme, host, port: port ?? (scheme === 'https' ? 443 : 80), wildcard };
}

/** An allow-list of origins; empty denies everything. */
export class AllowList {
  /** @param {Iterable<string>} entries */
  constructor(entries = []) {
    this.entries = [...entries].map((e) => parseOrigin(e, { entry: true }));
  }

  /** Whether a request to `origin` (`{ scheme, host, port }`) may be sent. */
  allows(origin) {
    const host = origin.host.toLowerCase().replace(/\.$/, '');
    return this.entries.some(
      (e) =>
        e.scheme === origin.scheme &&
        e.port === origin.port &&
        (e.wildcard ? host.endsWith(`.${e.host}`) : host === e.host),
    );
  }
}
