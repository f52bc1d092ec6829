// How the main thread and the component's worker hand each other messages.
//
// Messages travel on one `MessageChannel` (calls and answers to the worker, requests and
// replies back); beside it a `SharedArrayBuffer` holds two counters, bumped after every
// message each way, and the spin budget the main thread sets for both. The worker never
// returns to its event loop: it waits for its next call or answer on its counter with
// `Atomics.wait` and reads the message with `receiveMessageOnPort`. The main thread reads the
// worker's messages from its event loop, or, when it has just handed the worker something
// whose next message comes within microseconds (a call, or the last answer the worker waits
// for), by watching the worker's counter for a moment.
//
// Why the watching: on the virtual machines this package runs on, a thread that has gone to
// sleep takes 35-45 µs to wake, and the thread that wakes it pays a comparable time in the
// kernel; a warm get passes the turn between the threads four times, and the component's
// own steps take 40-80 µs each. So each side spins (reads the counter in a loop) for up to
// the budget before it sleeps: the worker for its next call after a reply, the main thread
// for the worker's next message after a call or the last answer. Nobody spins while the
// vault answers (a network wait), and a spin that finds nothing ends at its budget.
//
// Spinning pays only while a core is free for the thread being waited for: on a machine
// whose cores are all busy, the spinning thread takes the time the other needs (a warm get
// measured 2.1x the SDK's time with a spin budget against 1.1x without, with one core of two
// busy elsewhere), and there a sleeping thread wakes fast anyway. The `SpinGate` decides:
// the budget is spent only while Linux's count of runnable tasks, read now and then when
// only the main thread of this package runs, leaves a core free.

import fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

/** The counter the main thread bumps after each message to the worker. */
export const TO_WORKER = 0;

/** The counter the worker bumps after each message to the main thread. */
export const TO_HOST = 1;

/** Where the main thread puts the spin budget (µs) both threads use now: the configured one
 * while the `SpinGate` is open, else 0. */
export const SPIN_BUDGET = 2;

/** The default spin budget, in microseconds: longer than the component's usual step and the
 * main thread's turn between two calls, short beside a call. */
export const DEFAULT_SPIN_MICROSECONDS = 200;

/** The largest spin budget a Keyvault accepts, in microseconds. */
export const MAX_SPIN_MICROSECONDS = 10_000;

/** Makes the shared counters (`Int32Array` over a new `SharedArrayBuffer`). */
export function newCounters() {
  return new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT));
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

/** The number of runnable tasks on the machine now (the fourth field of Linux's
 * `/proc/loadavg`, this thread included), or `undefined` where there is no such file. */
export function runnableTasks() {
  if (loadavg === undefined) {
    try {
      loadavg = fs.openSync('/proc/loadavg', 'r');
    } catch {
      loadavg = null;
    }
  }
  if (loadavg === null) return undefined;
  const n = fs.readSync(loadavg, loadavgBuffer, 0, loadavgBuffer.length, 0);
  const running = Number(loadavgBuffer.toString('latin1', 0, n).split(' ')[3]?.split('/')[0]);
  return Number.isInteger(running) && running > 0 ? running : undefined;
}

/** `/proc/loadavg`, opened once (`null` where it cannot be), and the buffer it is read into. */
let loadavg;
const loadavgBuffer = Buffer.alloc(128);

/**
 * Whether spinning pays now: open while a core is free for the other thread. `sample()` is
 * called where only the main thread of this package runs (the worker asleep waiting for an
 * answer); it reads the runnable count at most every `everyMs` and keeps the last `window`
 * readings, and the gate is open when the fewest of them leaves a core beside the reader's
 * (at most `cores - 1` runnable). With one core it never opens; where the count cannot be
 * read, it is open with two cores or more.
 */
export class SpinGate {
  /**
   * @param {{ cores?: number, runnable?: () => number | undefined, clock?: () => number, everyMs?: number, window?: number }} [options]
   */
  constructor({ cores = availableParallelism(), runnable = runnableTasks, clock = () => performance.now(), everyMs = 10, window = 4 } = {}) {
    this.#cores = cores;
    this.#runnable = runnable;
    this.#clock = clock;
    this.#everyMs = everyMs;
    this.#window = window;
  }

  #cores;
  #runnable;
  #clock;
  #everyMs;
  #window;
  #readings = [];
  #lastRead = -Infinity;

  /** Reads the runnable count if the last reading is older than `everyMs`. */
  sample() {
    const now = this.#clock();
    if (now - this.#lastRead < this.#everyMs) return;
    this.#lastRead = now;
    const running = this.#runnable();
    if (running === undefined) return;
    this.#readings.push(running);
    if (this.#readings.length > this.#window) this.#readings.shift();
  }

  /** Whether a spin may be spent now. */
  get open() {
    if (this.#cores < 2) return false;
    if (this.#readings.length === 0) return true;
    return Math.min(...this.#readings) <= this.#cores - 1;
  }
}
