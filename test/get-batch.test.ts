// session.session_get_batch through SQL, as another language would call it, and the client's gets,
// which go through it when several are made in one event-loop turn: every element answers what
// session_get answers for its key, and a database without the function still serves every get.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, type GetResult } from '../src/index.js';
import { freshDatabase, inTurn, uniqueName, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let clientUrl: string;
let app: pg.Client;
before(async () => {
  db = await freshDatabase('getbatch');
  clientUrl = await db.clientRole();
  app = new pg.Client({ connectionString: clientUrl });
  await app.connect();
});
after(async () => {
  await app.end();
  await db.drop();
});

const one = async <T>(sql: string, values: unknown[] = []): Promise<T> =>
  Object.values((await app.query(sql, values)).rows[0] ?? {})[0] as T;

/** Keys in every state a get can meet, some twice, and what session_get says of each. */
async function keysOfEveryState(): Promise<(string | null)[]> {
  const live = await one<string>('SELECT session.session_generate(3600, $1)', ['value']);
  const notSet = await one<string>('SELECT session.session_generate(60)');
  const cleared = await one<string>('SELECT session.session_generate(3600, $1)', ['gone']);
  await app.query('SELECT session.session_clear($1)', [cleared]);
  const expired = await one<string>('SELECT session.session_generate(0, $1)', ['old']);
  const others = await inTurn(
    Array.from({ length: 20 }, (_, i) => `v${i}`),
    (v) => one<string>('SELECT session.session_generate(NULL, $1)', [v]),
  );
  return [live, notSet, cleared, expired, 'no-such-key', null, 'k'.repeat(2000), '', live, ...others, notSet];
}

describe('session_get_batch', () => {
  test('each element: the row session_get returns for its key, ord = its position; no row when session_get has none', async () => {
    const keys = await keysOfEveryState();
    const expected: { ord: number; value: string | null; period: string }[] = [];
    for (const [i, key] of keys.entries()) {
      const r = await app.query<{ value: string | null; period: string }>('SELECT value, period FROM session.session_get($1)', [
        key,
      ]);
      for (const row of r.rows) expected.push({ ord: i + 1, ...row });
    }
    const got = await app.query<{ ord: number; value: string | null; period: string }>(
      'SELECT ord, value, period FROM session.session_get_batch($1::text[])',
      [keys],
    );
    // The periods are computed a moment apart: equal, or one second less in the batch.
    assert.deepEqual(
      got.rows.map(({ ord, value }) => ({ ord, value })),
      expected.map(({ ord, value }) => ({ ord, value })),
    );
    for (const [i, row] of got.rows.entries()) assert.ok(Number(expected[i]?.period) - Number(row.period) <= 1);
    assert.deepEqual(
      expected.map((r) => r.ord),
      [1, 2, 9, ...Array.from({ length: 20 }, (_, i) => 10 + i), 30],
    );
    assert.equal(expected[1]?.value, null, 'found, not set');
  });

  test('an empty or NULL array: no rows, no error', async () => {
    assert.equal((await app.query('SELECT * FROM session.session_get_batch($1::text[])', [[]])).rows.length, 0);
    assert.equal((await app.query('SELECT * FROM session.session_get_batch(NULL)')).rows.length, 0);
  });

  test('SECURITY DEFINER with a pinned search_path, documented; the client role may call it, PUBLIC and the admin role may not', async () => {
    const r = await db.query<{ prosecdef: boolean; proconfig: string[]; comment: string | null; acl: string[] }>(
      `SELECT p.prosecdef, p.proconfig, obj_description(p.oid, 'pg_proc') AS comment, p.proacl::text[] AS acl
         FROM pg_proc p WHERE p.oid = 'session.session_get_batch(text[])'::regprocedure`,
    );
    const row = r.rows[0];
    assert.equal(row?.prosecdef, true);
    assert.deepEqual(row?.proconfig, ['search_path=pg_catalog, pg_temp']);
    assert.match(row?.comment ?? '', /session_get/);
    assert.deepEqual(
      row?.acl.filter((e) => e.startsWith('=')),
      [],
    );
    const grants = await db.query<{ role: string; can: boolean }>(
      `SELECT r AS role, has_function_privilege(r, 'session.session_get_batch(text[])', 'EXECUTE') AS can
         FROM unnest(ARRAY['session_client', 'session_admin']) r`,
    );
    assert.deepEqual(grants.rows, [
      { role: 'session_client', can: true },
      { role: 'session_admin', can: false },
    ]);
  });
});

/** What store.get resolves, as the comparison wants it: periods left out (they move with time). */
const shape = (r: GetResult) => (r.ok ? { ok: true, value: r.value } : r);

describe('gets through the client', () => {
  test('gets made together, few or many, each resolve what a get made alone resolves', async () => {
    const keys = (await keysOfEveryState()).filter((k): k is string => k !== null);
    const store = connect({ connectionString: clientUrl });
    try {
      const alone: GetResult[] = [];
      for (const key of keys) alone.push(await store.get(key));
      // 3 at once: one statement; all of them at once: two, on two connections.
      for (const size of [3, keys.length]) {
        const together = await Promise.all(keys.slice(0, size).map((k) => store.get(k)));
        assert.deepEqual(together.map(shape), alone.slice(0, size).map(shape), `${size} at once`);
      }
      assert.deepEqual(alone.slice(0, 4).map(shape), [
        { ok: true, value: 'value' },
        { ok: false, error: 'not_set' },
        { ok: false, error: 'not_found' },
        { ok: false, error: 'not_found' },
      ]);
    } finally {
      await store.close();
    }
  });

  test('a database without session_get_batch, or a role not granted it: every get is still answered', async () => {
    const bare = await freshDatabase('nogetbatch');
    try {
      const url = await bare.clientRole();
      const admin = connect({ connectionString: url });
      const keys = await Promise.all(Array.from({ length: 30 }, (_, i) => admin.generate({ value: `v${i}` })));
      await admin.close();
      const check = async (what: string) => {
        const store = connect({ connectionString: url });
        try {
          const results = await Promise.all([...keys, 'no-such-key'].map((k) => store.get(k)));
          assert.deepEqual(
            results.map(shape),
            [...keys.map((_, i) => ({ ok: true, value: `v${i}` })), { ok: false, error: 'not_found' }],
            what,
          );
        } finally {
          await store.close();
        }
      };
      await bare.query('REVOKE EXECUTE ON FUNCTION session.session_get_batch(text[]) FROM session_client');
      await check('not granted');
      // As in a database still at 008: the function does not exist.
      await bare.query('DROP FUNCTION session.session_get_batch(text[])');
      await check('not installed');
    } finally {
      await bare.drop();
    }
  });

  test('a batch failing with 08006 (a proxy with a partition down) is sent again as single gets, and the next batch is tried', async () => {
    const bare = await freshDatabase('getbatch08006');
    try {
      const url = await bare.clientRole();
      // A stand-in for a proxy whose partition of one of the keys is unreachable; the sequence
      // counts its calls (nextval is not rolled back with the error).
      await bare.query(`CREATE SEQUENCE public.batch_calls;
        GRANT USAGE ON SEQUENCE public.batch_calls TO session_client;
        CREATE OR REPLACE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint, version bigint)
        LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('public.batch_calls');
          RAISE EXCEPTION 'a partition is unreachable' USING ERRCODE = 'connection_failure'; END $$`);
      const store = connect({ connectionString: url });
      try {
        const keys = await Promise.all(Array.from({ length: 6 }, (_, i) => store.generate({ value: `v${i}` })));
        for (let round = 1; round <= 2; round++) {
          const results = await Promise.all([...keys, 'no-such-key'].map((k) => store.get(k)));
          assert.deepEqual(results.map(shape), [
            ...keys.map((_, i) => ({ ok: true, value: `v${i}` })),
            { ok: false, error: 'not_found' },
          ]);
          assert.equal(Number((await bare.query('SELECT last_value FROM public.batch_calls')).rows[0]?.last_value), round);
        }
      } finally {
        await store.close();
      }
    } finally {
      await bare.drop();
    }
  });

  test('gets made in the turn the store closes reject with `closed` and open no connection', async () => {
    const app2 = uniqueName('gc');
    const store = connect({ connectionString: clientUrl, applicationName: app2 });
    const gets = Array.from({ length: 20 }, () =>
      store.get('some-key').then(
        () => 'resolved',
        (err: { code?: string }) => err.code,
      ),
    );
    await store.close();
    assert.deepEqual(
      await Promise.all(gets),
      gets.map(() => 'closed'),
    );
    const open = await db.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [app2]);
    assert.equal(open.rows.length, 0);
  });

  test('a statement error of the batch rejects each of its gets with a SessionError; the store serves again', async () => {
    const app2 = uniqueName('gt');
    const store = connect({ connectionString: clientUrl, applicationName: app2, statementTimeoutMs: 200 });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      const keys = await Promise.all(Array.from({ length: 5 }, () => store.generate({ value: 'v' })));
      // An exclusive lock on the table makes every read wait until the statement timeout.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE session.sessions IN ACCESS EXCLUSIVE MODE');
      const results = await Promise.allSettled(keys.map((k) => store.get(k)));
      assert.deepEqual(
        results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'resolved')),
        keys.map(() => 'statement_timeout'),
      );
      await holder.query('ROLLBACK');
      assert.deepEqual(
        (await Promise.all(keys.map((k) => store.get(k)))).map(shape),
        keys.map(() => ({ ok: true, value: 'v' })),
      );
    } finally {
      await holder.end();
      await store.close();
    }
  });
});
