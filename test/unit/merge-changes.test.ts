// changesOf: what a framework store's merged save writes, from the value a request loaded and the
// one it saves. No database.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changesOf } from '../../src/session-json.js';
import { SessionError } from '../../src/index.js';

const text = (o: object) => JSON.stringify(o);

test('set: fields added or changed, compared on their JSON; unset: fields removed', () => {
  const before = text({ user: 'alice', cart: [1, 2], gone: true, same: { a: 1 }, n: 1 });
  const after = text({ user: 'alice', cart: [1, 2, 3], same: { a: 1 }, n: 2, added: null });
  assert.deepEqual(changesOf(before, after), { set: { cart: [1, 2, 3], n: 2, added: null }, unset: ['gone'] });
});

test('nested objects are one field: a change inside sets the whole top-level field', () => {
  const changes = changesOf(text({ prefs: { theme: 'dark', lang: 'en' } }), text({ prefs: { theme: 'light', lang: 'en' } }));
  assert.deepEqual(changes, { set: { prefs: { theme: 'light', lang: 'en' } }, unset: [] });
});

test('equal JSON field by field, keys in any order at any level: null (nothing to write)', () => {
  assert.equal(changesOf(text({ a: 1, b: { c: [1], d: null } }), text({ b: { d: null, c: [1] }, a: 1 })), null);
  assert.equal(changesOf('{}', '{}'), null);
});

test('values of other JSON types, or arrays of another length or order, differ', () => {
  const before = text({ a: [1, 2], b: { c: 1 }, d: '1', e: null, f: [{ g: 1 }], h: {} });
  const after = text({ a: [2, 1], b: { c: 1, x: 0 }, d: 1, e: false, f: [{ g: 1 }, 2], h: [] });
  assert.deepEqual(changesOf(before, after), {
    set: { a: [2, 1], b: { c: 1, x: 0 }, d: 1, e: false, f: [{ g: 1 }, 2], h: [] },
    unset: [],
  });
});

test('a field that becomes undefined in the session is removed (it is absent from the JSON)', () => {
  assert.deepEqual(changesOf(text({ a: 1, b: 2 }), text({ a: 1, b: undefined })), { set: {}, unset: ['b'] });
});

test('keys parseSession drops (named like Object.prototype members) are neither set nor unset', () => {
  const before = '{"__proto__":{"admin":true},"a":1}';
  const after = '{"constructor":{"x":1},"a":2,"toString":"no"}';
  assert.deepEqual(changesOf(before, after), { set: { a: 2 }, unset: [] });
});

test('a value that is not a JSON object: SessionError database', () => {
  assert.throws(
    () => changesOf('[1]', '{}'),
    (e: unknown) => e instanceof SessionError && e.code === 'database',
  );
  assert.throws(
    () => changesOf('{}', 'null'),
    (e: unknown) => e instanceof SessionError && e.code === 'database',
  );
});
