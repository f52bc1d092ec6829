// Test helpers: the real local vault (`kvrun vault serve`) and loopback HTTP servers that
// record what they receive.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Starts `kvrun vault serve` on a free loopback port over a fresh data directory. */
export async function startVault() {
  const binary = process.env.KVRUN_BIN ?? path.join(root, 'target', 'debug', 'kvrun');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvrun-js-'));
  const child = spawn(binary, ['vault', 'serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = readline.createInterface({ input: child.stderr });
  const [first] = await once(lines, 'line');
  const prefix = 'kvrun local vault serving ';
  if (!first.startsWith(prefix)) throw new Error(`the vault did not start: ${first}`);
  return {
    url: first.slice(prefix.length),
    token: fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim(),
    caCert: fs.readFileSync(path.join(dataDir, 'ca.pem')),
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A loopback HTTP server that records every request and answers with `answer(req, body)`
 * (`{ status, headers, body }`, or a promise of one: the request waits until it settles). */
export async function recordingServer(answer) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const record = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(record);
      Promise.resolve(answer(record, seen.length)).then((reply) => {
        if (reply === undefined) return; // never answer
        res.writeHead(reply.status, reply.headers ?? { 'content-type': 'application/json' });
        res.end(reply.body ?? '');
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // A test that fails before stopping its server must not keep the run from ending.
  server.unref();
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    async stop() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** The transpiled hostile stand-in for the vault client (built by `npm run build -- --test-fixtures`). */
export const HOSTILE = new URL('../generated/hostile/kvrun_guest.js', import.meta.url);

/** A Key Vault–style secret body. */
export function secretBody(origin, name, value) {
  return JSON.stringify({
    value,
    id: `${origin}/secrets/${name}/0123456789abcdef0123456789abcdef`,
    attributes: { enabled: true, created: 1700000000, updated: 1700000000, recoveryLevel: 'Recoverable+Purgeable' },
    tags: {},
  });
}
