// The SQL API called directly (as psql or Python users would): what only one database shows, its
// tables and the purge. The cases every target shares (ocaml-session's backend tests among them)
// are the contract of test/contract/api.ts, run by test/contract.test.ts.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import { freshDatabase, sqlState, type TestDatabase } from './helpers.js';

let db: TestDatabase;
before(async () => {
  db = await freshDatabase('sql');
});
after(async () => {
  await db.drop();
});

const one = async <T>(sql: string, values?: unknown[]): Promise<T> => {
  const r = await db.query(sql, values);
  return Object.values(r.rows[0] ?? {})[0] as T;
};
const generate = (expiry: number | null = null, value: string | null = null) =>
  one<string>('SELECT session.session_generate($1, $2)', [expiry, value]);
const get = async (key: string | null) =>
  (await db.query<{ value: string | null; period: string }>('SELECT * FROM session.session_get($1)', [key])).rows;

describe('semantics', () => {
  test("even in one transaction, the period follows the clock, not the transaction's start", async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query('BEGIN');
      const key = (await c.query<{ k: string }>(`SELECT session.session_generate(100, 'x') AS k`)).rows[0]?.k;
      const inTransaction = Number((await c.query('SELECT period FROM session.session_get($1)', [key])).rows[0]?.period);
      assert.ok(inTransaction === 99 || inTransaction === 100, `period ${inTransaction}`);
    } finally {
      await c.end();
    }
  });
  test("the value limit is session.config's max_value_bytes, 1 MiB by default", async () => {
    assert.equal(Number(await one(`SELECT max_value_bytes FROM session.config`)), 1048576);
  });
});

describe('storage and purge', () => {
  test('only the SHA-256 digest of a key is stored, never the key', async () => {
    const k = await generate(60, 'v');
    const digest = await one<Buffer>(`SELECT sha256(convert_to($1, 'UTF8'))`, [k]);
    assert.equal(await one(`SELECT count(*)::int FROM session.sessions WHERE digest = $1`, [digest]), 1);
    // No column of any table in the schema holds the key, in any form of text.
    const tables = await db.query<{ t: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'session'`,
    );
    for (const { t } of tables.rows) {
      assert.equal(
        await one(
          `SELECT count(*)::int FROM ${t} x WHERE strpos(x::text, $1) > 0 OR strpos(encode(convert_to(x::text, 'UTF8'), 'hex'), encode(convert_to($1, 'UTF8'), 'hex')) > 0`,
          [k],
        ),
        0,
        t,
      );
    }
  });
  test('purge deletes expired rows only, in bounded calls, until 0', async () => {
    await db.query(`INSERT INTO session.sessions (digest, expires_at, value)
                    SELECT sha256(('e' || i)::bytea), now() - interval '1 s', 'x' FROM generate_series(1, 30000) i`);
    const live = await generate(3600, 'live');
    const before = Number(await one(`SELECT count(*) FROM session.sessions WHERE expires_at > now()`));
    let total = 0;
    let calls = 0;
    for (;;) {
      const n = Number(await one('SELECT session.session_purge(5000)'));
      calls += 1;
      // At most the batch plus one 128-block range (at most 291 tuples per 8 KiB page).
      assert.ok(n <= 5000 + 128 * 291, `one call deleted ${n}`);
      if (n === 0) break;
      total += n;
    }
    assert.ok(total >= 30000, `deleted ${total}`);
    assert.ok(calls >= 3, `calls ${calls}`);
    assert.equal(Number(await one(`SELECT count(*) FROM session.sessions WHERE expires_at <= now()`)), 0);
    assert.equal(Number(await one(`SELECT count(*) FROM session.sessions WHERE expires_at > now()`)), before);
    assert.equal((await get(live))[0]?.value, 'live');
    assert.equal(Number(await one('SELECT session.session_purge()')), 0);
  });
});

describe('session_purge_job (what the pg_cron job calls)', () => {
  // 30000 expired rows of about 1.5 kB: about 5 a page, so the default batch of 10000 takes 3 calls.
  const backlog = () =>
    db.query(`INSERT INTO session.sessions (digest, expires_at, value)
    SELECT sha256(('job' || i || random())::bytea), now() - interval '1 s', repeat('x', 1500) FROM generate_series(1, 30000) i`);
  const expired = async () => Number(await one(`SELECT count(*) FROM session.sessions WHERE expires_at <= now()`));

  test('drains a backlog in batches, each committed on its own, and keeps live sessions', async () => {
    await backlog();
    const live = await generate(3600, 'live');
    // A second connection watches while the job rests 20x each call between batches.
    const watcher = new pg.Client({ connectionString: db.url });
    await watcher.connect();
    const seen = new Set<number>();
    let running = true;
    const watching = (async () => {
      while (running) {
        seen.add(Number((await watcher.query(`SELECT count(*) AS n FROM session.sessions WHERE expires_at <= now()`)).rows[0].n));
        await sleep(20);
      }
    })();
    try {
      await db.query('CALL session.session_purge_job(600, 20)');
    } finally {
      running = false;
      await watching;
      await watcher.end();
    }
    assert.equal(await expired(), 0);
    assert.equal((await get(live))[0]?.value, 'live');
    const between = [...seen].filter((n) => n > 0 && n < 30000);
    assert.ok(between.length >= 1, `no intermediate count seen by another connection: ${[...seen].join(', ')}`);
  });

  test('stops after its time budget (at least one call); the next run goes on', async () => {
    await backlog();
    await db.query('CALL session.session_purge_job(0)');
    const left = await expired();
    assert.ok(left > 0 && left < 30000, `left ${left}`);
    await db.query('CALL session.session_purge_job(budget_seconds => 60, pause => 0)');
    assert.equal(await expired(), 0);
  });

  test('bad arguments: 22023; inside a transaction block: 2D000 and nothing deleted', async () => {
    for (const args of ['NULL', '-1', '30, -1', '30, NULL', '30, 1001', "30, 'NaN'"]) {
      assert.equal(await sqlState(db.query(`CALL session.session_purge_job(${args})`)), '22023', args);
    }
    await backlog();
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      assert.equal(await sqlState(client.query('CALL session.session_purge_job()')), '2D000');
      await client.query('ROLLBACK');
    } finally {
      await client.end();
    }
    assert.equal(await expired(), 30000);
    await db.query('CALL session.session_purge_job(60, 0)');
  });
});
