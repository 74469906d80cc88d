// How group commit cuts the queued writes into batches (halves() moved from batch.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { batchLength, halves, type WriteCall } from '../../src/group-commit.js';

const call = (key: string | null, value: string): WriteCall => ({
  kind: key === null ? 'generate' : 'set',
  key,
  value,
  expiry: null,
  resolve: () => {},
  reject: () => {},
});

describe('splitting a batch', () => {
  test('halves(): near-equal parts by position, every call of a key in the part of its first call', () => {
    const calls = [
      call('x', '1'),
      ...Array.from({ length: 10 }, (_, i) => call(`k${i}`, 'v')),
      call(null, 'g'),
      call('x', '2'),
      call('k1', 'again'),
      ...Array.from({ length: 10 }, (_, i) => call(`m${i}`, 'v')),
      call('x', '3'),
    ];
    const [first, second] = halves(calls);
    assert.deepEqual(
      [...first, ...second].sort((a, b) => calls.indexOf(a) - calls.indexOf(b)),
      calls,
    );
    // Each part keeps call order.
    for (const part of [first, second])
      assert.deepEqual(
        part,
        [...part].sort((a, b) => calls.indexOf(a) - calls.indexOf(b)),
      );
    assert.deepEqual(
      first.filter((c) => c.key === 'x').map((c) => c.value),
      ['1', '2', '3'],
    );
    assert.deepEqual(
      first.filter((c) => c.key === 'k1').map((c) => c.value),
      ['v', 'again'],
    );
    assert.ok(second.every((c) => c.key !== 'x' && c.key !== 'k1'));
    // 25 calls: the first 13 by position, plus the two later calls of keys of the first part.
    assert.equal(first.length, 15);
    assert.deepEqual(
      halves(Array.from({ length: 24 }, (_, i) => call(`d${i}`, 'v'))).map((p) => p.length),
      [12, 12],
    );
    assert.deepEqual(
      halves(Array.from({ length: 30 }, () => call('same', 'v'))).map((p) => p.length),
      [30, 0],
    );
  });

  test('batchLength(): up to the call limit, up to about the byte limit, at least one call', () => {
    const limits = { calls: 4, bytes: 100 };
    assert.equal(
      batchLength(
        Array.from({ length: 10 }, (_, i) => call(`k${i}`, 'v')),
        limits,
      ),
      4,
    );
    assert.equal(batchLength([call('a', 'v'), call('b', 'v')], limits), 2);
    // 'k0' + 60 characters, twice: the second call would pass 100.
    assert.equal(batchLength([call('k0', 'x'.repeat(60)), call('k1', 'x'.repeat(60)), call('k2', 'v')], limits), 1);
    // A first call larger than the limit still goes, alone.
    assert.equal(batchLength([call('big', 'x'.repeat(500)), call('b', 'v')], limits), 1);
  });

  test('batchLength(): a call that is never batched goes alone, and ends the batch before it', () => {
    const admin: WriteCall = { kind: undefined, key: null, value: null, expiry: null, resolve: () => {}, reject: () => {} };
    assert.equal(batchLength([admin, call('a', 'v')], { calls: 10, bytes: 1000 }), 1);
    assert.equal(batchLength([call('a', 'v'), call('b', 'v'), admin, call('c', 'v')], { calls: 10, bytes: 1000 }), 2);
  });
});
