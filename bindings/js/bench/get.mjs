// Warm getSecret from Node: kvrun's package (the jco-transpiled component behind the JS
// boundary) vs @azure/keyvault-secrets, side by side against the same `kvrun vault serve`,
// and the floor of the package's worker hops (a bare ping-pong) beside them.
//
//   node bench/get.mjs [calls]
//
// Prints, each against the SDK in the same run: warm `getSecret` one at a time (the package
// with its default spin budget and with `spinMicroseconds: 0`, the CPU time of the whole
// process per call beside each), `getSecrets` of 100 names against the SDK's 100 concurrent
// `getSecret` calls, 8 callers at once on one client, and 8 callers against a stand-in of a
// distant vault with one worker and with four.
//
// The SDK needs the vault's CA in NODE_EXTRA_CA_CERTS, which Node reads only at start-up, so
// the script starts the vault and then runs itself again with it set.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const calls = Number(process.argv[2] ?? 2000);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function p99(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round(0.99 * (s.length - 1)))];
}

// The floor of the package's transport, with no component and no network: the same four
// hops as a warm get (the call to the worker, the worker's request to the main thread, the
// answer back with `Atomics.notify`, the reply to the call), between a bare worker and this
// thread, timed per round trip.
const PING_WORKER = `
  const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
  const signal = new Int32Array(workerData.signal);
  parentPort.on('message', (call) => {
    const seen = Atomics.load(signal, 0);
    workerData.port.postMessage({ id: call.id, headers: [['accept', new Uint8Array(16)]] });
    Atomics.wait(signal, 0, seen);
    const answer = receiveMessageOnPort(workerData.port).message;
    parentPort.postMessage({ id: call.id, value: answer.body.length });
  });
`;

async function pingPong(rounds) {
  const { Worker, MessageChannel } = await import('node:worker_threads');
  const { port1, port2 } = new MessageChannel();
  const signal = new SharedArrayBuffer(4);
  const counter = new Int32Array(signal);
  const worker = new Worker(PING_WORKER, { eval: true, workerData: { port: port2, signal }, transferList: [port2] });
  port1.on('message', (request) => {
    port1.postMessage({ id: request.id, status: 200, headers: [['content-type', new Uint8Array(16)]], body: new Uint8Array(300) });
    Atomics.add(counter, 0, 1);
    Atomics.notify(counter, 0);
  });
  const times = [];
  for (let id = 0; id < rounds + 200; id++) {
    const t = process.hrtime.bigint();
    await new Promise((resolve) => {
      worker.once('message', resolve);
      worker.postMessage({ id, op: 'getSecret', args: ['bench-secret', undefined] });
    });
    if (id >= 200) times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  port1.close();
  await worker.terminate();
  return times;
}

/** Median and 99th percentile of `values`, rounded. */
function row(label, values, extra = '') {
  return `${label.padEnd(40)} ${median(values).toFixed(0).padStart(8)} ${p99(values).toFixed(0).padStart(8)}${extra}`;
}

/** Runs `get` for `rounds` rounds of 100 calls per client, the clients taking turns, and
 * returns each client's per-call times (µs) and CPU time per call (µs, the whole process). */
async function timeTurns(clients, rounds, batch = 100) {
  const times = Object.fromEntries(Object.keys(clients).map((k) => [k, []]));
  const cpu = Object.fromEntries(Object.keys(clients).map((k) => [k, 0]));
  for (let round = 0; round < rounds; round++) {
    for (const [label, get] of Object.entries(clients)) {
      const before = process.cpuUsage();
      for (let i = 0; i < batch; i++) {
        const t = process.hrtime.bigint();
        await get();
        times[label].push(Number(process.hrtime.bigint() - t) / 1000);
      }
      const used = process.cpuUsage(before);
      cpu[label] += used.user + used.system;
    }
  }
  for (const label of Object.keys(cpu)) cpu[label] /= times[label].length;
  return { times, cpu };
}

async function measure() {
  const { Keyvault } = await import('../src/index.js');
  const { SecretClient } = await import('@azure/keyvault-secrets');
  const { KVRUN_BENCH_URL: url, KVRUN_BENCH_TOKEN: token, NODE_EXTRA_CA_CERTS: ca } = process.env;
  const ours = new Keyvault({ vaultUrl: url, token, caCert: fs.readFileSync(ca) });
  const sleepy = new Keyvault({ vaultUrl: url, token, caCert: fs.readFileSync(ca), spinMicroseconds: 0 });
  const names = Array.from({ length: 100 }, (_, i) => `bench-many-${i}`);
  await ours.setSecret('bench-secret', 'bench-value');
  await ours.setSecrets(Object.fromEntries(names.map((n) => [n, `value-of-${n}`])));
  const sdk = new SecretClient(url, { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) }, { disableChallengeResourceVerification: true });
  const gets = {
    kvrun: async () => (await ours.getSecret('bench-secret')).value,
    'kvrun, spinMicroseconds: 0': async () => (await sleepy.getSecret('bench-secret')).value,
    sdk: async () => (await sdk.getSecret('bench-secret')).value,
  };
  for (const get of Object.values(gets)) for (let i = 0; i < 50; i++) if ((await get()) !== 'bench-value') throw new Error('wrong value');
  const single = await timeTurns(gets, calls / 100);
  await sleepy.close();

  // getSecrets of 100 names against the SDK's 100 concurrent getSecret calls.
  const many = {
    kvrun: async () => {
      const got = await ours.getSecrets(names);
      if (got[names[99]] !== `value-of-${names[99]}`) throw new Error('wrong value');
    },
    sdk: async () => {
      const got = await Promise.all(names.map((n) => sdk.getSecret(n)));
      if (got[99].value !== `value-of-${names[99]}`) throw new Error('wrong value');
    },
  };
  const batches = await timeTurns(many, 5, 10);

  // 8 callers at once on one client, each getting in a loop: calls per second and per-call time.
  const concurrent = { kvrun: { rate: [], times: [] }, sdk: { rate: [], times: [] } };
  for (let round = 0; round < 3; round++) {
    for (const label of ['kvrun', 'sdk']) {
      const get = gets[label];
      const perCaller = calls / 8;
      const t0 = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < perCaller; i++) {
            const t = process.hrtime.bigint();
            await get();
            concurrent[label].times.push(Number(process.hrtime.bigint() - t) / 1000);
          }
        }),
      );
      concurrent[label].rate.push(calls / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
  }
  await ours.close();
  const slow = await slowVault(Keyvault);
  const floor = await pingPong(calls);

  console.log(`node ${process.version}; medians and 99th percentiles in microseconds`);
  console.log(`\nwarm getSecret, ${calls} calls each, in turns of 100   ${'median'.padStart(8)} ${'p99'.padStart(8)}  CPU/call`);
  for (const [label, values] of Object.entries(single.times)) {
    console.log(row(label === 'sdk' ? '@azure/keyvault-secrets' : label, values, `  ${single.cpu[label].toFixed(0).padStart(8)}`));
  }
  console.log(row('ping-pong floor (4 hops, no component)', floor));
  console.log(`kvrun / SDK: ${(median(single.times.kvrun) / median(single.times.sdk)).toFixed(2)}x (goal: at most 1.3x on a quiet machine, 1.5x always)`);
  console.log(`\n100 names at once, 50 batches each: kvrun getSecrets vs the SDK's 100 concurrent getSecret`);
  console.log(row('kvrun getSecrets(100)', batches.times.kvrun));
  console.log(row('SDK, 100 getSecret with Promise.all', batches.times.sdk));
  console.log(`kvrun / SDK: ${(median(batches.times.kvrun) / median(batches.times.sdk)).toFixed(2)}x`);
  console.log(`\n8 callers at once on one client (kvrun with its default 4 workers), ${calls} gets in all, 3 rounds`);
  for (const label of ['kvrun', 'sdk']) {
    const rates = concurrent[label].rate.map((r) => r.toFixed(0)).join(', ');
    console.log(row(label === 'sdk' ? '@azure/keyvault-secrets' : label, concurrent[label].times, `  ${rates} calls/s`));
  }
  console.log(`\n8 callers at once, 25 gets each, against a stand-in answering after ${SLOW_MS} ms (plain http on loopback)`);
  for (const [workers, rate] of Object.entries(slow)) console.log(`${`kvrun, workers: ${workers}`.padEnd(40)} ${rate.toFixed(0).padStart(8)} calls/s`);
}

const SLOW_MS = 10;

/** Calls per second of 8 callers on one Keyvault, by its `workers`, against a loopback
 * stand-in of a distant vault (every answer after SLOW_MS): what overlapping calls gain when
 * the network, not the CPU, is the wait. */
async function slowVault(Keyvault) {
  const http = await import('node:http');
  const body = JSON.stringify({ value: 'v', id: 'https://kv.vault.azure.net/secrets/x/0123456789abcdef0123456789abcdef', attributes: { enabled: true, created: 1, updated: 1 }, tags: {} });
  const server = http.createServer((req, res) => {
    req.resume();
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), SLOW_MS);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const rates = {};
  for (const workers of [1, 4]) {
    const kv = new Keyvault({ vaultUrl: `http://127.0.0.1:${server.address().port}`, token: 'stand-in', workers });
    const callers = () => Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 25; i++) await kv.getSecret('x');
    }));
    await callers();
    const t0 = process.hrtime.bigint();
    await callers();
    rates[workers] = 200 / (Number(process.hrtime.bigint() - t0) / 1e9);
    await kv.close();
  }
  server.closeAllConnections();
  server.close();
  return rates;
}

async function main() {
  const binary = process.env.KVRUN_BIN ?? [path.join(root, 'target', 'release', 'kvrun'), path.join(root, 'target', 'debug', 'kvrun')].find((p) => fs.existsSync(p));
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvrun-bench-js-'));
  const vault = spawn(binary, ['vault', 'serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  const [first] = await once(readline.createInterface({ input: vault.stderr }), 'line');
  const url = first.replace('kvrun local vault serving ', '');
  console.log(`vault: ${binary} at ${url}`);
  vault.stderr.resume();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), String(calls)], {
    stdio: 'inherit',
    env: { ...process.env, KVRUN_BENCH_CHILD: '1', KVRUN_BENCH_URL: url, KVRUN_BENCH_TOKEN: fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim(), NODE_EXTRA_CA_CERTS: path.join(dataDir, 'ca.pem') },
  });
  const [status] = await once(child, 'exit');
  vault.kill('SIGTERM');
  await once(vault, 'exit');
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.exitCode = status;
}

if (process.env.KVRUN_BENCH_CHILD) await measure();
else await main();
