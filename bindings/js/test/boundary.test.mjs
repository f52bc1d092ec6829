// The JS host's HTTP boundary: allow-list, credential placement, the challenge rule, caps.
// A hostile stand-in for the vault client (the Rust host's test fixture, transpiled the same
// way) tries what a compromised component would; loopback servers record what arrives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Keyvault, PolicyDenied, Unavailable } from '../src/index.js';
import { HOSTILE, recordingServer, secretBody } from './helpers.mjs';

const TOKEN = 'static-token-for-the-vault-only';

test('a request to an origin outside the allow-list is denied and nothing is sent', async () => {
  const vault = await recordingServer(() => ({ status: 200, body: '{}' }));
  const elsewhere = await recordingServer(() => ({ status: 200, body: 'reached' }));
  const kv = new Keyvault({ vaultUrl: vault.url, token: TOKEN, componentModule: HOSTILE });
  const { value } = await kv.getSecret(`fetch ${elsewhere.url}/steal`);
  assert.match(value, /the kvrun host refused the request \(this run may not send it there\)/);
  assert.equal(elsewhere.seen.length, 0);
  assert.equal(kv.networkStats.denied, 1);
  await kv.close();
  await vault.stop();
  await elsewhere.stop();
});

test('the token is added by the host for the vault only, and never visible to the component', async () => {
  const vault = await recordingServer(() => ({ status: 200, body: 'vault says hi' }));
  const kv = new Keyvault({ vaultUrl: vault.url, token: TOKEN, componentModule: HOSTILE });
  const env = (await kv.getSecret('dump-env')).value;
  assert.ok(!env.includes(TOKEN), 'the environment holds the token');
  assert.match(env, /KVRUN_VAULT_URL/);
  const fetched = (await kv.getSecret(`fetch ${vault.url}/secrets/x?api-version=7.5`)).value;
  assert.ok(!fetched.includes(TOKEN));
  assert.equal(vault.seen.length, 1);
  assert.equal(vault.seen[0].headers.authorization, `Bearer ${TOKEN}`);
  await kv.close();
  await vault.stop();
});

test('an Authorization header set by the component is refused and nothing is sent', async () => {
  const vault = await recordingServer(() => ({ status: 200, body: '{}' }));
  const kv = new Keyvault({ vaultUrl: vault.url, token: TOKEN, componentModule: HOSTILE });
  const { value } = await kv.getSecret(`forge-authorization ${vault.url}/secrets/x`);
  assert.match(value, /forbidden|denied|refused/i);
  assert.equal(vault.seen.length, 0);
  await kv.close();
  await vault.stop();
});

test('the real component: a vault that refuses connections is Unavailable, not a policy denial', async () => {
  const kv = new Keyvault({ vaultUrl: 'http://127.0.0.1:9', token: TOKEN, retry: { maxAttempts: 1 } });
  const refused = await kv.getSecret('x').catch((e) => e);
  assert.ok(refused instanceof Unavailable, `${refused}`);
  assert.ok(!(refused instanceof PolicyDenied));
  assert.equal(kv.networkStats.denied, 0);
  await kv.close();
});

const CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/tenant-1", resource="https://vault.azure.net"';

function keyVaultLike(expected) {
  return recordingServer((req) => {
    if (req.headers.authorization !== `Bearer ${expected}`) {
      return { status: 401, headers: { 'www-authenticate': CHALLENGE, 'content-type': 'application/json' }, body: '{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}' };
    }
    const name = req.url.split('?')[0].split('/')[2];
    return { status: 200, body: secretBody('https://kv.vault.azure.net', name, 'from-the-vault') };
  });
}

test('an Azure token goes only to a Key Vault host: a loopback vault never gets one', async () => {
  const vault = await keyVaultLike('azure-token');
  let fetches = 0;
  const kv = new Keyvault({ vaultUrl: vault.url, getToken: async () => (fetches++, 'azure-token'), retry: { maxAttempts: 1 } });
  const failed = await kv.getSecret('db-password').catch((e) => e);
  assert.equal(failed.kind, 'unauthenticated');
  assert.equal(fetches, 0);
  assert.ok(vault.seen.every((r) => r.headers.authorization === undefined));
  await kv.close();
  await vault.stop();
});

test('the first request carries no token, and the accepted challenge is remembered', async () => {
  const vault = await keyVaultLike('azure-token');
  const scopes = [];
  const kv = new Keyvault({
    vaultUrl: vault.url,
    getToken: async (scope, { tenantId }) => (scopes.push([scope, tenantId]), { token: 'azure-token', expiresOnTimestamp: Date.now() + 3600_000 }),
    unsafeTokenToAnyHost: true,
  });
  assert.equal((await kv.getSecret('db-password')).value, 'from-the-vault');
  assert.equal((await kv.getSecret('db-password')).value, 'from-the-vault');
  assert.deepEqual(vault.seen.map((r) => r.headers.authorization), [undefined, 'Bearer azure-token', 'Bearer azure-token']);
  assert.deepEqual(scopes, [['https://vault.azure.net/.default', 'tenant-1']]);
  await kv.close();
  await vault.stop();
});

test('a response larger than the cap is refused, and a silent server times out', async () => {
  const huge = await recordingServer(() => ({ status: 200, body: 'x'.repeat(6 * 1024 * 1024) }));
  let kv = new Keyvault({ vaultUrl: huge.url, token: TOKEN, retry: { maxAttempts: 1 } });
  const tooBig = await kv.getSecret('x').catch((e) => e);
  assert.ok(tooBig instanceof Unavailable, `${tooBig}`);
  await kv.close();
  await huge.stop();
  const silent = await recordingServer(() => undefined);
  kv = new Keyvault({ vaultUrl: silent.url, token: TOKEN, callTimeoutMs: 1500 });
  const started = Date.now();
  const late = await kv.getSecret('x').catch((e) => e);
  assert.ok(late instanceof Unavailable, `${late}`);
  assert.equal(late.kind, 'timeout');
  assert.ok(Date.now() - started < 5_000);
  // The next call starts a fresh component.
  await assert.rejects(kv.getSecret('y'), Unavailable);
  await kv.close();
  await silent.stop();
});

test('frames forged at the host door are refused, nothing is sent, and the host keeps serving', async () => {
  const { FRAMES } = await import('./forged-frames.mjs');
  const failures = [];
  const record = (e) => failures.push(String(e?.stack ?? e));
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  const vault = await recordingServer(() => ({ status: 200, body: '{}' }));
  const kv = new Keyvault({ vaultUrl: vault.url, token: TOKEN, componentModule: new URL('./forged-frames.mjs', import.meta.url) });
  const authority = vault.url.split('://')[1];
  const requests = Object.keys(FRAMES).filter((kind) => FRAMES[kind](authority)?.type === 'request');
  for (const kind of Object.keys(FRAMES)) {
    assert.equal((await kv.getSecret(`${kind} ${authority}`)).value, 'sent', kind);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  process.off('uncaughtException', record);
  process.off('unhandledRejection', record);
  assert.deepEqual(failures, []);
  assert.deepEqual(vault.seen, []);
  assert.equal(kv.networkStats.denied, requests.length);
  assert.equal(kv.networkStats.sent, 0);
  await kv.close();
  await vault.stop();
});
