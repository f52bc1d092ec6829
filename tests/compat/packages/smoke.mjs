// The npm tarball (`npm pack` in bindings/js), installed offline into a fresh project: its
// `import ... from 'kvrun'` works and a set and get go through `kvrun vault serve`.
// Run from the fresh project's directory, with KVRUN_BIN naming the kvrun binary.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Keyvault } from 'kvrun';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvrun-pack-'));
const vault = spawn(process.env.KVRUN_BIN, ['vault', 'serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
const lines = readline.createInterface({ input: vault.stderr });
const [first] = await once(lines, 'line');
lines.on('line', () => {});
const url = first.replace('kvrun local vault serving ', '');
try {
  const kv = new Keyvault({
    vaultUrl: url,
    token: fs.readFileSync(path.join(dataDir, 'token'), 'utf8'),
    caCert: fs.readFileSync(path.join(dataDir, 'ca.pem')),
  });
  await kv.setSecret('packed', 'from-the-tarball');
  assert.equal((await kv.getSecret('packed')).value, 'from-the-tarball');
  await kv.close();
  console.log(`the packed kvrun works from ${path.dirname(fileURLToPath(import.meta.resolve('kvrun')))}`);
} finally {
  vault.kill('SIGTERM');
  await once(vault, 'exit');
  fs.rmSync(dataDir, { recursive: true, force: true });
}

