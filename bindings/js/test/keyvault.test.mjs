// Every keyvault operation through the jco-transpiled component against the real local vault.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MessagePort, Worker } from 'node:worker_threads';
import { Keyvault, NotFound, InvalidName, Conflict, KvrunError, Unauthenticated, ConfigError } from '../src/index.js';
import { startVault } from './helpers.mjs';

let vault;
let kv;
before(async () => {
  vault = await startVault();
  kv = new Keyvault({ vaultUrl: vault.url, token: vault.token, caCert: vault.caCert });
});
after(async () => {
  await kv.close();
  await vault.stop();
});

test('set, get (latest and by version), get many, list and list versions', async () => {
  const first = await kv.setSecret('db-password', 'pa55-one', { contentType: 'text/plain', tags: { team: 'ml' } });
  assert.equal(first.name, 'db-password');
  assert.equal(first.contentType, 'text/plain');
  assert.deepEqual(first.tags, { team: 'ml' });
  assert.ok(first.created instanceof Date);
  const second = await kv.setSecret('db-password', 'pa55-two');
  assert.notEqual(second.version, first.version);
  assert.equal((await kv.getSecret('db-password')).value, 'pa55-two');
  assert.equal((await kv.getSecret('db-password', { version: first.version })).value, 'pa55-one');
  assert.deepEqual(await kv.getSecrets(['db-password', 'missing']), { 'db-password': 'pa55-two', missing: null });
  assert.ok((await kv.listSecrets()).some((p) => p.name === 'db-password' && p.version === undefined));
  assert.deepEqual((await kv.listSecretVersions('db-password')).map((p) => p.version).sort(), [first.version, second.version].sort());
});

test('set many reports each entry, good and bad', async () => {
  const outcomes = await kv.setSecrets({ 'batch-a': 'A', 'bad name': 'B', 'batch-c': 'C' });
  assert.deepEqual(outcomes.map((o) => o.name), ['batch-a', 'bad name', 'batch-c']);
  assert.ok(outcomes[0].properties && outcomes[2].properties);
  assert.ok(outcomes[1].error instanceof InvalidName);
  assert.equal((await kv.getSecret('batch-c')).value, 'C');
});

test('update, delete, get and list deleted, recover, purge', async () => {
  await kv.setSecret('rotating', 'v1');
  const updated = await kv.updateSecretProperties('rotating', { enabled: false, tags: { state: 'off' }, expires: new Date('2031-01-01T00:00:00Z') });
  assert.equal(updated.enabled, false);
  assert.deepEqual(updated.tags, { state: 'off' });
  assert.equal(updated.expires.toISOString(), '2031-01-01T00:00:00.000Z');
  await kv.updateSecretProperties('rotating', { enabled: true });
  const deleted = await kv.deleteSecret('rotating');
  assert.equal(deleted.name, 'rotating');
  assert.ok(deleted.scheduledPurgeDate instanceof Date);
  assert.equal((await kv.getDeletedSecret('rotating')).name, 'rotating');
  assert.ok((await kv.listDeletedSecrets()).some((d) => d.name === 'rotating'));
  await assert.rejects(kv.setSecret('rotating', 'v2'), Conflict);
  await kv.recoverDeletedSecret('rotating');
  assert.equal((await kv.getSecret('rotating')).value, 'v1');
  await kv.deleteSecret('rotating');
  await kv.purgeDeletedSecret('rotating');
  await assert.rejects(kv.getDeletedSecret('rotating'), NotFound);
});

test('backup and restore', async () => {
  await kv.setSecret('kept', 'keep-me');
  const backup = await kv.backupSecret('kept');
  assert.equal(typeof backup, 'string');
  await kv.deleteSecret('kept');
  await kv.purgeDeletedSecret('kept');
  const restored = await kv.restoreSecret(backup);
  assert.equal(restored.name, 'kept');
  assert.equal((await kv.getSecret('kept')).value, 'keep-me');
});

test('errors are KvrunError subclasses with a kind, and never carry a value', async () => {
  await kv.setSecret('quiet', 'do-not-print-this');
  const missing = await kv.getSecret('nope').catch((e) => e);
  assert.ok(missing instanceof NotFound && missing instanceof KvrunError);
  assert.equal(missing.kind, 'not-found');
  const bad = await kv.getSecret('no such/name').catch((e) => e);
  assert.ok(bad instanceof InvalidName);
  assert.ok(!String(missing.stack).includes('do-not-print-this'));
  assert.ok(!String(kv).includes(vault.token));
});

test('concurrent calls all answer', async () => {
  await kv.setSecret('shared', 'same');
  const values = await Promise.all(Array.from({ length: 20 }, () => kv.getSecret('shared')));
  assert.ok(values.every((s) => s.value === 'same'));
});

test('without spinning (spinMicroseconds: 0) calls answer the same, one at a time and at once; bad budgets are refused', async () => {
  const sleepy = new Keyvault({ vaultUrl: vault.url, token: vault.token, caCert: vault.caCert, spinMicroseconds: 0 });
  try {
    await sleepy.setSecret('sleepy', 'awake');
    assert.equal((await sleepy.getSecret('sleepy')).value, 'awake');
    const values = await Promise.all(Array.from({ length: 10 }, () => sleepy.getSecret('sleepy')));
    assert.ok(values.every((s) => s.value === 'awake'));
    assert.deepEqual(await sleepy.getSecrets(['sleepy', 'sleepy-missing']), { sleepy: 'awake', 'sleepy-missing': null });
  } finally {
    await sleepy.close();
  }
  for (const bad of [-1, 10_001, Number.NaN, '200', null]) {
    assert.throws(
      () => new Keyvault({ vaultUrl: vault.url, token: vault.token, spinMicroseconds: bad }),
      (e) => e instanceof ConfigError && /^spinMicroseconds must be a number from 0 to 10000, not /.test(e.message),
      String(bad),
    );
  }
});

test('a token the vault refuses is said to be refused, and never shown', async () => {
  const wrong = new Keyvault({ vaultUrl: vault.url, token: 'not-the-vault-token-0f3c', caCert: vault.caCert });
  try {
    await assert.rejects(wrong.getSecret('db-password'), (error) => {
      assert.ok(error instanceof Unauthenticated, String(error));
      assert.match(error.message, /^the vault refused the token this package sent \(check the token or credential given to Keyvault\); the vault said: /);
      assert.ok(!error.message.includes('not-the-vault-token-0f3c'));
      return true;
    });
  } finally {
    await wrong.close();
  }
});

test('nothing the main thread hands the worker holds the token, over a whole session', async () => {
  // Every message to the worker (its start-up data, calls and answers) goes through one of
  // these two methods; each is recorded as the text of every string and byte array in it.
  const sent = [];
  const textOf = (value, seen = new Set()) => {
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
    if (value === null || typeof value !== 'object' || seen.has(value)) return '';
    seen.add(value);
    if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
    if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return Buffer.from(value).toString('latin1');
    return Object.values(value).map((v) => textOf(v, seen)).join('\n');
  };
  const originals = { port: MessagePort.prototype.postMessage, worker: Worker.prototype.postMessage };
  MessagePort.prototype.postMessage = function (message, transfer) {
    sent.push(textOf(message));
    return originals.port.call(this, message, transfer);
  };
  Worker.prototype.postMessage = function (message, transfer) {
    sent.push(textOf(message));
    return originals.worker.call(this, message, transfer);
  };
  const own = new Keyvault({ vaultUrl: vault.url, token: vault.token, caCert: vault.caCert });
  try {
    await own.setSecret('watched', 'value-1');
    await own.setSecrets({ 'watched-a': 'A', 'watched-b': 'B' });
    assert.equal((await own.getSecret('watched')).value, 'value-1');
    assert.deepEqual(await own.getSecrets(['watched-a', 'watched-b', 'watched-missing']), { 'watched-a': 'A', 'watched-b': 'B', 'watched-missing': null });
    assert.ok((await own.listSecrets()).length >= 3);
    await assert.rejects(own.getSecret('watched-missing'), NotFound);
  } finally {
    MessagePort.prototype.postMessage = originals.port;
    Worker.prototype.postMessage = originals.worker;
    await own.close();
  }
  // Calls and answers with the secrets' values were recorded, so the search below can find a
  // string when one is there.
  const holds = (text) => sent.some((recorded) => recorded.includes(text));
  assert.ok(sent.length >= 10, `only ${sent.length} messages recorded`);
  assert.ok(holds('value-1') && holds('watched-missing') && holds('KVRUN_VAULT_URL'));
  assert.ok(!holds(vault.token), 'a message to the worker holds the token');
  assert.ok(!holds('Bearer'), 'a message to the worker holds an Authorization value');
});
