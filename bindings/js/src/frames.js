// The request frames the component's worker sends the main thread, checked before the
// boundary uses anything in them. The worker's own `wasi:http` (`./wasi/http.js`) only sends
// well-formed frames, but the worker runs whatever component module it was given, so the host
// treats each frame as untrusted input: anything that is not exactly the shape below is
// refused with a reason, and nothing of it reaches the network.
//
// A frame: `{ type: 'request', id, method, scheme, authority, path, headers: [name, value][],
// body?: Uint8Array, connectTimeoutMs?, firstByteTimeoutMs?, betweenBytesTimeoutMs? }`, with
// header values as Latin-1 text (one character per byte, as HTTP carries them).

/** Why a frame was refused. */
export class FrameError extends Error {
  constructor(message) {
    super(`the component's request frame is malformed: ${message}`);
    this.name = 'FrameError';
  }
}

/** The most header bytes (names and values) one request may carry. */
export const MAX_HEADER_BYTES = 64 * 1024;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const PATH = /^\/[\x21-\x7e]*$/;
const TIMEOUTS = ['connectTimeoutMs', 'firstByteTimeoutMs', 'betweenBytesTimeoutMs'];

function text(value, what) {
  if (typeof value !== 'string') throw new FrameError(`${what} is not text`);
  return value;
}

/**
 * Checks a request frame and returns its parts: `{ method, scheme, authority, path, headers:
 * [lowercase name, value][], body?: Uint8Array, connectTimeoutMs?, firstByteTimeoutMs?,
 * betweenBytesTimeoutMs? }`. Throws a `FrameError` saying what is wrong.
 */
export function checkRequest(frame) {
  if (frame === null || typeof frame !== 'object') throw new FrameError('it is not an object');
  const method = text(frame.method, 'the method');
  if (!TOKEN.test(method)) throw new FrameError('the method is not an HTTP token');
  const scheme = text(frame.scheme, 'the scheme');
  const authority = text(frame.authority, 'the authority');
  const path = text(frame.path, 'the path');
  if (!PATH.test(path)) throw new FrameError('the path does not start with / or has spaces, control or non-ASCII characters');
  if (!Array.isArray(frame.headers)) throw new FrameError('the headers are not a list');
  const headers = [];
  let size = 0;
  for (const pair of frame.headers) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new FrameError('a header is not a [name, value] pair');
    const name = text(pair[0], 'a header name');
    const value = text(pair[1], `header ${JSON.stringify(name)}`);
    if (!TOKEN.test(name)) throw new FrameError(`header name ${JSON.stringify(name)} is not an HTTP token`);
    if (!FIELD_VALUE.test(value)) throw new FrameError(`header ${JSON.stringify(name)} has a line break, a control character or a character past Latin-1`);
    size += name.length + value.length;
    if (size > MAX_HEADER_BYTES) throw new FrameError(`the headers are over ${MAX_HEADER_BYTES} bytes`);
    headers.push([name.toLowerCase(), value]);
  }
  if (frame.body !== undefined && !(frame.body instanceof Uint8Array)) throw new FrameError('the body is not bytes');
  const checked = { method, scheme, authority, path, headers, body: frame.body };
  for (const key of TIMEOUTS) {
    const ms = frame[key];
    if (ms !== undefined && !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) throw new FrameError(`${key} is not a number of milliseconds`);
    checked[key] = ms;
  }
  return checked;
}
