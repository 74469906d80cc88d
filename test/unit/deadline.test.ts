// Deadline arithmetic: how long a call may take, and which connection is late.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Deadlines, overdue, Watch } from '../../src/deadline.js';

test('a call may take statementTimeoutMs plus max(250 ms, a tenth)', () => {
  for (const [timeout, limit] of [
    [1000, 1250],
    [2500, 2750],
    [5000, 5500],
    [60_000, 66_000],
  ] as const) {
    const d = new Deadlines(timeout);
    try {
      assert.equal(d.limitMs, limit, String(timeout));
    } finally {
      d.close();
    }
  }
});

test('a connection is late when any of its calls is older than the limit, not only the first', () => {
  const w = new Watch(() => {});
  assert.equal(overdue(w, 10_000, 1000), false, 'no call in flight');
  w.since.push(9500, 9800);
  assert.equal(overdue(w, 10_000, 1000), false);
  assert.equal(overdue(w, 10_501, 1000), true);
  // A batch carries its oldest caller's time, so an older time may come after a newer one.
  const batch = new Watch(() => {});
  batch.since.push(9900, 8000);
  assert.equal(overdue(batch, 10_000, 1500), true);
});

test("the timeout error says what happened and keeps only the cause's message", () => {
  const d = new Deadlines(1000);
  try {
    const cause = Object.assign(new Error('terminated'), { query: 'SELECT $1', parameters: ['secret-key'] });
    const err = d.error(cause);
    assert.equal(err.code, 'timeout');
    assert.match(err.message, /no answer within 1250 ms/);
    assert.equal((err.cause as Error).message, 'terminated');
    assert.ok(!JSON.stringify(err.cause).includes('secret-key'));
  } finally {
    d.close();
  }
});
