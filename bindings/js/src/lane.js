// One worker thread running the vault client component, and the main thread's end of its
// channel (`./handoff.js`). The worker takes its calls one at a time (the component is
// synchronous); the requests it makes go to the Keyvault's boundary through `serve`, and its
// replies settle the calls. A Keyvault runs calls that overlap on more lanes, up to its
// `workers` (`./index.js`).

import { Worker, MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { SPIN_BUDGET, TO_HOST, TO_WORKER, newCounters, spinWhile } from './handoff.js';
import { ComponentError, Unavailable } from './errors.js';

/** A worker with the component, and the calls it has been given. */
export class Lane {
  /**
   * @param {object} options
   * @param {[string, string][]} options.env the component's environment.
   * @param {string} [options.module] another transpiled component module (a test double).
   * @param {(request: object) => Promise<object>} options.serve sends a request frame
   *   through the boundary; resolves to the answer (never rejects).
   * @param {() => number} options.spinBudget the spin budget (µs) to use now.
   * @param {(lane: Lane) => boolean} options.alone whether no other lane has work, so this
   *   one's next message is the only thing the main thread waits for.
   * @param {(lane: Lane) => void} options.onExit called once when the worker has stopped.
   */
  constructor({ env, module, serve, spinBudget, alone, onExit }) {
    const { port1, port2 } = new MessageChannel();
    const counters = newCounters();
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { port: port2, counters, env, module },
      transferList: [port2],
      env: {},
      stdout: true,
      stderr: true,
    });
    this.#worker = worker;
    this.#port = port1;
    this.#counters = counters;
    this.#serve = serve;
    this.#spinBudget = spinBudget;
    this.#alone = alone;
    Atomics.store(counters, SPIN_BUDGET, spinBudget());
    port1.on('message', (m) => this.#fromWorker(m));
    this.ready = new Promise((resolve, reject) => {
      worker.once('message', (m) => (m.ready ? resolve() : reject(new ComponentError('the vault client component did not start', { kind: 'component' }))));
      worker.once('error', (e) => reject(new ComponentError(`the vault client component did not start: ${e.message}`, { kind: 'component' })));
    });
    // A start-up failure is reported to the call that waits for `ready`.
    this.ready.catch(() => {});
    worker.on('exit', () => {
      this.#stopped = true;
      port1.close();
      for (const call of [...this.#calls.values()]) call.reject(new ComponentError('the vault client component stopped', { kind: 'component' }));
      onExit(this);
    });
  }

  /** Resolves once the component has loaded in the worker. */
  ready;

  #worker;
  #port;
  #counters;
  #serve;
  #spinBudget;
  #alone;
  #calls = new Map();
  #nextId = 1;
  #requestsInFlight = 0;
  #stopped = false;

  /** How many calls this lane has been given and not yet answered. */
  get load() {
    return this.#calls.size;
  }

  /** Whether the lane has a call or a request under way. */
  get busy() {
    return this.#calls.size > 0 || this.#requestsInFlight > 0;
  }

  /**
   * Runs `op(...args)` in the component. Resolves to the worker's reply (`{ value }`,
   * `{ error }` with the contract's error, or `{ fatal }`); rejects with `Unavailable` (kind
   * `timeout`) after `timeoutMs`, when the worker is stopped, or with `ComponentError` when
   * the worker stops or cannot start.
   */
  call(op, args, timeoutMs) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The component is blocked inside the call: stop the worker; its other calls fail
        // and later calls go to another lane.
        this.#calls.delete(id);
        reject(new Unavailable(`${op} did not finish within ${timeoutMs / 1000} s`, { kind: 'timeout' }));
        this.stop();
      }, timeoutMs);
      const settle = (f) => (v) => {
        clearTimeout(timer);
        this.#calls.delete(id);
        f(v);
      };
      // Counted at once, so that calls made before the worker is ready see this lane busy.
      this.#calls.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this.#worker.ref();
      this.#port.ref();
      this.ready.then(
        () => {
          if (!this.#calls.has(id)) return;
          if (this.#stopped) {
            this.#calls.get(id).reject(new ComponentError('the vault client component stopped', { kind: 'component' }));
            return;
          }
          // The worker takes calls one at a time: a call's first request comes within
          // microseconds only when nothing else is ahead of it.
          this.#toWorker({ type: 'call', id, op, args }, this.#calls.size === 1 && this.#requestsInFlight === 0 && this.#alone(this));
        },
        (error) => this.#calls.get(id)?.reject(error),
      );
    });
  }

  /** Whether the worker has stopped or is stopping. */
  get stopped() {
    return this.#stopped;
  }

  /** Stops the worker; its unanswered calls fail. */
  stop() {
    this.#stopped = true;
    return this.#worker.terminate();
  }

  /** A message from the worker: a request for the boundary, or a call's reply. */
  #fromWorker(m) {
    if (m === null || typeof m !== 'object') return;
    if (m.type === 'request') {
      this.#forward(m);
      return;
    }
    const call = this.#calls.get(m.id);
    if (!call) return;
    call.resolve(m);
    if (this.#calls.size === 0) {
      this.#worker.unref();
      this.#port.unref();
    }
  }

  /** Sends one of the component's requests through the boundary and hands the answer back. */
  async #forward(request) {
    // Only this thread of the package may run now (the worker waits for the answer): the
    // moment to learn the spin budget.
    Atomics.store(this.#counters, SPIN_BUDGET, this.#spinBudget());
    this.#requestsInFlight++;
    const answer = await this.#serve(request);
    this.#requestsInFlight--;
    if (this.#stopped) return;
    // The worker's next message comes within microseconds only when this answer was the
    // last one it waited for.
    this.#toWorker({ type: 'answer', id: request.id, ...answer }, this.#requestsInFlight === 0 && this.#alone(this), answer.body ? [answer.body.buffer] : []);
  }

  /** Hands the worker a message (moving the buffers in `transfer`); with `nextComesSoon`,
   * watches for its next message for the spin budget and takes what has come at once. */
  #toWorker(message, nextComesSoon, transfer = []) {
    const counters = this.#counters;
    const seen = Atomics.load(counters, TO_HOST);
    this.#port.postMessage(message, transfer);
    Atomics.add(counters, TO_WORKER, 1);
    Atomics.notify(counters, TO_WORKER);
    if (!nextComesSoon || !spinWhile(counters, TO_HOST, seen, Atomics.load(counters, SPIN_BUDGET))) return;
    for (let got = receiveMessageOnPort(this.#port); got && !this.#stopped; got = receiveMessageOnPort(this.#port)) {
      this.#fromWorker(got.message);
    }
  }
}
