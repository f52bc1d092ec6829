// A stand-in for the vault client component that forges frames at the host's door: instead
// of making requests through `wasi:http`, `getSecret("KIND AUTHORITY")` posts the frame KIND
// straight onto the worker's channel, as code that took over the worker could, and returns.
// The boundary must refuse every such frame without sending anything or failing itself.

import { send } from '../src/wasi/channel.js';

const request = (authority, fields) => ({ type: 'request', id: 900_000, method: 'GET', scheme: 'http', authority, path: '/secrets/x?api-version=7.5', headers: [['accept', 'application/json']], ...fields });

/** Each forged frame by name, for a vault at `authority`. */
export const FRAMES = {
  'not-an-object': () => null,
  'a-number': () => 42,
  'no-headers': (a) => request(a, { headers: undefined }),
  'headers-not-pairs': (a) => request(a, { headers: [['accept']] }),
  'header-value-not-text': (a) => request(a, { headers: [['accept', new TextEncoder().encode('application/json')]] }),
  'header-name-not-a-token': (a) => request(a, { headers: [['x a', 'b']] }),
  'header-injects-a-line': (a) => request(a, { headers: [['x-a', 'b\r\nauthorization: Bearer forged']] }),
  'header-value-past-latin1': (a) => request(a, { headers: [['x-a', 'b\u2028c']] }),
  'method-not-text': (a) => request(a, { method: ['GET'] }),
  'method-injects-a-line': (a) => request(a, { method: 'GET /other HTTP/1.1\r\nx:' }),
  'path-not-absolute': (a) => request(a, { path: 'http://elsewhere.example/x' }),
  'path-injects-a-line': (a) => request(a, { path: '/x HTTP/1.1\r\nauthorization: Bearer forged\r\n\r\n' }),
  'path-not-text': (a) => request(a, { path: ['/x'] }),
  'authority-not-text': (a) => request(a, { authority: { host: a } }),
  'authority-with-user-info': (a) => request(a, { authority: `user@${a}` }),
  'scheme-not-text': (a) => request(a, { scheme: 7 }),
  'body-not-bytes': (a) => request(a, { method: 'PUT', body: 'a string body' }),
  'body-array-like': (a) => request(a, { method: 'PUT', body: { length: 3, 0: 1, 1: 2, 2: 3 } }),
  'timeout-not-a-number': (a) => request(a, { connectTimeoutMs: '5' }),
  'timeout-negative': (a) => request(a, { firstByteTimeoutMs: -1 }),
  'timeout-not-finite': (a) => request(a, { betweenBytesTimeoutMs: Number.NaN }),
};

const secret = (name) => ({ value: 'sent', properties: { name, version: undefined, id: '', contentType: undefined, enabled: true, notBefore: undefined, expires: undefined, created: undefined, updated: undefined, tags: [] } });

export const keyvault = {
  getSecret(what) {
    const [kind, authority] = what.split(' ');
    send(FRAMES[kind](authority));
    return secret(kind);
  },
};
