// Versions, conditional writes and merges through a PL/Proxy proxy over 4 partitions on 2 clusters:
// the same results and SQLSTATEs as on one database, each call on its key's partition, in SQL, in
// a batch spread over partitions, and through the TypeScript client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, type SessionStore } from '../../src/index.js';
import { errorCode as code, sqlState } from '../support.js';
import { deploy, partitionsOf, type Deployment } from './deployment.js';

let d: Deployment;
let sqlClient: pg.Client;
let store: SessionStore;
before(async () => {
  d = await deploy({ partitions: 4, servers: 2 });
  sqlClient = new pg.Client({ connectionString: d.clientUrl });
  await sqlClient.connect();
  store = connect({ connectionString: d.clientUrl });
});
after(async () => {
  await store?.close();
  await sqlClient?.end();
  await d?.destroy();
});

const one = async <T>(text: string, values?: unknown[]): Promise<T> =>
  Object.values((await sqlClient.query(text, values)).rows[0] ?? {})[0] as T;
const generate = (value: string | null) => one<string>('SELECT session.session_generate(3600, $1)', [value]);
const get = async (key: string) =>
  (
    await sqlClient.query<{ value: string | null; period: string; version: string }>('SELECT * FROM session.session_get($1)', [
      key,
    ])
  ).rows[0];
/** The partitions that hold a row of this key, read as their owner. */
async function rowsOf(key: string): Promise<number[]> {
  const found: number[] = [];
  for (const [p, url] of d.partitionUrls.entries()) {
    const r = await d.query(url, `SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [key]);
    if (r.rowCount === 1) found.push(p);
  }
  return found;
}

describe('SQL through the proxy', () => {
  test('session_get and session_get_batch return the version the partition holds', async () => {
    const keys = await Promise.all(Array.from({ length: 8 }, (_, i) => generate(`{"i": ${i}}`)));
    assert.ok(new Set(await partitionsOf(d.proxyUrl, keys)).size > 1, 'the keys are on several partitions');
    for (const key of keys) {
      const [p] = await rowsOf(key);
      const stored = (
        await d.query<{ version: string }>(
          d.partitionUrls[p as number] as string,
          `SELECT version::text FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
          [key],
        )
      ).rows[0];
      assert.equal((await get(key))?.version, stored?.version);
    }
    const batch = (
      await sqlClient.query<{ ord: number; version: string }>('SELECT ord, version FROM session.session_get_batch($1::text[])', [
        keys,
      ])
    ).rows;
    assert.deepEqual(
      batch.map((r) => r.version),
      await Promise.all(keys.map(async (k) => (await get(k))?.version)),
    );
  });

  test("session_merge on the key's partition, with the rules of one database", async () => {
    const key = await generate('{"a": 1, "b": 2}');
    assert.equal(await one('SELECT session.session_merge($1, $2::jsonb, $3::text[])', [key, '{"c": 3}', ['a']]), true);
    assert.deepEqual(JSON.parse((await get(key))?.value as string), { b: 2, c: 3 });
    assert.deepEqual(await rowsOf(key), [(await partitionsOf(d.proxyUrl, [key]))[0]]);
    assert.equal(await one('SELECT session.session_merge($1, $2::jsonb)', ['no-such-key', '{}']), false);
    assert.equal(await sqlState(one('SELECT session.session_merge($1, $2::jsonb)', [await generate('[1]'), '{}'])), 'SP002');
    assert.equal(await sqlState(one('SELECT session.session_merge($1, $2::jsonb)', [key, '[1]'])), '22023');
    const v = (await get(key))?.version;
    assert.equal(await one('SELECT session.session_merge($1, $2::jsonb, NULL, NULL, $3)', [key, '{"d": 4}', v]), true);
    assert.equal(
      await sqlState(one('SELECT session.session_merge($1, $2::jsonb, NULL, NULL, $3)', [key, '{"e": 5}', v])),
      'SP001',
    );
    assert.equal(await sqlState(one('SELECT session.session_set($1, $2, NULL, $3)', [key, '{}', v])), 'SP001');
    assert.deepEqual(JSON.parse((await get(key))?.value as string), { b: 2, c: 3, d: 4 });
    await one('SELECT session.session_clear($1)', [key]);
    assert.equal(await one('SELECT session.session_merge($1, $2::jsonb)', [key, '{"f": 6}']), false, 'a logout stays final');
  });

  test("session_write_batch: merges and versions spread over partitions, each element with its single call's result", async () => {
    const keys = await Promise.all(Array.from({ length: 6 }, () => generate('{"n": 0}')));
    const versions = await Promise.all(keys.map(async (k) => (await get(k))?.version as string));
    const text = '[1]';
    const odd = await generate(text);
    const rows = (
      await sqlClient.query<{ ord: number; sqlstate: string | null; ok: boolean | null }>(
        'SELECT ord, sqlstate, ok FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])',
        [
          [...keys.map(() => 'merge'), 'merge', 'set', 'merge', 'touch'],
          [...keys, odd, keys[0], keys[1], keys[2]],
          [
            ...keys.map((_, i) => JSON.stringify({ set: { [`k${i}`]: i } })),
            '{"set": {}}',
            '{"n": 9}',
            '{"set": {"late": 1}}',
            null,
          ],
          [...keys.map(() => null), null, null, null, null],
          [...versions, null, versions[0], versions[1], versions[2]],
        ],
      )
    ).rows;
    assert.deepEqual(
      rows.map((r) => [r.sqlstate, r.ok]),
      [...keys.map(() => [null, true]), ['SP002', null], ['SP001', null], ['SP001', null], ['22023', null]],
    );
    for (const [i, key] of keys.entries())
      assert.deepEqual(JSON.parse((await get(key))?.value as string), { n: 0, [`k${i}`]: i });
    assert.equal(
      await sqlState(
        sqlClient.query(`SELECT * FROM session.session_write_batch('{merge}', ARRAY[$1], '{"{}"}', '{NULL}', '{1,2}')`, [
          keys[0],
        ]),
      ),
      '22023',
    );
  });
});

describe('the client through the proxy', () => {
  test('get carries the version; set with ifVersion conflicts when stale; merges batch across partitions', async () => {
    const key = await store.generate({ value: '{"a":1}' });
    const r = await store.get(key);
    assert.ok(r.ok);
    assert.equal(await store.set(key, '{"a":2}', { ifVersion: r.version }), true);
    assert.equal(await code(store.set(key, '{"a":3}', { ifVersion: r.version })), 'conflict');
    const keys = await Promise.all(Array.from({ length: 12 }, () => store.generate({ value: '{}' })));
    const results = await Promise.all(keys.flatMap((k) => [0, 1, 2].map((f) => store.merge(k, { set: { [`f${f}`]: f } }))));
    assert.ok(results.every((x) => x === true));
    for (const k of keys) {
      const got = await store.get(k);
      assert.ok(got.ok);
      assert.deepEqual(JSON.parse(got.value), { f0: 0, f1: 1, f2: 2 });
    }
    assert.equal(await code(store.merge(await store.generate({ value: 'text' }), { set: { a: 1 } })), 'not_object');
  });
});
