// The allow-list and the challenge rule are pure logic: tested directly, with the same table
// as the Rust host's policy.rs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowList, parseOrigin, PolicyError, isKeyVaultHost, parseChallenge, challengeAllowed } from '../src/index.js';

const allows = (entry, origin) => new AllowList([entry]).allows(parseOrigin(origin));

test('the accepted forms match what policy.rs matches', () => {
  assert.ok(allows('https://myvault.vault.azure.net', 'https://MyVault.vault.azure.net:443'));
  assert.ok(!allows('https://myvault.vault.azure.net', 'https://myvault.vault.azure.net:8443'));
  assert.ok(!allows('https://myvault.vault.azure.net', 'http://myvault.vault.azure.net'));
  assert.ok(allows('https://myvault.vault.azure.net:8443', 'https://myvault.vault.azure.net:8443'));
  assert.ok(allows('https://*.vault.azure.net', 'https://a.b.vault.azure.net'));
  assert.ok(!allows('https://*.vault.azure.net', 'https://vault.azure.net'));
  assert.ok(!allows('https://*.vault.azure.net', 'https://evil.net'));
  assert.ok(allows('https://localhost:8443.', 'https://localhost:8443'));
  assert.ok(allows('http://127.0.0.1:8080', 'http://127.0.0.1:8080'));
  assert.ok(!allows('http://127.0.0.1:8080', 'http://127.0.0.1:8081'));
  assert.ok(allows('https://example.com/', 'https://example.com'));
  assert.ok(!new AllowList([]).allows(parseOrigin('https://example.com')));
});

test('bad entries are refused when parsed', () => {
  for (const bad of ['http://example.com', 'http://*.localhost', 'ftp://x', 'https://a/b', 'https://u@a', 'https://a?q', 'https://a:0', 'https://a:99999', 'example.com', 'https://', 'https://*.']) {
    assert.throws(() => new AllowList([bad]), PolicyError, bad);
  }
  assert.throws(() => parseOrigin('https://*.vault.azure.net'), PolicyError);
});

test('only Key Vault hosts, and only challenges for their domain, get Azure tokens', () => {
  assert.ok(isKeyVaultHost('kv.vault.azure.net'));
  assert.ok(isKeyVaultHost('KV.Vault.UsGovCloudApi.net.'));
  assert.ok(!isKeyVaultHost('vault.azure.net'));
  assert.ok(!isKeyVaultHost('evilvault.azure.net'));
  assert.ok(!isKeyVaultHost('kv.vault.azure.net.evil.com'));
  const challenge = (resource) => parseChallenge(`Bearer authorization="https://login.microsoftonline.com/t", resource="${resource}"`);
  assert.ok(challengeAllowed(challenge('https://vault.azure.net'), 'kv.vault.azure.net'));
  assert.ok(!challengeAllowed(challenge('https://vault.azure.net'), 'kv.vault.azure.cn'));
  assert.ok(!challengeAllowed(challenge('https://evil.example'), 'kv.evil.example'));
  assert.equal(parseChallenge('Basic realm=x'), null);
  assert.equal(parseChallenge('Bearer resource="https://vault.azure.net"'), null);
  const scoped = parseChallenge('Bearer authorization_uri="https://login.chinacloudapi.cn/t1", scope="https://vault.azure.cn/.default"');
  assert.deepEqual(scoped, { scope: 'https://vault.azure.cn/.default', tenantId: 't1', resourceHost: 'vault.azure.cn' });
});
