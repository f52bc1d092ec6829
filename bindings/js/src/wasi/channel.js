// The worker's line to the host (the main thread): requests go out as messages on `port`;
// answers come back on it, and the host bumps `signal` (a shared Int32) and notifies, so the
// worker can block in `wasi:io/poll` with `Atomics.wait` and read them synchronously.

import { receiveMessageOnPort } from 'node:worker_threads';

const state = { port: undefined, signal: undefined, onMessage: () => {} };

/** Set once by the worker before the component runs. */
export function connect(port, signalBuffer, onMessage) {
  state.port = port;
  state.signal = new Int32Array(signalBuffer);
  state.onMessage = onMessage;
}

/** Sends a message to the host. */
export function send(message, transfer) {
  state.port.postMessage(message, transfer);
}

/** Reads every answer that has arrived, without waiting. */
export function drain() {
  for (;;) {
    const got = receiveMessageOnPort(state.port);
    if (!got) return;
    state.onMessage(got.message);
  }
}

/** Blocks until the host signals an answer, or `timeoutMs` passes; `seen` is the signal value
 * read before the caller last drained. */
export function waitForHost(seen, timeoutMs) {
  Atomics.wait(state.signal, 0, seen, timeoutMs);
}

/** The current signal value. */
export function signalValue() {
  return Atomics.load(state.signal, 0);
}
