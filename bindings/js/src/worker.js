// The vault client component's worker thread. The component runs here, synchronously, with
// the `wasi:*` imports of `./wasi/` (no network, no files, an environment of the vault's
// settings only); its HTTP requests go to the main thread's boundary as messages, and the
// worker blocks in `wasi:io/poll` until the answers arrive. The credential never enters this
// thread.

import { parentPort, workerData } from 'node:worker_threads';
import { connect } from './wasi/channel.js';
import { settle } from './wasi/http.js';
import { setEnvironment } from './wasi/cli.js';

connect(workerData.port, workerData.signal, settle);
setEnvironment(workerData.env);

const { keyvault } = await import(workerData.module ?? '../generated/kvrun_guest.js');

parentPort.on('message', ({ id, op, args }) => {
  let reply;
  try {
    reply = { id, value: keyvault[op](...args) };
  } catch (e) {
    if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) {
      reply = { id, error: e.payload };
    } else {
      parentPort.postMessage({ id, fatal: `the vault client component failed: ${e?.message ?? e}` });
      process.exit(1);
    }
  }
  parentPort.postMessage(reply);
});
parentPort.postMessage({ ready: true });
