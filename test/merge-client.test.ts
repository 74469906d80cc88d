// Versions, conditional writes and merges through the TypeScript client, as the client role: alone
// (single calls) and many at once (group commit, session_write_batch), with the same results.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, type GetResult, type SessionStore } from '../src/index.js';
import { errorCode, freshDatabase, uniqueName, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let store: SessionStore;
let app: pg.Client;
before(async () => {
  db = await freshDatabase('mergeclient');
  const url = await db.clientRole();
  store = connect({ connectionString: url });
  app = new pg.Client({ connectionString: url });
  await app.connect();
});
after(async () => {
  await store.close();
  await app.end();
  await db.drop();
});

const live = (r: GetResult) => {
  assert.ok(r.ok, `expected a live session, got ${JSON.stringify(r)}`);
  return r;
};
const fields = async (key: string) => JSON.parse(live(await store.get(key)).value) as Record<string, unknown>;
const putKey = () =>
  uniqueName('mc')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .padEnd(40, 'x');

describe('versions', () => {
  test('get returns the version session_get returns; set, put and merge move it, touch does not', async () => {
    const key = await store.generate({ value: '{"a":1}' });
    const r = live(await store.get(key));
    const sql = (await app.query<{ version: string }>('SELECT version FROM session.session_get($1)', [key])).rows[0];
    assert.equal(typeof r.version, 'number');
    assert.equal(String(r.version), sql?.version);
    assert.equal(await store.touch(key), true);
    assert.equal(live(await store.get(key)).version, r.version);
    assert.equal(await store.set(key, '{"a":2}'), true);
    const v1 = live(await store.get(key)).version;
    assert.notEqual(v1, r.version);
    assert.equal(await store.merge(key, { set: { b: 1 } }), true);
    assert.notEqual(live(await store.get(key)).version, v1);
  });

  test('set and put with ifVersion: conflict when stale, nothing written; as today without it', async () => {
    const key = await store.generate({ value: '{"a":1}' });
    const { version } = live(await store.get(key));
    assert.equal(await store.set(key, '{"a":2}', { ifVersion: version }), true);
    assert.equal(await errorCode(store.set(key, '{"a":3}', { ifVersion: version })), 'conflict');
    assert.deepEqual(await fields(key), { a: 2 });
    assert.equal(await store.set(key, '{"a":4}'), true);
    assert.equal(await store.set('no-such-key', 'x', { ifVersion: version }), false);
    const pk = putKey();
    assert.equal(await store.put(pk, '{}', { ifVersion: version }), false, 'a conditional put creates nothing');
    assert.deepEqual(await store.get(pk), { ok: false, error: 'not_found' });
    assert.equal(await store.put(pk, '{"p":1}'), true);
    assert.equal(await errorCode(store.put(pk, '{"p":2}', { ifVersion: version })), 'conflict');
    assert.equal(await store.put(pk, '{"p":3}', { ifVersion: live(await store.get(pk)).version }), true);
    assert.deepEqual(await fields(pk), { p: 3 });
  });

  test('bad options: invalid_argument before anything is sent', async () => {
    const key = await store.generate({ value: '{}' });
    for (const ifVersion of [1.5, '3', Number.MAX_SAFE_INTEGER + 2, NaN]) {
      assert.equal(
        await errorCode(store.set(key, '{}', { ifVersion: ifVersion as number })),
        'invalid_argument',
        String(ifVersion),
      );
    }
  });
});

describe('merge', () => {
  test('sets and removes fields; false for unknown, cleared and expired sessions', async () => {
    const key = await store.generate({ value: JSON.stringify({ a: 1, b: 2, c: { x: 1 } }) });
    assert.equal(await store.merge(key, { set: { c: { y: 2 }, d: 'é€😀' }, unset: ['a'] }, { expiry: 120 }), true);
    assert.deepEqual(await fields(key), { b: 2, c: { y: 2 }, d: 'é€😀' });
    assert.ok(live(await store.get(key)).period <= 120);
    assert.equal(await store.merge(key, { unset: ['b'] }), true);
    assert.equal(await store.merge(key, {}), true);
    assert.deepEqual(await fields(key), { c: { y: 2 }, d: 'é€😀' });
    assert.equal(await store.merge('no-such-key', { set: { a: 1 } }), false);
    await store.clear(key);
    assert.equal(await store.merge(key, { set: { a: 1 } }), false);
    assert.equal(await store.merge(await store.generate({ value: '{}', expiry: 0 }), { set: { a: 1 } }), false);
  });

  test('not_object for a session not set or holding something else; conflict for a stale version', async () => {
    assert.equal(await errorCode(store.merge(await store.generate(), { set: { a: 1 } })), 'not_object');
    assert.equal(await errorCode(store.merge(await store.generate({ value: 'plain text' }), { set: { a: 1 } })), 'not_object');
    const key = await store.generate({ value: '{"a":1}' });
    const { version } = live(await store.get(key));
    assert.equal(await store.merge(key, { set: { b: 1 } }, { ifVersion: version }), true);
    assert.equal(await errorCode(store.merge(key, { set: { c: 1 } }, { ifVersion: version })), 'conflict');
    assert.deepEqual(await fields(key), { a: 1, b: 1 });
  });

  test('value_too_large for a merged value over the limit; invalid_parameter for an expiry out of range', async () => {
    const key = await store.generate({ value: '{"a":1}' });
    assert.equal(await errorCode(store.merge(key, { set: { big: 'x'.repeat(1_100_000) } })), 'value_too_large');
    assert.equal(await errorCode(store.merge(key, { set: { b: 1 } }, { expiry: 4e9 })), 'invalid_parameter');
    assert.deepEqual(await fields(key), { a: 1 });
  });

  test('fields JSON or PostgreSQL cannot hold: invalid_argument, nothing sent', async () => {
    const key = await store.generate({ value: '{"a":1}' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: unknown[] = [
      null,
      [],
      'x',
      { set: [] },
      { set: 'x' },
      { unset: 'a' },
      { unset: [1] },
      { set: { a: 'nul\u0000' } },
      { set: { 'k\u0000': 1 } },
      { set: { a: '\ud800' } },
      { unset: ['\udc00'] },
      { set: { a: 1n } },
      { set: cyclic },
    ];
    for (const f of bad) {
      assert.equal(await errorCode(store.merge(key, f as { set?: Record<string, unknown> })), 'invalid_argument', String(f));
    }
    assert.deepEqual(await fields(key), { a: 1 });
  });

  // The first call goes alone; the others, made while it is in flight, go as one session_write_batch.
  test('many merges at once go through group commit, each with its own result', async () => {
    const key = await store.generate({ value: '{}' });
    const stale = live(await store.get(key)).version;
    const other = await store.generate({ value: '"not an object"' });
    const calls = [
      ...Array.from({ length: 40 }, (_, i) => store.merge(key, { set: { [`f${i}`]: i } })),
      store.merge(key, { set: { late: true } }, { ifVersion: stale }),
      store.merge(other, { set: { a: 1 } }),
      store.merge('no-such-key', { set: { a: 1 } }),
      store.set(key, '{}', { ifVersion: stale }),
    ];
    const results = await Promise.allSettled(calls);
    const outcome = results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as { code: string }).code));
    assert.deepEqual(outcome, [...Array.from({ length: 40 }, () => true), 'conflict', 'not_object', false, 'conflict']);
    const got = await fields(key);
    assert.equal(Object.keys(got).length, 40);
    assert.equal(got.late, undefined);
  });
});
