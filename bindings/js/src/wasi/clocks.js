// `wasi:clocks`: monotonic time from `process.hrtime`, timers as pollables, wall-clock time.

import { Pollable } from './io.js';

function now() {
  return process.hrtime.bigint();
}

function subscribeInstant(when) {
  return new Pollable(() => process.hrtime.bigint() >= when, when);
}

function subscribeDuration(duration) {
  return subscribeInstant(process.hrtime.bigint() + duration);
}

export const monotonicClock = { now, resolution: () => 1n, subscribeInstant, subscribeDuration };

export const wallClock = {
  now() {
    const ms = Date.now();
    return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1e6 };
  },
  resolution() {
    return { seconds: 0n, nanoseconds: 1e6 };
  },
};
