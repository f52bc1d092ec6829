// The spin gate (`src/handoff.js`), directly, with a stand-in clock and runnable counts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpinGate, runnableTasks, spinWhile } from '../src/handoff.js';

function gate(cores, counts) {
  const clock = { now: 0 };
  const readings = [...counts];
  const g = new SpinGate({ cores, runnable: () => readings.shift(), clock: () => clock.now, everyMs: 10, window: 3 });
  return { g, clock };
}

test('open while the fewest recent readings leave a core beside the reader', () => {
  const { g, clock } = gate(2, [1, 2, 2, 2, 2]);
  assert.equal(g.open, true, 'no reading yet: open with two cores');
  g.sample();
  assert.equal(g.open, true, 'only the reader runs');
  for (let i = 0; i < 2; i++) {
    clock.now += 10;
    g.sample();
  }
  assert.equal(g.open, true, 'one quiet reading among the last three');
  clock.now += 10;
  g.sample();
  assert.equal(g.open, false, 'three readings with another task running: every core busy');
});

test('reads at most every everyMs', () => {
  const { g, clock } = gate(2, [3, 1]);
  g.sample();
  assert.equal(g.open, false);
  clock.now += 5;
  g.sample();
  assert.equal(g.open, false, 'the second reading waits for its time');
  clock.now += 5;
  g.sample();
  assert.equal(g.open, true);
});

test('never open with one core; open with more cores while one is free', () => {
  assert.equal(gate(1, []).g.open, false);
  const { g } = gate(8, [7]);
  g.sample();
  assert.equal(g.open, true);
  const busy = gate(8, [8]).g;
  busy.sample();
  assert.equal(busy.open, false);
});

test('where the count cannot be read, open with two cores or more', () => {
  const g = new SpinGate({ cores: 4, runnable: () => undefined });
  g.sample();
  assert.equal(g.open, true);
});

test('the runnable count is read on Linux, this thread included', { skip: process.platform !== 'linux' }, () => {
  const n = runnableTasks();
  assert.ok(Number.isInteger(n) && n >= 1, String(n));
});

test('a spin ends when the counter moves, or at its budget', () => {
  const counters = new Int32Array(new SharedArrayBuffer(12));
  assert.equal(spinWhile(counters, 0, 0, 0), false);
  const start = performance.now();
  assert.equal(spinWhile(counters, 0, 0, 2000), false);
  assert.ok(performance.now() - start >= 2, 'spun for its budget');
  Atomics.add(counters, 0, 1);
  assert.equal(spinWhile(counters, 0, 0, 1_000_000), true);
});
