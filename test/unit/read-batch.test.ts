// How the gets of one event-loop turn are cut into statements.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getBatchSize } from '../../src/read-batch.js';

/** The statements `n` gets go as, by their sizes. */
const parts = (n: number): number[] => {
  const size = getBatchSize(n);
  const out: number[] = [];
  for (let i = 0; i < n; i += size) out.push(Math.min(size, n - i));
  return out;
};

test('below 16 gets: one statement', () => {
  assert.deepEqual(parts(2), [2]);
  assert.deepEqual(parts(15), [15]);
});

test('from 16 gets: at least two statements, near-equal', () => {
  assert.deepEqual(parts(16), [8, 8]);
  assert.deepEqual(parts(17), [9, 8]);
  assert.deepEqual(parts(512), [256, 256]);
});

test('never more than 256 keys in one statement', () => {
  assert.deepEqual(parts(513), [171, 171, 171]);
  for (const n of [600, 1000, 4097]) {
    const p = parts(n);
    assert.ok(
      p.every((s) => s <= 256),
      String(n),
    );
    assert.equal(
      p.reduce((a, b) => a + b, 0),
      n,
    );
  }
});
