// The official JS SDK (@azure/keyvault-secrets, latest) against the kvrun local vault.
//
// Pointing the SDK at the local vault needs: Node trusting its CA (NODE_EXTRA_CA_CERTS, set
// before Node starts: the runner re-executes itself with it), a credential that returns the
// vault's token, and `disableChallengeResourceVerification: true`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { SecretClient, parseKeyVaultSecretIdentifier } from "@azure/keyvault-secrets";

const dataDir = process.env.KVRUN_COMPAT_DATA_DIR ?? mkdtempSync(join(tmpdir(), "kvrun-compat-js-"));
let server;
let client;

/** `kvrun vault serve` over the shared data directory (whose CA Node already trusts). */
async function serve(extra = []) {
  const binary = process.env.KVRUN_BIN ?? "target/debug/kvrun";
  const child = spawn(binary, ["vault", "serve", "--data-dir", dataDir, ...extra], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = createInterface({ input: child.stderr });
  const first = await new Promise((resolve) => lines.once("line", resolve));
  const prefix = "kvrun local vault serving ";
  assert.ok(first.startsWith(prefix), first);
  lines.on("line", () => {});
  const url = first.slice(prefix.length);
  const token = readFileSync(join(dataDir, "token"), "utf8").trim();
  const credential = { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) };
  return { child, url, client: new SecretClient(url, credential, { disableChallengeResourceVerification: true }) };
}

let vaultUrl;

before(async () => {
  ({ child: server, url: vaultUrl, client } = await serve(["--addr", "127.0.0.1:0"]));
});

after(async () => {
  server.kill("SIGTERM");
  const code = await new Promise((resolve) => server.once("exit", resolve));
  assert.equal(code, 0);
});

const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;
const poll = { intervalInMs: 100 };

test("CRUD, versions and update", async () => {
  const name = unique("js-crud");
  const first = await client.setSecret(name, "value-1", { contentType: "text/plain", tags: { env: "dev" } });
  assert.equal(first.value, "value-1");
  assert.equal(first.properties.contentType, "text/plain");
  assert.deepEqual(first.properties.tags, { env: "dev" });
  const second = await client.setSecret(name, "value-2");
  assert.notEqual(second.properties.version, first.properties.version);
  assert.equal((await client.getSecret(name)).value, "value-2");
  assert.equal((await client.getSecret(name, { version: first.properties.version })).value, "value-1");
  const versions = [];
  for await (const p of client.listPropertiesOfSecretVersions(name)) versions.push(p.version);
  assert.deepEqual(new Set(versions), new Set([first.properties.version, second.properties.version]));

  await client.updateSecretProperties(name, second.properties.version, { enabled: false });
  await assert.rejects(client.getSecret(name), (e) => e.statusCode === 403);
  await client.updateSecretProperties(name, second.properties.version, { enabled: true, tags: { a: "b" } });
  const again = await client.getSecret(name);
  assert.equal(again.value, "value-2");
  assert.deepEqual(again.properties.tags, { a: "b" });
});

test("paging with small pages", async () => {
  const prefix = unique("js-page");
  for (let i = 0; i < 7; i++) await client.setSecret(`${prefix}-${i}`, "v");
  let pages = 0;
  const seen = new Set();
  for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 2 })) {
    pages++;
    for (const p of page) seen.add(p.name);
  }
  for (let i = 0; i < 7; i++) assert.ok(seen.has(`${prefix}-${i}`));
  assert.ok(pages > 3, `pages: ${pages}`);
});

test("soft delete, recover and purge", async () => {
  const name = unique("js-del");
  await client.setSecret(name, "keep-me");
  const deleted = await (await client.beginDeleteSecret(name, poll)).pollUntilDone();
  assert.equal(deleted.name, name);
  assert.ok(deleted.properties.recoveryId.endsWith(`/deletedsecrets/${name}`));
  assert.equal((await client.getDeletedSecret(name)).name, name);
  await assert.rejects(client.getSecret(name), (e) => e.statusCode === 404);
  await assert.rejects(client.setSecret(name, "again"), (e) => e.statusCode === 409 && /ObjectIsDeletedButRecoverable/.test(e.message + JSON.stringify(e.details ?? {})));
  await (await client.beginRecoverDeletedSecret(name, poll)).pollUntilDone();
  assert.equal((await client.getSecret(name)).value, "keep-me");
  await (await client.beginDeleteSecret(name, poll)).pollUntilDone();
  await client.purgeDeletedSecret(name);
  await assert.rejects(client.getDeletedSecret(name), (e) => e.statusCode === 404);
});

test("backup and restore", async () => {
  const name = unique("js-bak");
  await client.setSecret(name, "v1");
  const blob = await client.backupSecret(name);
  assert.ok(blob && blob.length > 0);
  await assert.rejects(client.restoreSecretBackup(blob), (e) => e.statusCode === 409);
  await (await client.beginDeleteSecret(name, poll)).pollUntilDone();
  await client.purgeDeletedSecret(name);
  const restored = await client.restoreSecretBackup(blob);
  assert.equal(restored.name, name);
  assert.equal((await client.getSecret(name)).value, "v1");
});

test("errors carry the right status and code", async () => {
  await assert.rejects(client.getSecret(unique("js-missing")), (e) => e.statusCode === 404 && e.code === "SecretNotFound");
  await assert.rejects(client.setSecret("bad_name!", "v"), (e) => e.statusCode === 400 && e.code === "BadParameter");
});

/** Every id, recoveryId and nextLink a client of `url` sees starts with `url`. */
async function checkIdsName(url, client) {
  const bodies = [];
  const onResponse = (raw) => { if (raw.bodyAsText) bodies.push(JSON.parse(raw.bodyAsText)); };
  const name = unique("js-ids");
  for (let i = 0; i < 3; i++) {
    const created = await client.setSecret(`${name}-${i}`, "v", { onResponse });
    assert.equal(parseKeyVaultSecretIdentifier(created.properties.id).vaultUrl, url);
  }
  for await (const page of client.listPropertiesOfSecrets({ onResponse }).byPage({ maxPageSize: 1 })) {
    for (const p of page) assert.ok(p.id.startsWith(`${url}/secrets/`), p.id);
  }
  const deleted = await (await client.beginDeleteSecret(`${name}-1`, poll)).pollUntilDone();
  assert.ok(deleted.properties.recoveryId.startsWith(`${url}/deletedsecrets/`), deleted.properties.recoveryId);
  for await (const d of client.listDeletedSecrets()) {
    assert.ok(d.properties.recoveryId.startsWith(`${url}/deletedsecrets/`), d.properties.recoveryId);
  }
  const links = bodies.map((b) => b.nextLink).filter(Boolean);
  assert.ok(links.length >= 1, `nextLinks: ${links}`);
  const named = [...links, ...bodies.map((b) => b.id).filter(Boolean)];
  for (const n of named) assert.ok(n.startsWith(`${url}/`), `${n} does not start with ${url}`);
}

test("ids, recoveryIds and nextLinks start with the client's vault URL", async () => {
  assert.match(vaultUrl, /^https:\/\/localhost:\d+$/);
  await checkIdsName(vaultUrl, client);
});

test("under --public-url, they start with that URL", async () => {
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const url = `https://127.0.0.1:${port}`;
  const other = await serve(["--addr", `127.0.0.1:${port}`, "--public-url", url]);
  try {
    assert.equal(other.url, url);
    await checkIdsName(url, other.client);
  } finally {
    other.child.kill("SIGTERM");
    assert.equal(await new Promise((resolve) => other.child.once("exit", resolve)), 0);
  }
});
