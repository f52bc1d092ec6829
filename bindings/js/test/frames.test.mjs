// The request frames' check (`src/frames.js`), directly: what the worker's own `wasi:http`
// sends passes unchanged, and each malformed part is refused with a reason naming it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRequest, FrameError, MAX_HEADER_BYTES } from '../src/frames.js';
import { FRAMES } from './forged-frames.mjs';

const good = {
  type: 'request',
  id: 7,
  method: 'PUT',
  scheme: 'https',
  authority: 'myvault.vault.azure.net',
  path: '/secrets/db-password?api-version=7.5',
  headers: [['Content-Type', 'application/json'], ['x-ms-client-request-id', 'é-latin1']],
  body: new Uint8Array([123, 125]),
  connectTimeoutMs: 10_000,
  firstByteTimeoutMs: undefined,
  betweenBytesTimeoutMs: 0,
};

test("the worker's own frames pass, with header names lowercased", () => {
  const checked = checkRequest(good);
  assert.deepEqual(checked.headers, [['content-type', 'application/json'], ['x-ms-client-request-id', 'é-latin1']]);
  assert.equal(checked.body, good.body);
  assert.equal(checked.connectTimeoutMs, 10_000);
  assert.equal(checked.betweenBytesTimeoutMs, 0);
  assert.equal(checkRequest({ ...good, body: undefined, headers: [] }).body, undefined);
});

test('each malformed part is refused, saying which', () => {
  const reasons = {
    'not-an-object': /not an object/,
    'a-number': /not an object/,
    'no-headers': /headers are not a list/,
    'headers-not-pairs': /not a \[name, value\] pair/,
    'header-value-not-text': /header "accept" is not text/,
    'header-name-not-a-token': /header name "x a" is not an HTTP token/,
    'header-injects-a-line': /header "x-a" has a line break/,
    'header-value-past-latin1': /past Latin-1/,
    'method-not-text': /method is not text/,
    'method-injects-a-line': /method is not an HTTP token/,
    'path-not-absolute': /path does not start with \//,
    'path-injects-a-line': /path does not start with \/ or has spaces/,
    'path-not-text': /path is not text/,
    'authority-not-text': /authority is not text/,
    'scheme-not-text': /scheme is not text/,
    'body-not-bytes': /body is not bytes/,
    'body-array-like': /body is not bytes/,
    'timeout-not-a-number': /connectTimeoutMs is not a number/,
    'timeout-negative': /firstByteTimeoutMs is not a number/,
    'timeout-not-finite': /betweenBytesTimeoutMs is not a number/,
  };
  for (const [kind, reason] of Object.entries(reasons)) {
    assert.throws(() => checkRequest(FRAMES[kind]('127.0.0.1:1')), (e) => e instanceof FrameError && reason.test(e.message), kind);
  }
  // The one forged frame that is well-formed: its authority is refused by the allow-list.
  assert.equal(checkRequest(FRAMES['authority-with-user-info']('127.0.0.1:1')).authority, 'user@127.0.0.1:1');
  assert.deepEqual(Object.keys(FRAMES).sort(), [...Object.keys(reasons), 'authority-with-user-info'].sort());
});

test('headers past the size cap are refused', () => {
  const big = 'v'.repeat(MAX_HEADER_BYTES);
  assert.throws(() => checkRequest({ ...good, headers: [['x-big', big]] }), /over 65536 bytes/);
  assert.equal(checkRequest({ ...good, headers: [['x-big', big.slice(5)]] }).headers.length, 1);
});
