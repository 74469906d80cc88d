// Versions, conditional writes and session_merge, called through SQL by the client role: every
// write of a value moves the version, a stale if_version changes nothing (SP001), a merge changes
// only the fields it names and obeys the rules of a write, and merges racing on one session from
// two connections all keep their changes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freshDatabase, sqlState, uniqueName, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let app: pg.Client;
let other: pg.Client;
let owner: pg.Client;
let url: string;
before(async () => {
  db = await freshDatabase('mergesql');
  url = await db.clientRole();
  app = new pg.Client({ connectionString: url });
  other = new pg.Client({ connectionString: url });
  owner = new pg.Client({ connectionString: db.url });
  await app.connect();
  await other.connect();
  await owner.connect();
});
after(async () => {
  await app.end();
  await other.end();
  await owner.end();
  await db.drop();
});

const one = async <T>(sql: string, values: unknown[] = [], client = app): Promise<T> =>
  Object.values((await client.query(sql, values)).rows[0] ?? {})[0] as T;
const generate = (value: string | null = '{"a": 1}', expiry = 3600) =>
  one<string>('SELECT session.session_generate($1, $2)', [expiry, value]);
interface Got {
  value: string | null;
  period: string;
  version: string;
}
const get = async (key: string): Promise<Got | undefined> =>
  (await app.query<Got>('SELECT * FROM session.session_get($1)', [key])).rows[0];
const version = async (key: string) => (await get(key))?.version;
const json = async (key: string) => JSON.parse((await get(key))?.value ?? 'null') as unknown;
const merge = (
  key: string,
  set: unknown,
  unset: string[] | null = null,
  expiry: number | null = null,
  ifVersion: string | null = null,
  client = app,
) =>
  one<boolean>(
    'SELECT session.session_merge($1, $2::jsonb, $3::text[], $4, $5)',
    [key, set === null ? null : JSON.stringify(set), unset, expiry, ifVersion],
    client,
  );
const putKey = () =>
  uniqueName('merge')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .padEnd(40, 'x');

describe('versions', () => {
  test('every write of the value moves the version; touch, rotate-free reads and failed writes do not', async () => {
    const key = await generate();
    const v0 = BigInt((await version(key)) as string);
    assert.ok(v0 > 0n && v0 < 2n ** 53n, 'a version fits a JavaScript number');
    assert.equal(await one('SELECT session.session_touch($1, 60)', [key]), true);
    assert.equal(BigInt((await version(key)) as string), v0, 'touch leaves it');
    assert.equal(await one('SELECT session.session_set($1, $2)', [key, '{"b": 2}']), true);
    const v1 = BigInt((await version(key)) as string);
    assert.notEqual(v1, v0);
    assert.equal(await merge(key, { c: 3 }), true);
    const v2 = BigInt((await version(key)) as string);
    assert.ok(v2 !== v1 && v2 !== v0);
    assert.equal(await sqlState(one('SELECT session.session_set($1, $2)', [key, 'x'.repeat(2_000_000)])), '22001');
    assert.equal(BigInt((await version(key)) as string), v2, 'a failed write leaves it');
    const pk = putKey();
    assert.equal(await one('SELECT session.session_put($1, $2)', [pk, '{}']), true);
    const p0 = await version(pk);
    assert.equal(await one('SELECT session.session_put($1, $2)', [pk, '{"x": 1}']), true);
    assert.notEqual(await version(pk), p0, 'a put over a live session moves it');
    const rows = (
      await app.query<{ ord: number; version: string }>('SELECT ord, version FROM session.session_get_batch($1::text[])', [
        [pk, key],
      ])
    ).rows;
    assert.deepEqual(
      rows.map((r) => [r.ord, r.version]),
      [
        [1, await version(pk)],
        [2, await version(key)],
      ],
    );
  });

  test('set and put with if_version: the current version writes, a stale one is SP001 and changes nothing', async () => {
    const key = await generate('{"a": 1}');
    const v = (await version(key)) as string;
    assert.equal(await one('SELECT session.session_set($1, $2, NULL, $3)', [key, '{"a": 2}', v]), true);
    const moved = (await version(key)) as string;
    let message = '';
    try {
      await app.query('SELECT session.session_set($1, $2, NULL, $3)', [key, '{"a": 3}', v]);
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'SP001');
      message = String((err as Error).message) + String((err as { where?: string }).where ?? '');
    }
    assert.ok(message !== '' && !message.includes(key), 'SP001, and the key is in no part of the error');
    assert.deepEqual(await json(key), { a: 2 });
    assert.equal(await version(key), moved);
    // put: the same rule on a live session; with a version it never creates one.
    const pk = putKey();
    assert.equal(await one('SELECT session.session_put($1, $2, NULL, $3)', [pk, '{}', v]), false);
    assert.equal(await get(pk), undefined, 'a conditional put creates nothing');
    assert.equal(await one('SELECT session.session_put($1, $2)', [pk, '{"p": 1}']), true);
    const pv = (await version(pk)) as string;
    assert.equal(await sqlState(one('SELECT session.session_put($1, $2, NULL, $3)', [pk, '{"p": 2}', '1'])), 'SP001');
    assert.equal(await one('SELECT session.session_put($1, $2, 60, $3)', [pk, '{"p": 3}', pv]), true);
    assert.deepEqual(await json(pk), { p: 3 });
    // Unknown, cleared and expired sessions: false (no live session), never SP001.
    await one('SELECT session.session_clear($1)', [pk]);
    assert.equal(await one('SELECT session.session_set($1, $2, NULL, $3)', [pk, '{}', '1']), false);
    assert.equal(await one('SELECT session.session_set($1, $2, NULL, $3)', ['no-such-key', '{}', '1']), false);
  });

  test('a set racing a conditional set: the one that locks second sees the moved version', async () => {
    const key = await generate('{"n": 0}');
    const v = (await version(key)) as string;
    await other.query('BEGIN');
    try {
      assert.equal(await one('SELECT session.session_set($1, $2, NULL, $3)', [key, '{"n": 1}', v], other), true);
      // Its state is taken at once: the rejection may come before the COMMIT's reply is read.
      const second = sqlState(one('SELECT session.session_set($1, $2, NULL, $3)', [key, '{"n": 2}', v]));
      await sleep(200);
      await other.query('COMMIT');
      assert.equal(await second, 'SP001');
    } catch (err) {
      await other.query('ROLLBACK');
      throw err;
    }
    assert.deepEqual(await json(key), { n: 1 });
  });
});

describe('session_merge', () => {
  test('sets and removes top-level fields; a field in both is set; nested objects are replaced whole', async () => {
    const key = await generate(JSON.stringify({ a: 1, b: { x: 1, y: 2 }, c: 'keep', d: true }));
    assert.equal(await merge(key, { b: { x: 9 }, e: [1, 2], n: null }, ['a', 'd', 'e', 'missing']), true);
    assert.deepEqual(await json(key), { b: { x: 9 }, c: 'keep', e: [1, 2], n: null });
    assert.equal(await merge(key, null, ['b']), true);
    assert.equal(await merge(key, {}, null), true, 'an empty merge restarts the expiry');
    assert.deepEqual(await json(key), { c: 'keep', e: [1, 2], n: null });
  });

  test('never creates a session, never writes a tombstone or an expired session: false', async () => {
    assert.equal(await merge('no-such-key', { a: 1 }), false);
    assert.equal(await merge(putKey(), { a: 1 }), false);
    const cleared = await generate('{"a": 1}');
    await one('SELECT session.session_clear($1)', [cleared]);
    assert.equal(await merge(cleared, { a: 2 }), false);
    const expired = await generate('{"a": 1}', 0);
    assert.equal(await merge(expired, { a: 2 }), false);
    const stored = async (key: string) =>
      (await owner.query(`SELECT value, cleared FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [key]))
        .rows;
    assert.deepEqual(await stored(cleared), [{ value: null, cleared: true }], 'the tombstone is unchanged');
    assert.deepEqual(await stored(expired), [{ value: '{"a": 1}', cleared: false }], 'the expired session is unchanged');
  });

  test('a session not set, or holding a value that is not a JSON object: SP002, nothing written', async () => {
    const unset = await generate(null);
    assert.equal(await sqlState(merge(unset, { a: 1 })), 'SP002');
    for (const value of ['[1, 2]', '"text"', '42', 'null', 'not json {', '{"unclosed": ']) {
      const key = await generate(value);
      const v = await version(key);
      assert.equal(await sqlState(merge(key, { a: 1 })), 'SP002', value);
      assert.equal((await get(key))?.value, value);
      assert.equal(await version(key), v);
    }
  });

  test('bad arguments: 22023 set_fields not an object, expiry out of range; 22004 NULL in unset_fields', async () => {
    const key = await generate('{"a": 1}');
    assert.equal(await sqlState(merge(key, [1])), '22023');
    assert.equal(await sqlState(merge(key, 'x')), '22023');
    assert.equal(await sqlState(merge(key, { a: 2 }, null, 3155760001)), '22023');
    assert.equal(await sqlState(one('SELECT session.session_merge($1, NULL, ARRAY[NULL, $2])', [key, 'a'])), '22004');
    assert.equal(await sqlState(one(`SELECT session.session_merge($1, '{"a":}')`, [key])), '22P02');
    assert.deepEqual(await json(key), { a: 1 });
  });

  test('the merged value obeys the size limit (22001, nothing written) and the expiry bounds', async () => {
    await owner.query('UPDATE session.config SET max_value_bytes = 200');
    try {
      const key = await generate('{"a": 1}');
      assert.equal(await sqlState(merge(key, { big: 'x'.repeat(300) })), '22001');
      assert.deepEqual(await json(key), { a: 1 });
      assert.equal(await merge(key, { small: 'x'.repeat(100) }), true);
    } finally {
      await owner.query('UPDATE session.config SET max_value_bytes = DEFAULT');
    }
    const key = await generate('{"a": 1}');
    assert.equal(await merge(key, { b: 1 }, null, 120), true);
    assert.ok(Number((await get(key))?.period) <= 120);
    // An expiry <= 0 ends the session, as in session_set.
    assert.equal(await merge(key, { c: 1 }, null, 0), true);
    assert.equal(await get(key), undefined);
  });

  test('the absolute lifetime caps the expiry a merge asks for', async () => {
    const key = await one<string>('SELECT session.session_generate(60, $1, lifetime => 100)', ['{"a": 1}']);
    assert.equal(await merge(key, { b: 2 }, null, 100_000), true);
    assert.ok(Number((await get(key))?.period) <= 100);
  });

  test('if_version: the current one merges, a stale one is SP001 and changes nothing', async () => {
    const key = await generate('{"a": 1}');
    const v = (await version(key)) as string;
    assert.equal(await merge(key, { b: 2 }, null, null, v), true);
    assert.equal(await sqlState(merge(key, { c: 3 }, null, null, v)), 'SP001');
    assert.deepEqual(await json(key), { a: 1, b: 2 });
  });

  test('two connections merging distinct fields at once, one holding its transaction open: both kept', async () => {
    const key = await generate('{"a": 1, "b": 2}');
    await other.query('BEGIN');
    let second: Promise<boolean>;
    try {
      assert.equal(await merge(key, { x: 'first' }, ['a'], null, null, other), true);
      // This merge waits for the other transaction's row lock, then applies to what it committed.
      second = merge(key, { y: 'second' }, ['b']);
      await sleep(200);
      await other.query('COMMIT');
    } catch (err) {
      await other.query('ROLLBACK');
      throw err;
    }
    assert.equal(await second, true);
    assert.deepEqual(await json(key), { x: 'first', y: 'second' });
  });

  test('a clear committed while a merge waits: the merge finds the tombstone and writes nothing', async () => {
    const key = await generate('{"a": 1}');
    await other.query('BEGIN');
    let waiting: Promise<boolean>;
    try {
      await other.query('SELECT session.session_clear($1)', [key]);
      waiting = merge(key, { b: 2 });
      await sleep(200);
      await other.query('COMMIT');
    } catch (err) {
      await other.query('ROLLBACK');
      throw err;
    }
    assert.equal(await waiting, false);
    assert.equal(await get(key), undefined);
  });

  test('20 merges of distinct fields from four connections at once keep all 20', async () => {
    const key = await generate('{}');
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          pool.query('SELECT session.session_merge($1, $2::jsonb)', [key, JSON.stringify({ [`f${i}`]: i })]),
        ),
      );
    } finally {
      await pool.end();
    }
    assert.deepEqual(Object.keys((await json(key)) as object).sort(), Array.from({ length: 20 }, (_, i) => `f${i}`).sort());
  });
});

describe('privileges', () => {
  test('the client role calls session_merge; it may not call the helpers; PUBLIC and the admin role may not merge', async () => {
    for (const helper of [
      'session.check_version(1, 1)',
      `session.merged_value('{}', '{}', NULL, 10)`,
      `session.merge_problem('{}')`,
      `session.merge_fields_problem('{}', NULL)`,
      `session.element_problem('merge', '{}', NULL)`,
      'session.batch_versions(NULL, 0)',
    ]) {
      assert.equal(await sqlState(app.query(`SELECT ${helper}`)), '42501', helper);
    }
    const r = await owner.query<{ role: string; can: boolean }>(
      `SELECT r AS role, has_function_privilege(r, 'session.session_merge(text, jsonb, text[], bigint, bigint)', 'EXECUTE') AS can
         FROM unnest(ARRAY['session_client', 'session_admin', 'public']) r`,
    );
    assert.deepEqual(
      r.rows.map((x) => [x.role, x.can]),
      [
        ['session_client', true],
        ['session_admin', false],
        ['public', false],
      ],
    );
  });
});
