// The SQL API called directly (as psql or Python users would), including ocaml-session's backend tests.
import assert from 'node:assert/strict';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import { freshDatabase, sqlState, type TestDatabase } from './helpers.js';

let db: TestDatabase;
before(async () => { db = await freshDatabase('sql'); });
after(async () => { await db.drop(); });

const one = async <T>(sql: string, values?: unknown[]): Promise<T> => {
  const r = await db.query(sql, values);
  return Object.values(r.rows[0] ?? {})[0] as T;
};
const generate = (expiry: number | null = null, value: string | null = null) =>
  one<string>('SELECT session.session_generate($1, $2)', [expiry, value]);
const get = async (key: string | null) =>
  (await db.query<{ value: string | null; period: string }>('SELECT * FROM session.session_get($1)', [key])).rows;

describe("ocaml-session's backend tests", () => {
  test('generate gives distinct keys', async () => {
    const keys = await Promise.all(Array.from({ length: 50 }, () => generate()));
    assert.equal(new Set(keys).size, 50);
  });
  test('expiry 0 and -1 raise no error', async () => {
    await generate(0);
    await generate(-1);
  });
  test('clear twice raises no error', async () => {
    const k = await generate();
    await db.query('SELECT session.session_clear($1)', [k]);
    await db.query('SELECT session.session_clear($1)', [k]);
  });
  test('get of a garbage key: not found', async () => {
    assert.deepEqual(await get('garbage'), []);
  });
  test('expired unset session: not found', async () => {
    assert.deepEqual(await get(await generate(0)), []);
    assert.deepEqual(await get(await generate(-1)), []);
  });
  test('unexpired unset session: not set', async () => {
    const rows = await get(await generate(60));
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.value, null);
  });
  test('get right after set gives the value', async () => {
    const k = await generate();
    assert.equal(await one('SELECT session.session_set($1, $2)', [k, 'v']), true);
    assert.equal((await get(k))[0]?.value, 'v');
  });
  test('cleared key: not found', async () => {
    const k = await generate(60, 'v');
    await db.query('SELECT session.session_clear($1)', [k]);
    assert.deepEqual(await get(k), []);
  });
  test('expired session that has a value: not found', async () => {
    assert.deepEqual(await get(await generate(0, 'v')), []);
    const k = await generate(60, 'v');
    await db.query('SELECT session.session_set($1, $2, 0)', [k, 'w']);
    assert.deepEqual(await get(k), []);
  });
});

describe('semantics', () => {
  test('keys are 64 base64url characters without padding', async () => {
    const k = await generate();
    assert.match(k, /^[A-Za-z0-9_-]{64}$/);
  });
  test('period is the remaining whole seconds, from the database clock', async () => {
    const k = await generate(3600, 'v');
    const period = Number((await get(k))[0]?.period);
    assert.ok(period >= 3598 && period <= 3600, `period ${period}`);
    // Even in one transaction, the period follows the clock, not the transaction's start.
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
  test('default period is one week and NULL expiry uses it', async () => {
    assert.equal(Number(await one('SELECT session.session_default_period()')), 604800);
    const k = await generate(null, 'v');
    assert.ok(Number((await get(k))[0]?.period) > 604790);
  });
  test('set_default_period applies to new sessions only', async () => {
    const before = await generate(null, 'old');
    await db.query('SELECT session.session_set_default_period(100)');
    try {
      assert.equal(Number(await one('SELECT session.session_default_period()')), 100);
      const k = await generate(null, 'v');
      assert.ok(Number((await get(k))[0]?.period) <= 100);
      assert.ok(Number((await get(before))[0]?.period) > 604790);
      await db.query('SELECT session.session_set($1, $2)', [before, 'again']);
      assert.ok(Number((await get(before))[0]?.period) <= 100);
    } finally {
      await db.query('SELECT session.session_set_default_period(604800)');
    }
  });
  test('set never creates a session for an unknown, cleared or expired key', async () => {
    assert.equal(await one('SELECT session.session_set($1, $2)', ['chosen-by-attacker', 'v']), false);
    assert.deepEqual(await get('chosen-by-attacker'), []);
    const expired = await generate(0);
    assert.equal(await one('SELECT session.session_set($1, $2)', [expired, 'v']), false);
    const cleared = await generate();
    await db.query('SELECT session.session_clear($1)', [cleared]);
    assert.equal(await one('SELECT session.session_set($1, $2)', [cleared, 'v']), false);
    assert.deepEqual(await get(cleared), []);
  });
  test('set restarts the expiry', async () => {
    const k = await generate(10, 'v');
    await db.query('SELECT session.session_set($1, $2, 5000)', [k, 'w']);
    assert.ok(Number((await get(k))[0]?.period) > 4990);
  });
  test('named arguments work', async () => {
    const k = await one<string>(`SELECT session.session_generate(value => 'x')`);
    assert.equal((await get(k))[0]?.value, 'x');
    assert.equal(await one(`SELECT session.session_set(key => $1, value => 'y', expiry => 60)`, [k]), true);
    assert.equal((await one<string>(`SELECT value FROM session.session_get(key => $1)`, [k])), 'y');
    await db.query(`SELECT session.session_clear(key => $1)`, [k]);
    assert.deepEqual(await get(k), []);
  });
  test('empty string and unicode values round-trip', async () => {
    for (const v of ['', 'é€😀', 'a\nb\\c\'"', '%_']) {
      assert.equal((await get(await generate(60, v)))[0]?.value, v);
    }
  });
  test('NULL and over-long keys are simply not found', async () => {
    assert.deepEqual(await get(null), []);
    assert.equal(await one('SELECT session.session_set(NULL, $1)', ['v']), false);
    await db.query('SELECT session.session_clear(NULL)');
    assert.deepEqual(await get('k'.repeat(100_000)), []);
  });
  test('keys with SQL and LIKE metacharacters are only keys', async () => {
    for (const k of ["'; DROP TABLE session.sessions; --", '%', '_', '\\', '"']) {
      assert.deepEqual(await get(k), []);
      assert.equal(await one('SELECT session.session_set($1, $2)', [k, 'v']), false);
    }
    assert.equal(await one<boolean>(`SELECT to_regclass('session.sessions') IS NOT NULL`), true);
  });
});

describe('session_put and session_count (for frameworks with their own ids)', () => {
  const id = (c: string) => c.repeat(32);
  test('creates, then replaces a live session; get sees it', async () => {
    assert.equal(await one('SELECT session.session_put($1, $2, 60)', [id('p'), 'one']), true);
    assert.equal((await get(id('p')))[0]?.value, 'one');
    assert.equal(await one('SELECT session.session_put($1, $2)', [id('p'), 'two']), true);
    const row = (await get(id('p')))[0];
    assert.equal(row?.value, 'two');
    assert.ok(Number(row?.period) > 604790);
  });
  test('never revives an expired session that is not purged yet', async () => {
    assert.equal(await one('SELECT session.session_put($1, $2, 0)', [id('q'), 'born expired']), true);
    assert.equal(await one('SELECT session.session_put($1, $2)', [id('q'), 'revive?']), false);
    assert.deepEqual(await get(id('q')), []);
  });
  test('refuses keys that are short or not base64url (22023), and NULLs (22004)', async () => {
    for (const k of ['short', 'a'.repeat(31), `${'a'.repeat(31)}=`, `${'a'.repeat(40)} `, "'; --".repeat(10), 'a'.repeat(1025)]) {
      assert.equal(await sqlState(db.query('SELECT session.session_put($1, $2)', [k, 'v'])), '22023', k);
    }
    assert.equal(await sqlState(db.query('SELECT session.session_put(NULL, $1)', ['v'])), '22004');
    assert.equal(await sqlState(db.query('SELECT session.session_put($1, NULL)', [id('r')])), '22004');
    assert.equal(await sqlState(db.query('SELECT session.session_put($1, $2, $3)', [id('r'), 'v', '3155760001'])), '22023');
    assert.deepEqual(await get(id('r')), []);
  });
  test('count counts live sessions only', async () => {
    const before = Number(await one('SELECT session.session_count()'));
    await generate(60, 'live');
    await generate(0, 'expired');
    assert.equal(Number(await one('SELECT session.session_count()')), before + 1);
  });
});

describe('documented SQLSTATEs', () => {
  test('22023: expiry out of range, in generate and set (never a date/time overflow)', async () => {
    for (const e of ['3155760001', '-3155760001', '9223372036854775807', '-9223372036854775808', '4611686018427387904']) {
      assert.equal(await sqlState(db.query('SELECT session.session_generate($1)', [e])), '22023');
    }
    const k = await generate(60, 'kept');
    assert.equal(await sqlState(db.query('SELECT session.session_set($1, $2, $3)', [k, 'new', '9223372036854775807'])), '22023');
    assert.equal(await sqlState(db.query('SELECT session.session_set($1, $2, $3)', ['unknown', 'new', '9223372036854775807'])), '22023');
    assert.equal((await get(k))[0]?.value, 'kept');
    await generate(3155760000);
    await generate(-3155760000);
  });
  test('22023: default period NULL, zero, negative or too large; the old one stays', async () => {
    for (const p of [null, 0, -1, '3155760001']) {
      assert.equal(await sqlState(db.query('SELECT session.session_set_default_period($1)', [p])), '22023');
    }
    assert.equal(Number(await one('SELECT session.session_default_period()')), 604800);
  });
  test('22023: purge batch size NULL or < 1', async () => {
    assert.equal(await sqlState(db.query('SELECT session.session_purge(NULL)')), '22023');
    assert.equal(await sqlState(db.query('SELECT session.session_purge(0)')), '22023');
  });
  test('22004: set with a NULL value; the stored value stays', async () => {
    const k = await generate(60, 'kept');
    assert.equal(await sqlState(db.query('SELECT session.session_set($1, NULL)', [k])), '22004');
    assert.equal((await get(k))[0]?.value, 'kept');
  });
  test('22001: a value over the limit is refused and the stored value kept; at the limit it is accepted', async () => {
    const limit = Number(await one(`SELECT max_value_bytes FROM session.config`));
    assert.equal(limit, 1048576);
    const k = await generate(60, 'kept');
    assert.equal(await sqlState(db.query('SELECT session.session_set($1, $2)', [k, 'x'.repeat(limit + 1)])), '22001');
    assert.equal(await sqlState(db.query('SELECT session.session_set($1, $2)', [k, 'é'.repeat(limit / 2 + 1)])), '22001');
    assert.equal(await sqlState(db.query('SELECT session.session_generate(60, $1)', ['x'.repeat(limit + 1)])), '22001');
    assert.equal((await get(k))[0]?.value, 'kept');
    assert.equal(await one('SELECT session.session_set($1, $2)', [k, 'x'.repeat(limit)]), true);
    assert.equal((await get(k))[0]?.value?.length, limit);
  });
});

describe('storage and purge', () => {
  test('only the SHA-256 digest of a key is stored, never the key', async () => {
    const k = await generate(60, 'v');
    const digest = await one<Buffer>(`SELECT sha256(convert_to($1, 'UTF8'))`, [k]);
    assert.equal(await one(`SELECT count(*)::int FROM session.sessions WHERE digest = $1`, [digest]), 1);
    // No column of any table in the schema holds the key, in any form of text.
    const tables = await db.query<{ t: string }>(`SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'session'`);
    for (const { t } of tables.rows) {
      assert.equal(await one(`SELECT count(*)::int FROM ${t} x WHERE strpos(x::text, $1) > 0 OR strpos(encode(convert_to(x::text, 'UTF8'), 'hex'), encode(convert_to($1, 'UTF8'), 'hex')) > 0`, [k]), 0, t);
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
  const backlog = () => db.query(`INSERT INTO session.sessions (digest, expires_at, value)
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
        await new Promise((r) => setTimeout(r, 20));
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
