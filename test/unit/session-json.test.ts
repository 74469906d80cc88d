// Stored session values as the framework stores parse them (moved from adapters-hostile.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SessionError } from '../../src/errors.js';
import { dataOf, parseSession } from '../../src/session-json.js';

describe('parseSession', () => {
  test('drops the keys at every level and keeps the rest; the result has plain prototypes', () => {
    const s = parseSession(
      '{"__proto__":{"a":1},"x":{"constructor":{"prototype":{"b":2}},"y":[{"valueOf":3,"z":4}]},"prototype":5}',
    );
    assert.deepEqual(s, { x: { y: [{ z: 4 }] } });
    assert.equal(Object.getPrototypeOf(s), Object.prototype);
    assert.equal(Object.hasOwn(s, '__proto__'), false);
  });

  test('a value that is not a JSON object is a SessionError with code database', () => {
    for (const text of ['[]', '"s"', '1', 'null', 'false', 'nope']) {
      assert.throws(
        () => parseSession(text),
        (err) => err instanceof SessionError && err.code === 'database',
        text,
      );
    }
  });
});

describe('dataOf', () => {
  test('leaves out the named top-level fields only, so that a cookie change alone is no change', () => {
    const sess = { cookie: { maxAge: 1 }, user: 'a', nested: { cookie: 1 } };
    assert.equal(dataOf(sess), '{"user":"a","nested":{"cookie":1}}');
    assert.equal(dataOf({ ...sess, cookie: { maxAge: 2 } }), dataOf(sess));
    assert.equal(dataOf({ _expire: 5, n: 1 }, ['_expire']), '{"n":1}');
  });
});
