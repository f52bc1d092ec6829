// Calls that overlap run on more than one worker, up to the Keyvault's `workers`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyvault, ConfigError } from '../src/index.js';
import { recordingServer, secretBody } from './helpers.mjs';

/** A vault stand-in that holds every request until `gate` are waiting (or a second has
 * passed), then answers them all, and counts the most it ever held at once. */
async function holdingVault(gate) {
  let held = [];
  const state = { most: 0 };
  const release = () => {
    for (const answer of held) answer();
    held = [];
  };
  const timer = setInterval(release, 1000).unref();
  const vault = await recordingServer((req) => {
    const name = req.url.split('?')[0].split('/')[2];
    const reply = new Promise((resolve) => held.push(() => resolve({ status: 200, body: secretBody('https://kv.vault.azure.net', name, `value-of-${name}`) })));
    state.most = Math.max(state.most, held.length);
    if (held.length >= gate) release();
    return reply;
  });
  return {
    url: vault.url,
    state,
    stop() {
      clearInterval(timer);
      return vault.stop();
    },
  };
}

test('overlapping calls run on up to `workers` workers at once, and no more', async () => {
  const vault = await holdingVault(4);
  const kv = new Keyvault({ vaultUrl: vault.url, token: 'static-token', workers: 3, retry: { maxAttempts: 1 } });
  try {
    const names = Array.from({ length: 6 }, (_, i) => `name-${i}`);
    const got = await Promise.all(names.map((n) => kv.getSecret(n)));
    assert.deepEqual(got.map((s) => s.value), names.map((n) => `value-of-${n}`));
    assert.equal(vault.state.most, 3);
  } finally {
    await kv.close();
    await vault.stop();
  }
});

test('with one worker, calls run one at a time', async () => {
  const vault = await holdingVault(2);
  const kv = new Keyvault({ vaultUrl: vault.url, token: 'static-token', workers: 1, retry: { maxAttempts: 1 } });
  try {
    const got = await Promise.all(['a', 'b'].map((n) => kv.getSecret(n)));
    assert.deepEqual(got.map((s) => s.value), ['value-of-a', 'value-of-b']);
    assert.equal(vault.state.most, 1);
  } finally {
    await kv.close();
    await vault.stop();
  }
});

test('a worker count outside 1 to 64 is refused', () => {
  for (const bad of [0, 65, 2.5, '4', Number.NaN]) {
    assert.throws(
      () => new Keyvault({ vaultUrl: 'http://127.0.0.1:1', token: 't', workers: bad }),
      (e) => e instanceof ConfigError && /^workers must be a whole number from 1 to 64, not /.test(e.message),
      String(bad),
    );
  }
});
