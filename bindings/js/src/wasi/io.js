// `wasi:io` for the vault client component: pollables, streams and errors, all in the
// component's worker. A pollable is ready at once (streams over buffers), at a monotonic
// deadline (timers), or when the host answers (HTTP responses); `poll` blocks on the host's
// signal with the earliest timer as its timeout.

import { drain, signalValue, waitForHost } from './channel.js';

/** `wasi:io/error.error`. */
class IoError {
  constructor(message) {
    this.message = message;
  }
  toDebugString() {
    return this.message;
  }
}

/** `wasi:io/poll.pollable`. `isReady` says whether it is ready; `deadline` (monotonic ns,
 * bigint) bounds how long `poll` may wait for it. */
export class Pollable {
  constructor(isReady, deadline) {
    this._isReady = isReady;
    this._deadline = deadline;
  }
  ready() {
    drain();
    return this._isReady();
  }
  block() {
    pollList([this]);
  }
}

/** A pollable that is always ready. */
export function readyPollable() {
  return new Pollable(() => true, undefined);
}

/** `wasi:io/poll.poll`: the indices of the ready pollables, waiting until one is. */
export function pollList(list) {
  if (list.length === 0) throw new TypeError('poll needs at least one pollable');
  for (;;) {
    const seen = signalValue();
    drain();
    const ready = [];
    list.forEach((p, i) => {
      if (p._isReady()) ready.push(i);
    });
    if (ready.length) return new Uint32Array(ready);
    let timeout = Infinity;
    const now = process.hrtime.bigint();
    for (const p of list) {
      if (p._deadline !== undefined) {
        const ms = Number(p._deadline - now) / 1e6;
        timeout = Math.min(timeout, Math.max(0, ms));
      }
    }
    waitForHost(seen, timeout);
  }
}

/** `wasi:io/streams.input-stream` over bytes that are all there (a response body, stdin). */
export class InputStream {
  constructor(bytes = new Uint8Array(0)) {
    this._bytes = bytes;
    this._at = 0;
  }
  read(len) {
    if (this._at >= this._bytes.length) throw { tag: 'closed' };
    const n = Math.min(Number(len), this._bytes.length - this._at);
    const chunk = this._bytes.slice(this._at, this._at + n);
    this._at += n;
    return chunk;
  }
  blockingRead(len) {
    return this.read(len);
  }
  skip(len) {
    return BigInt(this.read(len).length);
  }
  blockingSkip(len) {
    return this.skip(len);
  }
  subscribe() {
    return readyPollable();
  }
}

/** Largest write an output stream accepts at once. */
const WRITE_BUDGET = 1 << 20;

/** `wasi:io/streams.output-stream` that hands its bytes to `sink` (or drops them). */
export class OutputStream {
  constructor(sink) {
    this._sink = sink;
    this._closed = false;
  }
  checkWrite() {
    if (this._closed) throw { tag: 'closed' };
    return BigInt(WRITE_BUDGET);
  }
  write(bytes) {
    if (this._closed) throw { tag: 'closed' };
    if (bytes.length > WRITE_BUDGET) throw { tag: 'last-operation-failed', val: new IoError('write larger than check-write allowed') };
    this._sink?.(bytes);
  }
  blockingWriteAndFlush(bytes) {
    this.write(bytes);
  }
  flush() {
    if (this._closed) throw { tag: 'closed' };
  }
  blockingFlush() {
    this.flush();
  }
  writeZeroes(len) {
    this.write(new Uint8Array(Number(len)));
  }
  blockingWriteZeroesAndFlush(len) {
    this.writeZeroes(len);
  }
  subscribe() {
    return readyPollable();
  }
  _close() {
    this._closed = true;
  }
}

// The interfaces, as jco's `--map 'wasi:io/*=…/io.js#*'` imports them.
export const error = { Error: IoError };
export const poll = { Pollable, poll: pollList };
export const streams = { InputStream, OutputStream };
