// Every keyvault operation through the jco-transpiled component against the real local vault.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Keyvault, NotFound, InvalidName, Conflict, KvrunError, Unauthenticated } from '../src/index.js';
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
