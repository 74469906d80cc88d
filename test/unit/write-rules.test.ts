// The framework stores' decisions that need no database: when an unchanged session is touched,
// which subjects are written, and the expiry taken from a cookie.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SessionError } from '../../src/errors.js';
import { expiryOf, secondsOf } from '../../src/framework.js';
import { checkedSubject, touchDue } from '../../src/write-rules.js';

describe('touchDue', () => {
  const now = 1_000_000;
  const period = 3600;
  const expiresIn = (s: number) => now + s * 1000;
  test('not while more than the threshold of the period remains', () => {
    assert.equal(touchDue(expiresIn(3600), now, period, 0.5), false);
    assert.equal(touchDue(expiresIn(1801), now, period, 0.5), false);
  });
  test('once no more than the threshold remains, and once it has passed', () => {
    assert.equal(touchDue(expiresIn(1800), now, period, 0.5), true);
    assert.equal(touchDue(expiresIn(1), now, period, 0.5), true);
    assert.equal(touchDue(expiresIn(0), now, period, 0.5), true);
    assert.equal(touchDue(expiresIn(-10), now, period, 0), true);
  });
  test('threshold 1: every request; threshold 0: only an expired session', () => {
    assert.equal(touchDue(expiresIn(3600), now, period, 1), true);
    assert.equal(touchDue(expiresIn(1), now, period, 0), false);
  });
});

describe('checkedSubject', () => {
  test('null and undefined: anonymous', () => {
    assert.equal(checkedSubject(null), null);
    assert.equal(checkedSubject(undefined), null);
  });
  test('a non-empty string of at most 256 bytes is kept', () => {
    assert.equal(checkedSubject('alice'), 'alice');
    assert.equal(checkedSubject('é'.repeat(128)), 'é'.repeat(128));
  });
  test('anything else is invalid_argument', () => {
    for (const s of ['', 'x'.repeat(257), 'é'.repeat(129), 'a\u0000b', '\ud800', 42, {}, ['a']]) {
      assert.throws(
        () => checkedSubject(s),
        (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
        JSON.stringify(s),
      );
    }
  });
});

describe('expiry from the cookie', () => {
  test('maxAge in ms to whole seconds, rounded up; anything else means the default period', () => {
    assert.equal(secondsOf(1500), 2);
    assert.equal(secondsOf(60_000), 60);
    for (const v of [null, undefined, NaN, Infinity, '60000']) assert.equal(secondsOf(v), undefined, String(v));
  });
  test('maxAge wins over expires; expires counts from now; no cookie: default', () => {
    assert.equal(expiryOf({ cookie: { maxAge: 10_000, expires: new Date(0) } }), 10);
    const inAMinute = expiryOf({ cookie: { expires: new Date(Date.now() + 60_000).toISOString() } }) ?? 0;
    assert.ok(inAMinute >= 59 && inAMinute <= 60, String(inAMinute));
    assert.equal(expiryOf({}), undefined);
    assert.equal(expiryOf({ cookie: { maxAge: null } }), undefined);
  });
});
