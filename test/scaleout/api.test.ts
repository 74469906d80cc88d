// The SQL API and the TypeScript client through a PL/Proxy proxy over 4 partitions on 2 clusters:
// the API contract of test/contract/api.ts (the cases test/contract.test.ts runs on one database),
// with each session checked on the partition its key routes to, then what only a proxy has:
// routing, spread, SQLSTATEs crossing the proxy, privileges, install.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../../src/index.js';
import { connectAdmin, type SessionAdmin } from '../../src/admin-index.js';
import { ExpressSessionStore } from '../../src/express.js';
import { FastifySessionStore } from '../../src/fastify.js';
import { installProxy, partitionTarget, proxyStatus, redact } from '../../src/scaleout.js';
import { scaleoutCommand } from '../../src/scaleout-cli.js';
import { stats } from '../../src/admin.js';
import { apiContract } from '../contract/api.js';
import { errorCode as code, sqlState } from '../support.js';
import { deploy, partitionsOf, type Deployment } from './deployment.js';

let d: Deployment;
let sqlClient: pg.Client;
let store: SessionStore;
let admin: SessionAdmin;
before(async () => {
  d = await deploy({ partitions: 4, servers: 2 });
  sqlClient = new pg.Client({ connectionString: d.clientAdminUrl });
  await sqlClient.connect();
  store = connect({ connectionString: d.clientAdminUrl });
  admin = connectAdmin({ connectionString: d.clientAdminUrl });
});
after(async () => {
  await store?.close();
  await admin?.close();
  await sqlClient?.end();
  await d?.destroy();
});

const one = async <T>(text: string, values?: unknown[]): Promise<T> =>
  Object.values((await sqlClient.query(text, values)).rows[0] ?? {})[0] as T;
const generate = (expiry: number | null = null, value: string | null = null) =>
  one<string>('SELECT session.session_generate($1, $2)', [expiry, value]);
const get = async (key: string | null) =>
  (await sqlClient.query<{ value: string | null; period: string }>('SELECT * FROM session.session_get($1)', [key])).rows;
/** The partition PL/Proxy sends a key to (hashtext masked to 4 partitions), asked of the proxy. */
const partitionOf = async (key: string) => (await partitionsOf(d.proxyUrl, [key]))[0] as number;
/** On which partitions a row with this key's digest exists, read as their owner. */
async function rowsOf(key: string): Promise<number[]> {
  const found: number[] = [];
  for (const [p, url] of d.partitionUrls.entries()) {
    const r = await d.query(url, `SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [key]);
    if (r.rowCount === 1) found.push(p);
  }
  return found;
}

/**
 * How many calls of session.<funcname> the proxy's backends of the client login made during `work`
 * (counted with track_functions, flushed when those backends exit: `work` closes its connections).
 */
async function callsDuring(funcname: string, work: () => Promise<void>): Promise<number> {
  const login = new URL(d.clientUrl).username;
  await d.query(d.proxyUrl, `ALTER ROLE ${login} SET track_functions = 'pl'`);
  const calls = async () =>
    Number(
      (
        await d.query<{ n: string | null }>(
          d.proxyUrl,
          `SELECT pg_stat_clear_snapshot(),
    (SELECT calls FROM pg_stat_user_functions WHERE schemaname = 'session' AND funcname = $1) AS n`,
          [funcname],
        )
      ).rows[0]?.n ?? 0,
    );
  const before = await calls();
  try {
    await work();
  } finally {
    await d.query(d.proxyUrl, `ALTER ROLE ${login} RESET track_functions`);
  }
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await sleep(100);
    after = await calls();
  }
  return after - before;
}

apiContract('the API contract, through the proxy', () => ({
  url: d.clientAdminUrl,
  async storedOnce(key) {
    assert.deepEqual(await rowsOf(key), [await partitionOf(key)]);
  },
}));

describe('what one call does on every partition', () => {
  test('set_default_period reaches every partition: sessions on every partition get it', async () => {
    await sqlClient.query('SELECT session.session_set_default_period(100)');
    try {
      for (const url of d.partitionUrls) {
        assert.equal((await d.query(url, 'SELECT default_period::int AS p FROM session.config')).rows[0]?.p, 100);
      }
      const keys = await Promise.all(Array.from({ length: 40 }, () => generate(null, 'v')));
      assert.equal(new Set(await partitionsOf(d.proxyUrl, keys)).size, 4);
      for (const k of keys) assert.ok(Number((await get(k))[0]?.period) <= 100);
    } finally {
      await sqlClient.query('SELECT session.session_set_default_period(604800)');
    }
  });
  test('count adds up the live sessions of every partition', async () => {
    let direct = 0;
    for (const url of d.partitionUrls) direct += Number((await d.query(url, 'SELECT session.session_count() AS n')).rows[0]?.n);
    assert.equal(Number(await one('SELECT session.session_count()')), direct);
  });
});

describe('SQLSTATEs cross the proxy', () => {
  test('the error names the partition database, never the key', async () => {
    const k = await generate(60, 'kept');
    try {
      await sqlClient.query('SELECT session.session_set($1, NULL)', [k]);
      assert.fail('expected an error');
    } catch (err) {
      const e = err as pg.DatabaseError;
      assert.match(e.message, /\[part\d_[0-9a-f]+\] REMOTE ERROR: session value must not be NULL/);
      assert.ok(!JSON.stringify({ ...e, message: e.message }).includes(k));
    }
  });
});

describe('storage and purge, on the partitions', () => {
  test('each session lives on the partition its key hashes to, and only its digest is stored', async () => {
    for (let i = 0; i < 20; i++) {
      const k = await generate(60, 'v');
      assert.deepEqual(await rowsOf(k), [await partitionOf(k)]);
    }
  });
  test('purge through the proxy deletes expired rows on every partition, until 0', async () => {
    for (const url of d.partitionUrls) {
      await d.query(
        url,
        `INSERT INTO session.sessions (digest, expires_at, value)
                          SELECT sha256(('e' || i || random())::bytea), now() - interval '1 s', 'x' FROM generate_series(1, 3000) i`,
      );
    }
    const live = await generate(3600, 'live');
    const admin = new pg.Client({ connectionString: d.adminUrl });
    await admin.connect();
    try {
      let total = 0;
      for (let n = -1; n !== 0; ) {
        n = Number((await admin.query('SELECT session.session_purge(1000) AS n')).rows[0]?.n);
        total += n;
      }
      assert.ok(total >= 12000, `deleted ${total}`);
      for (const url of d.partitionUrls) {
        assert.equal(
          (await d.query(url, 'SELECT count(*)::int AS n FROM session.sessions WHERE expires_at <= now()')).rows[0]?.n,
          0,
        );
      }
      assert.equal((await get(live))[0]?.value, 'live');
      const stats = (await admin.query('SELECT * FROM session.session_stats()')).rows[0] as Record<string, string>;
      assert.equal(Number(stats.live), Number(await one('SELECT session.session_count()')));
      assert.equal(Number(stats.expired), 0);
      assert.equal(Number(stats.default_period), 604800);
    } finally {
      await admin.end();
    }
  });
});

describe('keys spread evenly', () => {
  // Chi-square goodness of fit over the proxy's own keys (session_generate's generator) and its
  // own routing. Thresholds at p = 1e-6: a fair hash fails once in a million runs.
  for (const [parts, critical] of [
    [4, 30.66],
    [16, 56.49],
  ] as const) {
    test(`100000 keys over ${parts} partitions: chi-square below ${critical} (${parts - 1} degrees of freedom, p = 1e-6)`, async (t) => {
      const r = await d.query<{ p: number; n: string }>(
        d.proxyUrl,
        `SELECT session_proxy.key_hash(session_proxy.new_key()) & ($1 - 1) AS p, count(*) AS n FROM generate_series(1, 100000) GROUP BY 1`,
        [parts],
      );
      assert.equal(r.rows.length, parts);
      const expected = 100000 / parts;
      const chi = r.rows.reduce((s, row) => s + (Number(row.n) - expected) ** 2 / expected, 0);
      t.diagnostic(`chi-square ${chi.toFixed(2)}; counts ${r.rows.map((x) => x.n).join(' ')}`);
      assert.ok(chi < critical, `chi-square ${chi}`);
    });
  }
  test('new_key_like gives fresh keys on the same partition (for rotation)', async () => {
    for (let i = 0; i < 20; i++) {
      const k = await generate();
      const r = await d.query<{ n: string }>(d.proxyUrl, 'SELECT session_proxy.new_key_like($1) AS n', [k]);
      const n = r.rows[0]?.n as string;
      assert.match(n, /^[A-Za-z0-9_-]{64}$/);
      assert.notEqual(n, k);
      assert.equal(await partitionOf(n), await partitionOf(k));
    }
  });
  test('a routed batch function splits its arrays by partition (SPLIT), in parallel', async () => {
    // A stand-in partition function, as a batch API would have: one row per element it received.
    for (const url of d.partitionUrls) {
      await d.query(
        url,
        `CREATE FUNCTION session.test_batch(keys text[], vals text[]) RETURNS TABLE (key text, val text, db text)
        LANGUAGE sql AS $$ SELECT k, v, current_database()::text FROM unnest(keys, vals) AS x(k, v) $$`,
      );
    }
    await d.query(
      d.proxyUrl,
      `SELECT session_proxy.remote('test_batch', ARRAY['keys text[]', 'vals text[]'],
      'TABLE (key text, val text, db text)', 'session_proxy.key_hash(keys)', ARRAY['keys', 'vals'])`,
    );
    const keys = Array.from({ length: 40 }, (_, i) => `key${i}`);
    const rows = (
      await d.query<{ key: string; val: string; db: string }>(d.proxyUrl, 'SELECT * FROM session_proxy.test_batch($1, $2)', [
        keys,
        keys.map((k) => `v-${k}`),
      ])
    ).rows;
    assert.equal(rows.length, 40);
    for (const r of rows) {
      assert.equal(r.val, `v-${r.key}`);
      assert.ok(r.db.startsWith(`part${await partitionOf(r.key)}_`));
    }
    await d.query(d.proxyUrl, 'DROP FUNCTION session_proxy.test_batch(text[], text[])');
    for (const url of d.partitionUrls) await d.query(url, 'DROP FUNCTION session.test_batch(text[], text[])');
  });
  test('sessions made through the proxy reach all 4 partitions', async () => {
    const before = await Promise.all(
      d.partitionUrls.map(async (u) => Number((await d.query(u, 'SELECT count(*) AS n FROM session.sessions')).rows[0]?.n)),
    );
    await Promise.all(Array.from({ length: 400 }, () => store.generate({ value: 'x' })));
    const after = await Promise.all(
      d.partitionUrls.map(async (u) => Number((await d.query(u, 'SELECT count(*) AS n FROM session.sessions')).rows[0]?.n)),
    );
    const added = after.map((n, i) => n - (before[i] ?? 0));
    assert.equal(
      added.reduce((a, b) => a + b, 0),
      400,
    );
    assert.ok(
      added.every((n) => n > 0),
      added.join(' '),
    );
  });
});

describe('subjects, lists, revocation, rotation and absolute lifetime, through the proxy', () => {
  const subjectOf = (tag: string) => `${tag}-${Math.random().toString(36).slice(2)}`;
  const generateFor = (
    subject: string | null,
    label: string | null = null,
    lifetime: number | null = null,
    value: string | null = 'v',
  ) => one<string>('SELECT session.session_generate(3600, $1, $2, $3, $4)', [value, subject, label, lifetime]);
  const list = async (subject: string | null, max?: number | null) =>
    (
      await sqlClient.query<{ handle: string; created_at: Date; label: string | null }>(
        max === undefined ? 'SELECT * FROM session.session_list($1)' : 'SELECT * FROM session.session_list($1, $2)',
        max === undefined ? [subject] : [subject, max],
      )
    ).rows;
  /** The row of a key on its partition, read as the owner. */
  const row = async (key: string) =>
    (
      await d.query<{ subject: string | null; label: string | null; handle: string | null; cleared: boolean; capped: boolean }>(
        d.partitionUrls[await partitionOf(key)] as string,
        `SELECT subject, label, handle::text, cleared, ends_at IS NOT NULL AND ends_at <= created_at + interval '10 s' AS capped
       FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
        [key],
      )
    ).rows[0];

  test("generate with subject, label and lifetime: stored on the key's partition as on one database", async () => {
    const subject = subjectOf('ann');
    const k = await generateFor(subject, 'Firefox', 10);
    assert.deepEqual(await rowsOf(k), [await partitionOf(k)]);
    const r = await row(k);
    assert.ok(r?.subject === subject && r.label === 'Firefox' && r.handle !== null && r.capped && !r.cleared, JSON.stringify(r));
    // The lifetime caps the expiry; a label without a subject is not kept.
    assert.ok(Number((await get(k))[0]?.period) <= 10);
    const anon = await generateFor(null, 'ignored');
    assert.deepEqual({ ...(await row(anon)) }, { subject: null, label: null, handle: null, cleared: false, capped: false });
    const named = await one<string>(`SELECT session.session_generate(subject => $1, value => 'n')`, [subject]);
    assert.equal((await row(named))?.subject, subject);
  });
  test('generate: the SQLSTATEs and their order (value and expiry, then subject and label, then lifetime)', async () => {
    const long = 's'.repeat(257);
    const big = 'x'.repeat(1048577);
    const states = async (args: unknown[]) =>
      sqlState(sqlClient.query('SELECT session.session_generate($1, $2, $3, $4, $5)', args));
    assert.equal(await states([null, null, '', null, null]), '22023');
    assert.equal(await states([null, null, long, null, null]), '22001');
    assert.equal(await states([null, null, 'x', long, null]), '22001');
    assert.equal(await states([null, null, null, long, null]), '22001');
    for (const l of [0, -1, 3155760001]) assert.equal(await states([null, null, null, null, l]), '22023');
    assert.equal(await states([null, big, '', null, null]), '22001', 'the value before the subject');
    assert.equal(await states([3155760001, null, long, null, null]), '22023', 'the expiry before the subject');
    assert.equal(await states([null, null, long, null, 0]), '22001', 'the subject before the lifetime');
    assert.equal(await states([null, null, '', null, 3155760001]), '22023');
  });
  test("set_subject on the key's partition; list merges every partition, newest first, at most max_sessions", async () => {
    const subject = subjectOf('bea');
    const keys: string[] = [];
    for (let i = 0; i < 12; i++) {
      const k = await generate(3600, `v${i}`);
      assert.equal(await one('SELECT session.session_set_subject($1, $2, $3)', [k, subject, `device ${i}`]), true);
      keys.push(k);
    }
    assert.ok(new Set(await partitionsOf(d.proxyUrl, keys)).size >= 2, 'the sessions are on several partitions');
    assert.equal(await one('SELECT session.session_set_subject($1, $2)', ['unknown', subject]), false);
    const all = await list(subject);
    assert.equal(all.length, 12);
    assert.deepEqual(
      all.map((r) => r.label),
      keys.map((_, i) => `device ${11 - i}`),
    );
    const five = await list(subject, 5);
    assert.deepEqual(
      five.map((r) => r.handle),
      all.slice(0, 5).map((r) => r.handle),
    );
    assert.deepEqual(await list(null), []);
    for (const max of [0, 10001, null])
      assert.equal(await sqlState(sqlClient.query('SELECT * FROM session.session_list($1, $2)', [subject, max])), '22023');
    assert.equal(await sqlState(sqlClient.query('SELECT session.session_set_subject($1, $2)', [keys[0], ''])), '22023');
    assert.equal(
      await sqlState(sqlClient.query('SELECT session.session_set_subject($1, $2, $3)', [keys[0], subject, 'l'.repeat(257)])),
      '22001',
    );
    // Anonymous again: out of the list.
    assert.equal(await one('SELECT session.session_set_subject($1, NULL)', [keys[0]]), true);
    assert.equal((await list(subject)).length, 11);
  });
  test("revoke ends the subject's sessions on every partition but except_key; revoke_handle ends one", async () => {
    const subject = subjectOf('cid');
    const keys: string[] = [];
    for (let i = 0; i < 10; i++) keys.push(await generateFor(subject, `d${i}`));
    const other = await generateFor(subjectOf('other'));
    const [kept, byHandle] = keys as [string, string];
    const handle = (await list(subject)).find((r) => r.label === 'd1')?.handle;
    assert.equal(await one('SELECT session.session_revoke_handle($1, $2)', [subjectOf('not-his'), handle]), false);
    assert.equal(await one('SELECT session.session_revoke_handle($1, $2)', [subject, handle]), true);
    assert.equal(await one('SELECT session.session_revoke_handle($1, $2)', [subject, handle]), false);
    assert.deepEqual(await get(byHandle), []);
    assert.equal(Number(await one('SELECT session.session_revoke($1, $2)', [subject, kept])), 8);
    assert.deepEqual(
      (await list(subject)).map((r) => r.label),
      ['d0'],
    );
    for (const k of keys.slice(2)) {
      assert.deepEqual(await get(k), []);
      assert.equal((await row(k))?.cleared, true, 'a tombstone on its partition');
      assert.equal(await one('SELECT session.session_put($1, $2)', [k, 'revive?']), false);
    }
    assert.equal((await get(kept))[0]?.value, 'v');
    assert.equal((await get(other))[0]?.value, 'v');
    assert.equal(Number(await one('SELECT session.session_revoke($1)', [subject])), 1);
    assert.equal(Number(await one('SELECT session.session_revoke($1)', [subject])), 0);
    assert.equal(Number(await one('SELECT session.session_revoke(NULL)')), 0);
  });
  test('rotate: a new key on the same partition, the same session; the old key is a tombstone', async () => {
    const subject = subjectOf('dan');
    for (let i = 0; i < 8; i++) {
      const old = await generateFor(subject, `r${i}`, null, `value ${i}`);
      const handle = (await row(old))?.handle;
      const fresh = await one<string>('SELECT session.session_rotate($1)', [old]);
      assert.match(fresh, /^[A-Za-z0-9_-]{64}$/);
      assert.notEqual(fresh, old);
      assert.deepEqual(await rowsOf(fresh), [await partitionOf(old)]);
      assert.equal((await get(fresh))[0]?.value, `value ${i}`);
      assert.ok(Number((await get(fresh))[0]?.period) > 3590);
      const r = await row(fresh);
      assert.ok(r?.subject === subject && r.label === `r${i}` && r.handle === handle, JSON.stringify(r));
      assert.deepEqual(await get(old), []);
      assert.equal((await row(old))?.cleared, true);
      assert.equal(await one('SELECT session.session_set($1, $2)', [old, 'revive?']), false);
      assert.equal(await one('SELECT session.session_rotate($1)', [old]), null);
    }
    assert.equal((await list(subject)).length, 8);
    assert.equal(await one('SELECT session.session_rotate($1)', ['unknown']), null);
    assert.equal(await one('SELECT session.session_rotate(NULL)'), null);
  });
  test('absolute lifetime: set on every partition (admin), read from partition 0, caps new sessions', async () => {
    assert.equal(await one('SELECT session.session_absolute_lifetime()'), null);
    for (const l of [0, -1, 3155760001])
      assert.equal(await sqlState(sqlClient.query('SELECT session.session_set_absolute_lifetime($1)', [l])), '22023');
    await sqlClient.query('SELECT session.session_set_absolute_lifetime(30)');
    try {
      assert.equal(Number(await one('SELECT session.session_absolute_lifetime()')), 30);
      for (const url of d.partitionUrls) {
        assert.equal((await d.query(url, 'SELECT absolute_lifetime::int AS l FROM session.config')).rows[0]?.l, 30);
      }
      const keys = await Promise.all(Array.from({ length: 20 }, () => generate(3600, 'v')));
      assert.ok(new Set(await partitionsOf(d.proxyUrl, keys)).size >= 2);
      for (const k of keys) {
        assert.ok(Number((await get(k))[0]?.period) <= 30);
        await sqlClient.query('SELECT session.session_touch($1, 3600)', [k]);
        assert.ok(Number((await get(k))[0]?.period) <= 30, 'touch never passes the cap');
      }
    } finally {
      await sqlClient.query('SELECT session.session_set_absolute_lifetime(NULL)');
    }
    assert.equal(await one('SELECT session.session_absolute_lifetime()'), null);
  });
});

describe('session_write_batch, through the proxy', () => {
  interface Row {
    ord: number;
    sqlstate: string | null;
    message: string | null;
    ok: boolean | null;
    key: string | null;
  }
  type Op = [kind: string | null, key: string | null, value: string | null, expiry: number | null];
  const batch = async (ops: Op[], client: pg.Client = sqlClient): Promise<Row[]> =>
    (
      await client.query<Row>('SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])', [
        ops.map((o) => o[0]),
        ops.map((o) => o[1]),
        ops.map((o) => o[2]),
        ops.map((o) => o[3]),
      ])
    ).rows;
  const putKey = (i: number) => `put${i}-${Math.random().toString(36).slice(2)}`.replace(/[^A-Za-z0-9_-]/g, '_').padEnd(40, 'x');

  test('each element gets the result or SQLSTATE of its single call, across partitions, in element order', async () => {
    const big = 'x'.repeat(1048577);
    const shapes: ((k: string, fresh: string) => Op)[] = [
      (k) => ['set', k, 'new', 60],
      (k) => ['set', k, null, null],
      (k) => ['set', k, big, null],
      (k) => ['set', k, 'new', 3155760001],
      (k) => ['touch', k, null, 120],
      (k) => ['touch', k, null, -3155760001],
      () => ['set', 'unknown-key', 'new', null],
      (_, fresh) => ['put', fresh, 'p', null],
      () => ['put', 'short', 'p', null],
      () => ['put', null, 'p', null],
      (k) => ['put', k, null, null],
      () => ['generate', null, big, null],
      () => ['generate', null, 'g', 3155760001],
      () => ['generate', null, 'g', null],
      (k) => ['clear', k, null, null],
      () => ['clear', null, null, null],
      () => ['bogus', 'k', 'v', null],
      () => [null, 'k', 'v', null],
    ];
    const keys = await Promise.all(shapes.map(() => generate(3600, 'orig')));
    assert.ok(new Set(await partitionsOf(d.proxyUrl, keys)).size >= 3);
    const fresh = shapes.map((_, i) => putKey(i));
    const rows = await batch(shapes.map((shape, i) => shape(keys[i] as string, fresh[i] as string)));
    assert.deepEqual(
      rows.map((r) => r.ord),
      shapes.map((_, i) => i + 1),
    );
    assert.deepEqual(
      rows.map((r) => r.sqlstate),
      [
        null,
        '22004',
        '22001',
        '22023',
        null,
        '22023',
        null,
        null,
        '22023',
        '22004',
        '22004',
        '22001',
        '22023',
        null,
        null,
        null,
        '22023',
        '22023',
      ],
    );
    assert.deepEqual(
      rows.map((r) => r.ok),
      [true, null, null, null, true, null, false, true, null, null, null, null, null, true, true, false, null, null],
    );
    for (const r of rows) {
      if (r.sqlstate !== null) assert.ok(r.key === null && (r.message ?? '') !== '');
      else if (r.ord !== 14) assert.equal(r.key, null);
    }
    const generated = rows[13]?.key as string;
    assert.match(generated, /^[A-Za-z0-9_-]{64}$/);
    assert.deepEqual(await rowsOf(generated), [await partitionOf(generated)]);
    assert.equal((await get(generated))[0]?.value, 'g');
    assert.equal((await get(keys[0] as string))[0]?.value, 'new');
    for (const i of [1, 2, 3, 5, 10])
      assert.equal((await get(keys[i] as string))[0]?.value, 'orig', `element ${i + 1} left its session as it was`);
    assert.deepEqual(await get(keys[14] as string), []);
    assert.equal((await get(fresh[7] as string))[0]?.value, 'p');
    assert.deepEqual(await rowsOf(fresh[7] as string), [await partitionOf(fresh[7] as string)]);
  });
  test("many generates and writes: keys on their own partitions, one key's writes in element order", async () => {
    const k = await generate(3600, 'v0');
    const ops: Op[] = [];
    for (let i = 0; i < 40; i++) ops.push(['generate', null, `g${i}`, 3600]);
    ops.push(['set', k, 'a', null], ['clear', k, null, null], ['set', k, 'b', null], ['put', k, 'c', null]);
    const rows = await batch(ops);
    assert.deepEqual(
      rows.slice(40).map((r) => [r.sqlstate, r.ok]),
      [
        [null, true],
        [null, true],
        [null, false],
        [null, false],
      ],
    );
    assert.deepEqual(await get(k), []);
    const made = rows.slice(0, 40).map((r) => r.key as string);
    assert.equal(new Set(made).size, 40);
    assert.equal(new Set(await partitionsOf(d.proxyUrl, made)).size, 4);
    for (const [i, key] of made.entries()) {
      assert.equal((await get(key))[0]?.value, `g${i}`);
      assert.deepEqual(await rowsOf(key), [await partitionOf(key)]);
    }
  });
  test('a row held on its partition: 55P03 for its elements only; empty batch; arrays of different lengths', async () => {
    const locked = await generate(3600, 'kept');
    const others = await Promise.all(Array.from({ length: 8 }, () => generate(3600, 'old')));
    const holder = new pg.Client({ connectionString: d.partitionUrls[await partitionOf(locked)] });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8')) FOR UPDATE`, [locked]);
      const rows = await batch([
        ['set', locked, 'a', null],
        ...others.map((o): Op => ['set', o, 'new', null]),
        ['touch', locked, null, null],
      ]);
      assert.deepEqual(
        rows.map((r) => r.sqlstate),
        ['55P03', ...others.map(() => null), '55P03'],
      );
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    assert.equal((await get(locked))[0]?.value, 'kept');
    for (const o of others) assert.equal((await get(o))[0]?.value, 'new');
    assert.deepEqual(await batch([]), []);
    assert.equal(
      await sqlState(sqlClient.query(`SELECT * FROM session.session_write_batch('{set,set}', '{a}', '{v,w}', '{NULL,NULL}')`)),
      '22023',
    );
  });
  test('the TypeScript client sends its batches to it (group commit through the proxy)', async () => {
    const n = await callsDuring('session_write_batch', async () => {
      const app = connect({ connectionString: d.clientUrl, writeConnections: 1 });
      try {
        const keys = await Promise.all(Array.from({ length: 100 }, (_, i) => app.generate({ value: `b${i}` })));
        assert.equal(new Set(keys).size, 100);
        assert.deepEqual(
          await Promise.all(keys.map((k, i) => app.set(k, `c${i}`))),
          keys.map(() => true),
        );
        await Promise.all(keys.slice(0, 50).map((k) => app.clear(k)));
        for (const [i, k] of keys.entries()) {
          const r = await app.get(k);
          if (i < 50) assert.deepEqual(r, { ok: false, error: 'not_found' });
          else assert.ok(r.ok && r.value === `c${i}`);
        }
      } finally {
        await app.close();
      }
    });
    assert.ok(n >= 3, `${n} batch calls`);
  });
});

describe('session_get_batch, through the proxy', () => {
  interface Row {
    ord: number;
    value: string | null;
    period: string;
  }
  const batch = async (keys: (string | null)[] | null, client: pg.Client = sqlClient): Promise<Row[]> =>
    (await client.query<Row>('SELECT * FROM session.session_get_batch($1::text[])', [keys])).rows;

  test('each element gets the row session_get gives it, across partitions, in element order', async () => {
    const live = await Promise.all(Array.from({ length: 24 }, (_, i) => generate(3600, `v${i}`)));
    const notSet = await generate(3600);
    const cleared = await generate(3600, 'gone');
    await sqlClient.query('SELECT session.session_clear($1)', [cleared]);
    const expired = await generate(0, 'old');
    const keys: (string | null)[] = [
      notSet,
      ...live.slice(0, 12),
      cleared,
      'unknown-key',
      null,
      'x'.repeat(1025),
      expired,
      live[3] as string,
      ...live.slice(12),
      live[3] as string,
      '',
    ];
    assert.equal(new Set(await partitionsOf(d.proxyUrl, live)).size, 4);
    const rows = await batch(keys);
    const expected: Row[] = [];
    for (const [i, k] of keys.entries()) {
      for (const r of await get(k)) expected.push({ ord: i + 1, value: r.value, period: r.period });
    }
    assert.equal(expected.length, 27);
    assert.deepEqual(
      rows.map((r) => [r.ord, r.value]),
      expected.map((r) => [r.ord, r.value]),
    );
    for (const [i, r] of rows.entries()) assert.ok(Math.abs(Number(r.period) - Number(expected[i]?.period)) <= 1);
    assert.deepEqual(await batch([]), []);
    assert.deepEqual(await batch(null), []);
    assert.deepEqual(await batch([null, 'unknown-key']), []);
    // Two dimensions are numbered as on one database: element order, from 1.
    const two = (
      await sqlClient.query<Row>('SELECT * FROM session.session_get_batch(ARRAY[ARRAY[$1, $2], ARRAY[$3, $4]])', [
        'unknown-key',
        live[0],
        live[1],
        'unknown-key',
      ])
    ).rows;
    assert.deepEqual(
      two.map((r) => [r.ord, r.value]),
      [
        [2, 'v0'],
        [3, 'v1'],
      ],
    );
  });
  test('the client role may call it; the partition call is not its', async () => {
    const c = new pg.Client({ connectionString: d.clientUrl });
    await c.connect();
    try {
      const key = await generate(3600, 'mine');
      assert.deepEqual(
        (await batch([key], c)).map((r) => r.value),
        ['mine'],
      );
      assert.equal(await sqlState(c.query('SELECT * FROM session_proxy.partition_get_batch($1, $2)', [[key], [1]])), '42501');
    } finally {
      await c.end();
    }
  });
  test('the TypeScript client sends its batched gets to it', async () => {
    const keys = await Promise.all(Array.from({ length: 40 }, (_, i) => generate(3600, `t${i}`)));
    const n = await callsDuring('session_get_batch', async () => {
      const app = connect({ connectionString: d.clientUrl });
      try {
        const got = await Promise.all([...keys, 'unknown-key'].map((k) => app.get(k)));
        assert.deepEqual(
          got.slice(0, 40).map((r) => (r.ok ? r.value : r.error)),
          keys.map((_, i) => `t${i}`),
        );
        assert.deepEqual(got[40], { ok: false, error: 'not_found' });
      } finally {
        await app.close();
      }
    });
    assert.ok(n >= 2, `${n} batch calls`);
  });
});

describe('roles on the proxy and the partitions', () => {
  test('the client role: the data calls, permission_denied for the admin calls and the private functions', async () => {
    const app = connect({ connectionString: d.clientUrl });
    const appAsAdmin = connectAdmin({ connectionString: d.clientUrl });
    const c = new pg.Client({ connectionString: d.clientUrl });
    await c.connect();
    try {
      const key = await app.generate({ value: 'mine' });
      assert.ok((await app.get(key)).ok);
      assert.equal(await code(appAsAdmin.setDefaultPeriod(60)), 'permission_denied');
      assert.equal(await code(appAsAdmin.purge()), 'permission_denied');
      assert.equal(await sqlState(c.query('SELECT * FROM session.session_stats()')), '42501');
      assert.equal(
        await sqlState(c.query(`SELECT session_proxy.partition_generate('${'a'.repeat(64)}', NULL, 'forged', NULL, NULL, NULL)`)),
        '42501',
      );
      assert.equal(await sqlState(c.query(`SELECT session_proxy.partition_rotate($1, '${'a'.repeat(64)}')`, [key])), '42501');
      assert.equal(
        await sqlState(
          c.query(
            `SELECT * FROM session_proxy.partition_write_batch(0, '{generate}', '{${'a'.repeat(64)}}', '{forged}', '{NULL}')`,
          ),
        ),
        '42501',
      );
      // The client role has the whole API of 005, the admin calls excepted.
      assert.ok(await app.setSubject(key, 'someone'));
      assert.equal((await app.list('someone')).length >= 1, true);
      assert.equal(await code(appAsAdmin.setAbsoluteLifetime(60)), 'permission_denied');
      assert.equal(await app.absoluteLifetime(), null);
      assert.equal(await sqlState(c.query(`SELECT session_proxy.set_partition(0, 'host=evil')`)), '42501');
      // The user mapping (the partition login's password) is not visible to it.
      const um = await c.query<{ umoptions: string[] | null }>('SELECT umoptions FROM pg_user_mappings');
      assert.ok(um.rows.every((r) => r.umoptions === null));
      // An admin-only login may purge but not read sessions.
      const ops = connectAdmin({ connectionString: d.adminUrl });
      const opsAsClient = connect({ connectionString: d.adminUrl });
      try {
        assert.equal(typeof (await ops.purge()), 'number');
        assert.equal(await code(opsAsClient.get(key)), 'permission_denied');
      } finally {
        await ops.close();
        await opsAsClient.close();
      }
    } finally {
      await app.close();
      await appAsAdmin.close();
      await c.end();
    }
  });
  test("on a partition, partition_generate, partition_rotate and partition_write_batch are the proxy role's only", async () => {
    const url = d.partitionUrls[0] as string;
    for (const fn of [
      'session.partition_generate(text, bigint, text, text, text, bigint)',
      'session.partition_rotate(text, text)',
      'session.partition_write_batch(text[], text[], text[], bigint[], bigint[])',
    ]) {
      const r = await d.query<{ client: boolean; admin: boolean; proxy: boolean; public: boolean }>(
        url,
        `SELECT
        has_function_privilege('session_client', $1, 'EXECUTE') AS client,
        has_function_privilege('session_admin', $1, 'EXECUTE') AS admin,
        has_function_privilege('session_proxy', $1, 'EXECUTE') AS proxy,
        EXISTS (SELECT FROM pg_proc p, aclexplode(p.proacl) a WHERE p.oid = $1::regprocedure AND a.grantee = 0) AS public`,
        [fn],
      );
      assert.deepEqual(r.rows[0], { client: false, admin: false, proxy: true, public: false }, fn);
    }
  });
});

describe('frameworks and other languages, unchanged, against the proxy', () => {
  const cb = <T>(f: (done: (err: unknown, v?: T) => void) => void) =>
    new Promise<T | undefined>((resolve, reject) =>
      f((err, v) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(v))),
    );
  const sid = 'S'.repeat(32);
  test('ExpressSessionStore: set, get, touch, length, destroy', async () => {
    const s = new ExpressSessionStore({ store });
    const sess = {
      cookie: { originalMaxAge: 60000, maxAge: 60000, expires: new Date(Date.now() + 60000) },
      user: 'ann',
    } as never;
    await cb((done) => s.set(sid, sess, done));
    const back = await cb<Record<string, unknown> | null>((done) => s.get(sid, done as never));
    assert.equal(back?.user, 'ann');
    await cb((done) => s.touch(sid, sess, done));
    assert.ok(Number(await cb<number>((done) => s.length(done as never))) >= 1);
    await cb((done) => s.destroy(sid, done));
    assert.equal(await cb((done) => s.get(sid, done as never)), null);
  });
  test('FastifySessionStore: set, get, destroy', async () => {
    const s = new FastifySessionStore({ store });
    const other = `F${sid.slice(1)}`;
    await cb((done) =>
      s.set(other, { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000) }, n: 1 } as never, done),
    );
    const back = await cb<Record<string, unknown> | null>((done) => s.get(other, done as never));
    assert.equal(back?.n, 1);
    await cb((done) => s.destroy(other, done));
    assert.equal(await cb((done) => s.get(other, done as never)), null);
  });
  test('examples/python/session_demo.py and psql: their sessions are read by TypeScript, and back', async (t) => {
    const python = '/usr/bin/python3';
    if (spawnSync(python, ['-c', 'import psycopg'], { encoding: 'utf8' }).status !== 0)
      return t.skip('python3-psycopg is not installed');
    const demo = fileURLToPath(new URL('../../../examples/python/session_demo.py', import.meta.url));
    const py = (args: string[]) => {
      const r = spawnSync(python, [demo, ...args], { encoding: 'utf8', env: { ...process.env, DATABASE_URL: d.clientUrl } });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    };
    assert.match(py(['demo']), /clear\(key\); get\(key\) -> not_found/);
    const key = py(['generate', 'made in python']);
    const r = await store.get(key);
    assert.ok(r.ok && r.value === 'made in python');
    assert.equal(await store.set(key, 'changed in ts'), true);
    assert.equal(py(['get', key]), 'changed in ts');
    const psql = spawnSync(
      '/usr/lib/postgresql/15/bin/psql',
      ['-X', '-A', '-t', '-d', d.clientUrl, '-c', `SELECT value FROM session.session_get('${key}')`],
      { encoding: 'utf8' },
    );
    assert.equal(psql.stdout.trim(), 'changed in ts');
  });
});

describe('install and status', () => {
  test('re-running the install changes nothing; the partition count cannot change', async () => {
    const dump = () =>
      spawnSync(
        '/usr/lib/postgresql/15/bin/pg_dump',
        ['--schema-only', '-n', 'session', '-n', 'session_proxy', '-d', d.proxyUrl],
        { encoding: 'utf8' },
      )
        .stdout.split('\n')
        .filter((l) => !/^\\(un)?restrict /.test(l))
        .join('\n');
    const before = dump();
    assert.deepEqual(await installProxy({ connectionString: d.proxyUrl, partitions: d.proxyPartitionUrls, log: false }), []);
    assert.equal(dump(), before);
    await assert.rejects(
      installProxy({ connectionString: d.proxyUrl, partitions: d.proxyPartitionUrls.slice(0, 2), log: false }),
      (e: unknown) => e instanceof SessionError && e.code === 'invalid_parameter',
    );
    await assert.rejects(
      installProxy({ connectionString: d.proxyUrl, partitions: d.proxyPartitionUrls.slice(0, 3), log: false }),
      (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
    );
    // Credentials never go into the foreign server's options (PL/Proxy prints them in some errors).
    for (const conninfo of ['host=h password=p', 'host=h user=u', ' ']) {
      assert.equal(await sqlState(d.query(d.proxyUrl, 'SELECT session_proxy.set_partition(0, $1)', [conninfo])), '22023');
    }
  });
  test('status lists every partition with its figures; no password anywhere in it', async () => {
    const s = await proxyStatus({ connectionString: d.proxyUrl });
    assert.ok(s.migrations.every((m) => m.applied));
    assert.equal(s.partitions.length, 4);
    assert.ok(
      s.partitions.every((p) => p.error === null && typeof p.live === 'number' && p.database?.startsWith(`part${p.part}_`)),
    );
    const password = new URL(d.proxyPartitionUrls[0] as string).password;
    assert.ok(!JSON.stringify(s).includes(password));
  });
  test('session-pg stats works against the proxy: figures summed over the partitions', async () => {
    const s = await stats({ connectionString: d.adminUrl });
    let live = 0;
    for (const url of d.partitionUrls) live += Number((await d.query(url, 'SELECT session.session_count() AS n')).rows[0]?.n);
    assert.equal(s.live, live);
    assert.equal(s.defaultPeriod, 604800);
    assert.equal(s.cron, null);
  });
  test('credentials stay out of the foreign server, the output and the server logs', async () => {
    const password = new URL(d.proxyPartitionUrls[0] as string).password;
    const lines: string[] = [];
    await installProxy({ connectionString: d.proxyUrl, partitions: d.proxyPartitionUrls, log: (l) => lines.push(l) });
    assert.ok(lines.length >= 1 && lines.every((l) => !l.includes(password)), lines.join('\n'));
    assert.match(redact(d.proxyPartitionUrls[0] as string), /:\*\*\*@/);
    assert.ok(!partitionTarget(d.proxyPartitionUrls[0] as string).conninfo.includes(password));
    const srv = await d.query<{ o: string[] }>(
      d.proxyUrl,
      `SELECT srvoptions AS o FROM pg_foreign_server WHERE srvname = 'session_partitions'`,
    );
    assert.ok(!JSON.stringify(srv.rows).includes(password));
    for (const cluster of d.clusters) assert.ok(!readFileSync(cluster.logFile, 'utf8').includes(password), cluster.logFile);
  });
  test('session-pg scaleout install / status: partitions from the environment, nothing secret printed', async () => {
    const password = new URL(d.proxyPartitionUrls[0] as string).password;
    const out: string[] = [];
    const log = console.log;
    const error = console.error;
    console.log = (...a: unknown[]) => {
      out.push(a.join(' '));
    };
    console.error = (...a: unknown[]) => {
      out.push(a.join(' '));
    };
    process.env.SESSION_PG_PROXY_PARTITIONS = d.proxyPartitionUrls.join(' ');
    try {
      assert.equal(await scaleoutCommand(['install', '--database-url', d.proxyUrl]), 0);
      assert.equal(await scaleoutCommand(['status', '--database-url', d.proxyUrl]), 0);
      assert.equal(await scaleoutCommand(['install']), 2);
      assert.equal(await scaleoutCommand(['bogus']), 2);
      // The old name meant proxy logins to install and owner URLs to migrate: refused, naming the new ones.
      process.env.SESSION_PG_PARTITIONS = d.proxyPartitionUrls.join(' ');
      assert.equal(await scaleoutCommand(['install', '--database-url', d.proxyUrl]), 2);
      assert.equal(await scaleoutCommand(['migrate']), 2);
    } finally {
      console.log = log;
      console.error = error;
      delete process.env.SESSION_PG_PROXY_PARTITIONS;
      delete process.env.SESSION_PG_PARTITIONS;
    }
    const text = out.join('\n');
    assert.match(text, /Proxy up to date; 4 partitions set\./);
    assert.equal(
      text.match(
        /SESSION_PG_PARTITIONS is no longer read: set \$SESSION_PG_PROXY_PARTITIONS .* or \$SESSION_PG_PARTITION_OWNERS/g,
      )?.length,
      2,
      text,
    );
    assert.doesNotMatch(text, /warning/i);
    for (let p = 0; p < 4; p++)
      assert.match(text, new RegExp(`p${p}  host='127\\.0\\.0\\.1' port='\\d+' dbname='part${p}_\\w+'  live \\d+`));
    assert.ok(!text.includes(password), text);
  });
});
