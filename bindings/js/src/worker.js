// The vault client component's worker thread. The component runs here, synchronously, with
// the `wasi:*` imports of `./wasi/` (no network, no files, an environment of the vault's
// settings only); its HTTP requests go to the main thread's boundary as messages, and the
// worker blocks in `wasi:io/poll` until the answers arrive. The worker never returns to its
// event loop: it takes calls one at a time from its channel (`./wasi/channel.js`). The
// credential never enters this thread.

import { parentPort, workerData } from 'node:worker_threads';
import { connect, nextCall, send } from './wasi/channel.js';
import { settle } from './wasi/http.js';
import { setEnvironment } from './wasi/cli.js';

connect({ port: workerData.port, counters: workerData.counters, onAnswer: settle });
setEnvironment(workerData.env);

const { keyvault } = await import(workerData.module ?? '../generated/kvrun_guest.js');
parentPort.postMessage({ ready: true });

for (;;) {
  const { id, op, args } = nextCall();
  let reply;
  try {
    reply = { type: 'reply', id, value: keyvault[op](...args) };
  } catch (e) {
    if (!(e && Object.prototype.hasOwnProperty.call(e, 'payload'))) {
      send({ type: 'reply', id, fatal: `the vault client component failed: ${e?.message ?? e}` });
      process.exit(1);
    }
    reply = { type: 'reply', id, error: e.payload };
  }
  send(reply);
}
