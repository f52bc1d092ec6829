// How the main thread and the component's worker hand each other messages.
//
// Messages travel on one `MessageChannel` (calls and answers to the worker, requests and
// replies back); beside it a `SharedArrayBuffer` holds two counters, bumped after every
// message each way. The worker never returns to its event loop: it waits for its next call
// or answer on its counter with `Atomics.wait` and reads the message with
// `receiveMessageOnPort`. The main thread reads the worker's messages from its event loop,
// or, when it has just handed the worker something whose next message comes within
// microseconds (a call, or the last answer the worker waits for), by watching the worker's
// counter for a moment.
//
// Why the watching: on the virtual machines this package runs on, a thread that has gone to
// sleep takes 35-45 µs to wake, and the thread that wakes it pays a comparable time in the
// kernel; a warm get passes the turn between the threads four times, and the component's
// own steps take 40-80 µs each. So each side spins (reads the counter in a loop) for up to
// `spinMicroseconds` before it sleeps: the worker for its next call after a reply, the main
// thread for the worker's next message after a call or the last answer. Nobody spins while
// the vault answers (a network wait), and a spin that finds nothing ends at its budget.

import { performance } from 'node:perf_hooks';

/** The counter the main thread bumps after each message to the worker. */
export const TO_WORKER = 0;

/** The counter the worker bumps after each message to the main thread. */
export const TO_HOST = 1;

/** The default spin budget, in microseconds: longer than the component's usual step and the
 * main thread's turn between two calls, short beside a call. */
export const DEFAULT_SPIN_MICROSECONDS = 200;

/** The largest spin budget a Keyvault accepts, in microseconds. */
export const MAX_SPIN_MICROSECONDS = 10_000;

/** Makes the shared counters (`Int32Array` over a new `SharedArrayBuffer`). */
export function newCounters() {
  return new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
}

/** Reads `counters[index]` in a loop until it is no longer `seen` or `microseconds` pass;
 * whether it changed. */
export function spinWhile(counters, index, seen, microseconds) {
  if (Atomics.load(counters, index) !== seen) return true;
  if (microseconds <= 0) return false;
  const end = performance.now() + microseconds / 1000;
  while (Atomics.load(counters, index) === seen) {
    if (performance.now() >= end) return false;
  }
  return true;
}
