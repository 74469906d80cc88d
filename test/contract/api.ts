// The API contract: what the SQL functions and the TypeScript client promise, whatever serves them.
// test/contract.test.ts runs it against one database, test/scaleout/api.test.ts against a PL/Proxy
// proxy over partitions. It speaks only through the API, as a login in the client and admin roles;
// where a case also checks storage, the target says how (a table or the key's partition).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../../src/index.js';
import { connectAdmin, type SessionAdmin } from '../../src/admin-index.js';
import { errorCode as code, sqlState } from '../support.js';

export interface ApiTarget {
  /** A login that is a member of the client and the admin roles (an app that also purges). */
  url: string;
  /** Checks that the session of `key` is stored once, as the digest of the key, where it belongs. */
  storedOnce(key: string): Promise<void>;
}

/** The documented default of `max_value_bytes`. */
const valueLimit = 1048576;

/**
 * Registers the contract's cases in a suite named `name`; `target` is called at its first case,
 * once the test file's own `before` hooks ran.
 */
export function apiContract(name: string, target: () => ApiTarget): void {
  describe(name, () => contract(target));
}

function contract(target: () => ApiTarget): void {
  // Opened at the first case, once the test file's hooks have set the target up. A pool, not one
  // client: several cases have many calls in flight.
  let opened: { t: ApiTarget; sql: pg.Pool; store: SessionStore; admin: SessionAdmin } | undefined;
  const open = () => {
    if (opened === undefined) {
      const t = target();
      opened = {
        t,
        sql: new pg.Pool({ connectionString: t.url, max: 2 }),
        store: connect({ connectionString: t.url }),
        admin: connectAdmin({ connectionString: t.url }),
      };
    }
    return opened;
  };
  const sql = { query: (text: string, values?: unknown[]) => open().sql.query(text, values) };
  after(async () => {
    await opened?.store.close();
    await opened?.admin.close();
    await opened?.sql.end();
  });

  const one = async <T>(text: string, values?: unknown[]): Promise<T> =>
    Object.values((await sql.query(text, values)).rows[0] ?? {})[0] as T;
  const generate = (expiry: number | string | null = null, value: string | null = null) =>
    one<string>('SELECT session.session_generate($1, $2)', [expiry, value]);
  const get = async (key: string | null) =>
    (await sql.query('SELECT * FROM session.session_get($1)', [key])).rows as { value: string | null; period: string }[];
  const clear = (key: string | null) => sql.query('SELECT session.session_clear($1)', [key]);

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
      await clear(k);
      await clear(k);
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
      await clear(k);
      assert.deepEqual(await get(k), []);
    });
    test('expired session that has a value: not found', async () => {
      assert.deepEqual(await get(await generate(0, 'v')), []);
      const k = await generate(60, 'v');
      await sql.query('SELECT session.session_set($1, $2, 0)', [k, 'w']);
      assert.deepEqual(await get(k), []);
    });
  });

  describe('semantics', () => {
    test('keys are 64 base64url characters without padding', async () => {
      assert.match(await generate(), /^[A-Za-z0-9_-]{64}$/);
    });
    test('period is the remaining whole seconds', async () => {
      const period = Number((await get(await generate(3600, 'v')))[0]?.period);
      assert.ok(period >= 3598 && period <= 3600, `period ${period}`);
    });
    test('default period is one week and NULL expiry uses it', async () => {
      assert.equal(Number(await one('SELECT session.session_default_period()')), 604800);
      const k = await generate(null, 'v');
      assert.ok(Number((await get(k))[0]?.period) > 604790);
    });
    test('set_default_period applies to new sessions only', async () => {
      const before = await generate(null, 'old');
      await sql.query('SELECT session.session_set_default_period(100)');
      try {
        assert.equal(Number(await one('SELECT session.session_default_period()')), 100);
        const k = await generate(null, 'v');
        assert.ok(Number((await get(k))[0]?.period) <= 100);
        assert.ok(Number((await get(before))[0]?.period) > 604790);
        await sql.query('SELECT session.session_set($1, $2)', [before, 'again']);
        assert.ok(Number((await get(before))[0]?.period) <= 100);
      } finally {
        await sql.query('SELECT session.session_set_default_period(604800)');
      }
    });
    test('set, touch and put never create a session for an unknown, cleared or expired key', async () => {
      assert.equal(await one('SELECT session.session_set($1, $2)', ['chosen-by-attacker', 'v']), false);
      assert.deepEqual(await get('chosen-by-attacker'), []);
      assert.equal(await one('SELECT session.session_set($1, $2)', [await generate(0), 'v']), false);
      const cleared = await generate();
      await clear(cleared);
      assert.equal(await one('SELECT session.session_set($1, $2)', [cleared, 'v']), false);
      assert.equal(await one('SELECT session.session_touch($1)', [cleared]), false);
      assert.equal(await one('SELECT session.session_put($1, $2)', [cleared, 'v']), false);
      assert.deepEqual(await get(cleared), []);
    });
    test('set restarts the expiry; touch moves it without writing the value', async () => {
      const k = await generate(10, 'v');
      await sql.query('SELECT session.session_set($1, $2, 5000)', [k, 'w']);
      assert.ok(Number((await get(k))[0]?.period) > 4990);
      assert.equal(await one('SELECT session.session_touch($1, 20000)', [k]), true);
      const row = (await get(k))[0];
      assert.ok(row?.value === 'w' && Number(row.period) > 19990);
      assert.equal(await one('SELECT session.session_touch($1)', ['unknown']), false);
    });
    test('named arguments work', async () => {
      const k = await one<string>(`SELECT session.session_generate(value => 'x')`);
      assert.equal((await get(k))[0]?.value, 'x');
      assert.equal(await one(`SELECT session.session_set(key => $1, value => 'y', expiry => 60)`, [k]), true);
      assert.equal(await one<string>(`SELECT value FROM session.session_get(key => $1)`, [k]), 'y');
      await sql.query(`SELECT session.session_clear(key => $1)`, [k]);
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
      await clear(null);
      assert.deepEqual(await get('k'.repeat(100_000)), []);
    });
    test('keys with SQL and LIKE metacharacters are only keys', async () => {
      for (const k of ["'; DROP TABLE session.sessions; --", '%', '_', '\\', '"']) {
        assert.deepEqual(await get(k), []);
        assert.equal(await one('SELECT session.session_set($1, $2)', [k, 'v']), false);
      }
      // The tables are still there: a session can be made and read.
      assert.equal((await get(await generate(60, 'still here')))[0]?.value, 'still here');
    });
  });

  describe('session_put and session_count (for frameworks with their own ids)', () => {
    const id = (c: string) => c.repeat(32);
    test('creates, then replaces a live session; get sees it; stored once', async () => {
      assert.equal(await one('SELECT session.session_put($1, $2, 60)', [id('p'), 'one']), true);
      assert.equal((await get(id('p')))[0]?.value, 'one');
      assert.equal(await one('SELECT session.session_put($1, $2)', [id('p'), 'two']), true);
      const row = (await get(id('p')))[0];
      assert.equal(row?.value, 'two');
      assert.ok(Number(row?.period) > 604790);
      await open().t.storedOnce(id('p'));
    });
    test('never revives an expired session that is not purged yet', async () => {
      assert.equal(await one('SELECT session.session_put($1, $2, 0)', [id('q'), 'born expired']), true);
      assert.equal(await one('SELECT session.session_put($1, $2)', [id('q'), 'revive?']), false);
      assert.deepEqual(await get(id('q')), []);
    });
    test('refuses keys that are short or not base64url (22023), and NULLs (22004)', async () => {
      for (const k of [
        'short',
        'a'.repeat(31),
        `${'a'.repeat(31)}=`,
        `${'a'.repeat(40)} `,
        "'; --".repeat(10),
        'a'.repeat(1025),
      ]) {
        assert.equal(await sqlState(sql.query('SELECT session.session_put($1, $2)', [k, 'v'])), '22023', k);
      }
      assert.equal(await sqlState(sql.query('SELECT session.session_put(NULL, $1)', ['v'])), '22004');
      assert.equal(await sqlState(sql.query('SELECT session.session_put($1, NULL)', [id('r')])), '22004');
      assert.equal(await sqlState(sql.query('SELECT session.session_put($1, $2, $3)', [id('r'), 'v', '3155760001'])), '22023');
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
    test('22023: expiry out of range in generate, set and touch (never a date/time overflow); the stored value stays', async () => {
      for (const e of ['3155760001', '-3155760001', '9223372036854775807', '-9223372036854775808', '4611686018427387904']) {
        assert.equal(await sqlState(sql.query('SELECT session.session_generate($1)', [e])), '22023', e);
      }
      const k = await generate(60, 'kept');
      assert.equal(
        await sqlState(sql.query('SELECT session.session_set($1, $2, $3)', [k, 'new', '9223372036854775807'])),
        '22023',
      );
      assert.equal(
        await sqlState(sql.query('SELECT session.session_set($1, $2, $3)', ['unknown', 'new', '9223372036854775807'])),
        '22023',
      );
      assert.equal(await sqlState(sql.query('SELECT session.session_touch($1, $2)', [k, '3155760001'])), '22023');
      assert.equal((await get(k))[0]?.value, 'kept');
      // The bounds themselves are accepted.
      await generate(3155760000);
      await generate(-3155760000);
    });
    test('22023: default period NULL, zero, negative or too large; the old one stays', async () => {
      for (const p of [null, 0, -1, '3155760001']) {
        assert.equal(await sqlState(sql.query('SELECT session.session_set_default_period($1)', [p])), '22023');
      }
      assert.equal(Number(await one('SELECT session.session_default_period()')), 604800);
    });
    test('22023: purge batch size NULL or < 1', async () => {
      assert.equal(await sqlState(sql.query('SELECT session.session_purge(NULL)')), '22023');
      assert.equal(await sqlState(sql.query('SELECT session.session_purge(0)')), '22023');
    });
    test('22004: set with a NULL value; the stored value stays', async () => {
      const k = await generate(60, 'kept');
      assert.equal(await sqlState(sql.query('SELECT session.session_set($1, NULL)', [k])), '22004');
      assert.equal((await get(k))[0]?.value, 'kept');
    });
    test('22001: a value over the limit is refused and the stored value kept; at the limit it is accepted', async () => {
      const k = await generate(60, 'kept');
      assert.equal(await sqlState(sql.query('SELECT session.session_set($1, $2)', [k, 'x'.repeat(valueLimit + 1)])), '22001');
      // The limit is in bytes: two-byte characters reach it at half the length.
      assert.equal(await sqlState(sql.query('SELECT session.session_set($1, $2)', [k, 'é'.repeat(valueLimit / 2 + 1)])), '22001');
      assert.equal(await sqlState(sql.query('SELECT session.session_generate(60, $1)', ['x'.repeat(valueLimit + 1)])), '22001');
      assert.equal((await get(k))[0]?.value, 'kept');
      assert.equal(await one('SELECT session.session_set($1, $2)', [k, 'x'.repeat(valueLimit)]), true);
      assert.equal((await get(k))[0]?.value?.length, valueLimit);
    });
  });

  describe('the TypeScript client', () => {
    const store = () => open().store;
    const admin = () => open().admin;
    test('generate, get, set, touch, clear', async () => {
      const key = await store().generate({ expiry: 3600, value: 'v' });
      const r = await store().get(key);
      assert.ok(r.ok && r.value === 'v' && r.period > 3590 && r.period <= 3600 && Number.isInteger(r.period));
      assert.equal(await store().set(key, 'v2', { expiry: 60 }), true);
      const r2 = await store().get(key);
      assert.ok(r2.ok && r2.value === 'v2' && r2.period <= 60);
      assert.equal(await store().touch(key, { expiry: 120 }), true);
      const r3 = await store().get(key);
      assert.ok(r3.ok && r3.value === 'v2' && r3.period <= 120 && r3.period > 110);
      await store().clear(key);
      assert.deepEqual(await store().get(key), { ok: false, error: 'not_found' });
      assert.equal(await store().set(key, 'v3'), false);
    });
    test('not set, not found, expired', async () => {
      assert.deepEqual(await store().get(await store().generate()), { ok: false, error: 'not_set' });
      assert.deepEqual(await store().get('garbage'), { ok: false, error: 'not_found' });
      assert.deepEqual(await store().get(await store().generate({ expiry: 0, value: 'x' })), { ok: false, error: 'not_found' });
      assert.deepEqual(await store().get(await store().generate({ expiry: -1 })), { ok: false, error: 'not_found' });
    });
    test('default period: one week, settable, numbers not strings', async () => {
      assert.equal(await store().defaultPeriod(), 604800);
      await admin().setDefaultPeriod(86400);
      try {
        assert.equal(await store().defaultPeriod(), 86400);
        const r = await store().get(await store().generate({ value: 'x' }));
        assert.ok(r.ok && r.period <= 86400 && r.period > 86390);
      } finally {
        await admin().setDefaultPeriod(604800);
      }
    });
    test('purge and count return numbers', async () => {
      await store().generate({ expiry: -10, value: 'old' });
      let total = 0;
      for (let n = await admin().purge(); n > 0; n = await admin().purge({ batchSize: 100 })) total += n;
      assert.ok(total >= 1);
      assert.equal(await admin().purge(), 0);
      assert.equal(typeof (await store().count()), 'number');
    });
    test('many calls in flight keep their order and results', async () => {
      const keys = await Promise.all(Array.from({ length: 200 }, (_, i) => store().generate({ value: `v${i}` })));
      const results = await Promise.all(keys.map((k) => store().get(k)));
      for (const [i, r] of results.entries()) assert.ok(r.ok && r.value === `v${i}`, `result ${i}`);
    });
    test('server errors map to stable codes, and the stored value is kept', async () => {
      const key = await store().generate({ value: 'kept' });
      assert.equal(await code(store().generate({ expiry: 3155760001 })), 'invalid_parameter');
      assert.equal(await code(store().set(key, 'x', { expiry: -3155760001 })), 'invalid_parameter');
      assert.equal(await code(admin().setDefaultPeriod(0)), 'invalid_parameter');
      assert.equal(await code(admin().purge({ batchSize: 0 })), 'invalid_parameter');
      assert.equal(await code(store().put('short', 'v')), 'invalid_parameter');
      assert.equal(await code(store().set(key, 'x'.repeat(valueLimit + 1))), 'value_too_large');
      const r = await store().get(key);
      assert.ok(r.ok && r.value === 'kept');
    });
    test('SessionError keeps the SQLSTATE and the driver error as cause; no key in the message', async () => {
      const key = await store().generate({ value: 'kept' });
      try {
        await store().set(key, 'x'.repeat(valueLimit + 1));
        assert.fail('expected an error');
      } catch (err) {
        assert.ok(err instanceof SessionError);
        assert.equal(err.code, 'value_too_large');
        assert.equal(err.sqlState, '22001');
        assert.ok(err.cause instanceof Error);
        const text = `${err.message} ${String(err.stack)} ${JSON.stringify(err)} ${String((err.cause as Error).message)}`;
        assert.ok(!text.includes(key), 'the key leaked into the error');
      }
    });
    test('put creates and replaces under a framework id; count counts live sessions', async () => {
      const id = 'F'.repeat(32);
      const before = await store().count();
      assert.equal(await store().put(id, 'a', { expiry: 60 }), true);
      assert.equal(await store().put(id, 'b'), true);
      const r = await store().get(id);
      assert.ok(r.ok && r.value === 'b');
      assert.equal(await store().count(), before + 1);
      await open().t.storedOnce(id);
      assert.equal(await code(store().put('short', 'v')), 'invalid_parameter');
      assert.equal(await code(store().put(7 as unknown as string, 'v')), 'invalid_argument');
    });
  });
}
