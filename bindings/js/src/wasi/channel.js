// The worker's end of its line to the host (the main thread; see `../handoff.js`): requests
// and replies go out as messages on `port`, each followed by a bump of the `TO_HOST` counter;
// calls and answers come in on the same port, each followed by a bump of `TO_WORKER`, so the
// worker can block in `wasi:io/poll` (or between calls) with `Atomics.wait` and read them
// synchronously.

import { receiveMessageOnPort } from 'node:worker_threads';
import { SPIN_BUDGET, TO_HOST, TO_WORKER, spinWhile } from '../handoff.js';

const state = { port: undefined, counters: undefined, onAnswer: () => {}, calls: [] };

/** Set once by the worker before the component runs; `onAnswer` gets every answer. */
export function connect({ port, counters, onAnswer }) {
  state.port = port;
  state.counters = counters;
  state.onAnswer = onAnswer;
}

/** Sends a message to the host. */
export function send(message) {
  state.port.postMessage(message);
  Atomics.add(state.counters, TO_HOST, 1);
}

/** Reads every message that has arrived, without waiting: answers go to `onAnswer`, calls
 * wait in order for `nextCall`. */
export function drain() {
  for (;;) {
    const got = receiveMessageOnPort(state.port);
    if (!got) return;
    if (got.message.type === 'call') state.calls.push(got.message);
    else state.onAnswer(got.message);
  }
}

/** Blocks until the host sends something, or `timeoutMs` passes; `seen` is the counter's
 * value read before the caller last drained. No spin: the host sends answers, which come
 * from the network. */
export function waitForHost(seen, timeoutMs) {
  Atomics.wait(state.counters, TO_WORKER, seen, timeoutMs);
}

/** The `TO_WORKER` counter's value. */
export function signalValue() {
  return Atomics.load(state.counters, TO_WORKER);
}

/** The next call, `{ id, op, args }`: spins for the budget the host set, then sleeps until
 * one comes. */
export function nextCall() {
  for (;;) {
    const seen = signalValue();
    drain();
    if (state.calls.length) return state.calls.shift();
    if (!spinWhile(state.counters, TO_WORKER, seen, Atomics.load(state.counters, SPIN_BUDGET))) waitForHost(seen, Infinity);
  }
}
