// Group commit in the client: while a write is in flight on a lane, the writes that arrive go
// together as one call of session_write_batch. Each caller gets the result its single call would
// give; one bad call fails alone; a failure of the whole statement rejects each caller of it; reads
// never wait behind writes. A lock held by the test (never a timer) keeps a write in flight, so the
// calls made meanwhile are known to form one batch.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { errorCode, freshDatabase, uniqueName, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let clientUrl: string;
before(async () => {
  db = await freshDatabase('batch');
  clientUrl = await db.clientRole();
  // Small enough that a too-large value fits in a batch with the others.
  await db.query('UPDATE session.config SET max_value_bytes = 1000');
});
after(async () => {
  await db.drop();
});

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value }),
    (err: unknown) => ({ code: err instanceof SessionError ? err.code : `not a SessionError: ${String(err)}` }),
  );

/** Another session holding a lock that makes the store's writes wait (reads do not). */
async function holdWrites(mode = 'SHARE'): Promise<pg.Client> {
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query(`LOCK TABLE session.sessions IN ${mode} MODE`);
  return holder;
}

/** Waits (bounded) until `n` backends of this application wait for a lock, showing `like` as their query. */
async function waitingBackends(app: string, like: string, n = 1): Promise<number[]> {
  for (let i = 0; i < 400; i += 1) {
    const r = await db.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE $2`,
      [app, like],
    );
    if (r.rows.length >= n) return r.rows.map((row) => row.pid);
    await sleep(25);
  }
  throw new Error(`no backend of ${app} waited on a lock running ${like}`);
}

/** The last statement of each backend of this application (an idle backend shows its last one). */
async function lastQueries(app: string): Promise<string[]> {
  const r = await db.query<{ query: string }>('SELECT query FROM pg_stat_activity WHERE application_name = $1', [app]);
  return r.rows.map((row) => row.query);
}

describe('group commit through the client', () => {
  test('calls made while a write is in flight form one batch; one bad call fails alone; reads do not wait', async () => {
    const app = uniqueName('gc');
    const store = connect({ connectionString: clientUrl, writeConnections: 1, applicationName: app });
    try {
      const keys = await Promise.all(Array.from({ length: 20 }, (_, i) => store.generate({ value: `v${i}` })));
      const holder = await holdWrites();
      let first: Promise<{ value: unknown } | { code: string }>;
      let calls: Promise<{ value: unknown } | { code: string }>[];
      try {
        first = settle(store.generate({ value: 'first' }));
        await waitingBackends(app, '%session_generate%');
        calls = [
          ...keys.map((k, i) => settle(store.set(k, `w${i}`))),
          settle(store.set(keys[0] as string, 'x'.repeat(1001))),
          settle(store.touch(keys[1] as string, { expiry: 3155760001 })),
          settle(store.put('too-short', 'v')),
          settle(store.generate({ value: 'g' })),
          settle(store.set(keys[2] as string, 'again')),
          settle(store.clear(keys[3] as string)),
          settle(store.set(keys[3] as string, 'after clear')),
        ];
        // A get is served on the read connections meanwhile.
        const r = await store.get(keys[0] as string);
        assert.ok(r.ok && r.value === 'v0', JSON.stringify(r));
      } finally {
        await holder.query('COMMIT');
        await holder.end();
      }
      const results = await Promise.all(calls);
      assert.ok('value' in (await first), 'the write that was in flight committed');
      assert.deepEqual(
        results.slice(0, 20),
        keys.map(() => ({ value: true })),
      );
      assert.deepEqual(results.slice(20, 23), [
        { code: 'value_too_large' },
        { code: 'invalid_parameter' },
        { code: 'invalid_parameter' },
      ]);
      const generated = results[23] as { value: string };
      assert.match(generated.value, /^[A-Za-z0-9_-]{64}$/);
      assert.deepEqual(results.slice(24), [{ value: true }, { value: undefined }, { value: false }]);
      // What committed: the last write of each key, in call order; the failed calls changed nothing.
      const values = await Promise.all(keys.map((k) => store.get(k)));
      assert.deepEqual(values.slice(0, 4), [
        {
          ok: true,
          value: 'w0',
          period: (values[0] as { period: number }).period,
          version: (values[0] as { version: number }).version,
        },
        {
          ok: true,
          value: 'w1',
          period: (values[1] as { period: number }).period,
          version: (values[1] as { version: number }).version,
        },
        {
          ok: true,
          value: 'again',
          period: (values[2] as { period: number }).period,
          version: (values[2] as { version: number }).version,
        },
        { ok: false, error: 'not_found' },
      ]);
      assert.equal((await store.get(generated.value)).ok, true);
      // They went as one statement: the write connection's last statement was the batch.
      assert.equal((await lastQueries(app)).filter((q) => q.includes('session_write_batch')).length, 1);
    } finally {
      await store.close();
    }
  });

  test('a batch resolves each call with what its single call resolves', async () => {
    const batched = connect({ connectionString: clientUrl, writeConnections: 1 });
    const singles = connect({ connectionString: clientUrl });
    try {
      const script = async (s: SessionStore, together: boolean) => {
        const [a, b, c] = await Promise.all([s.generate({ value: 'a' }), s.generate(), s.generate({ value: 'c', expiry: 60 })]);
        const put = `${uniqueName('p').replace(/[^A-Za-z0-9_-]/g, '_')}${'x'.repeat(32)}`;
        const ops: (() => Promise<unknown>)[] = [
          () => s.set(a, 'a2'),
          () => s.touch(b, { expiry: 10 }),
          () => s.set(b, 'b2', { expiry: -1 }),
          () => s.set(b, 'b3'),
          () => s.put(put, 'p1'),
          () => s.put(put, 'p2'),
          () => s.clear(c),
          () => s.touch(c),
          () => s.set('no-such-key', 'v'),
          () => s.set(a, 'y'.repeat(2000)),
          () => s.generate({ expiry: 0 }).then((k) => typeof k),
        ];
        const results = together
          ? await Promise.all(ops.map((op) => settle(op())))
          : await ops.reduce(async (acc, op) => [...(await acc), await settle(op())], Promise.resolve([] as unknown[]));
        const state = await Promise.all([a, b, c, put].map((k) => s.get(k)));
        return { results, state: state.map((r) => (r.ok ? r.value : r.error)) };
      };
      assert.deepEqual(await script(batched, true), await script(singles, false));
    } finally {
      await Promise.all([batched.close(), singles.close()]);
    }
  });

  test('a row locked elsewhere holds back only its own call: the rest of the batch resolves first', async () => {
    const app = uniqueName('lk');
    const store = connect({ connectionString: clientUrl, writeConnections: 1, applicationName: app });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      const [locked, ...others] = await Promise.all(Array.from({ length: 6 }, () => store.generate({ value: 'v' })));
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM session.sessions WHERE digest = session.key_digest($1) FOR UPDATE', [locked]);
      let lockedDone = false;
      const lockedCall = store.set(locked as string, 'late').then((r) => {
        lockedDone = true;
        return r;
      });
      const rest = others.map((k) => store.set(k, 'now'));
      assert.deepEqual(
        await Promise.all(rest),
        others.map(() => true),
      );
      assert.equal(lockedDone, false);
      // Sent again alone, it waits for the lock like a single call.
      await waitingBackends(app, '%session_set%');
      await holder.query('ROLLBACK');
      assert.equal(await lockedCall, true);
      const r = await store.get(locked as string);
      assert.ok(r.ok && r.value === 'late');
    } finally {
      await holder.end();
      await store.close();
    }
  });

  test('a statement timeout or the deadline rejects every caller of the batch, and nothing of it is written', async () => {
    const app = uniqueName('to');
    // Long enough for the poll below to see the call waiting on a slow machine; shorter than the
    // batch's 2 s lock_timeout, which would otherwise fire first.
    const store = connect({ connectionString: clientUrl, writeConnections: 1, applicationName: app, statementTimeoutMs: 1000 });
    try {
      const keys = await Promise.all(Array.from({ length: 10 }, () => store.generate({ value: 'kept' })));
      const holder = await holdWrites();
      try {
        const first = settle(store.generate({ value: 'x' }));
        await waitingBackends(app, '%session_generate%');
        const batch = [...keys.map((k) => settle(store.set(k, 'lost'))), settle(store.generate())];
        assert.deepEqual(await first, { code: 'statement_timeout' });
        // The batch's callers called while the first call was in flight: their deadline (1 s plus
        // a margin from the call) passes before the server's statement_timeout for the batch, sent
        // about 1 s later, so the client ends them with `timeout`.
        assert.deepEqual(
          await Promise.all(batch),
          batch.map(() => ({ code: 'timeout' })),
        );
      } finally {
        await holder.query('ROLLBACK');
        await holder.end();
      }
      for (const k of keys) assert.equal(((await store.get(k)) as { value?: string }).value, 'kept');
    } finally {
      await store.close();
    }
  });

  test('a connection lost under a batch rejects every caller with `connection`; nothing is retried; the store serves again', async () => {
    const app = uniqueName('cl');
    const store = connect({ connectionString: clientUrl, writeConnections: 1, applicationName: app });
    try {
      const keys = await Promise.all(Array.from({ length: 10 }, () => store.generate({ value: 'kept' })));
      const before = Number((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM session.sessions')).rows[0]?.n);
      const holder = await holdWrites();
      let generates: Promise<{ value: unknown } | { code: string }>[] = [];
      let sets: Promise<{ value: unknown } | { code: string }>[] = [];
      try {
        const first = settle(store.set(keys[0] as string, 'first'));
        const [pid] = await waitingBackends(app, '%session_set%');
        sets = keys.map((k) => settle(store.set(k, 'lost')));
        generates = Array.from({ length: 5 }, () => settle(store.generate({ value: 'lost' })));
        await db.query('SELECT pg_terminate_backend($1)', [pid]);
        assert.deepEqual(await first, { code: 'connection' });
        // The batch goes on a new connection, and waits for the lock in turn.
        const [pid2] = await waitingBackends(app, '%session_write_batch%');
        await db.query('SELECT pg_terminate_backend($1)', [pid2]);
        assert.deepEqual(
          await Promise.all([...sets, ...generates]),
          [...sets, ...generates].map(() => ({ code: 'connection' })),
        );
      } finally {
        await holder.query('ROLLBACK');
        await holder.end();
      }
      // No generate was sent again behind the caller's back.
      assert.equal(Number((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM session.sessions')).rows[0]?.n), before);
      for (const k of keys) assert.equal(((await store.get(k)) as { value?: string }).value, 'kept');
      assert.equal(await store.set(keys[0] as string, 'again'), true);
    } finally {
      await store.close();
    }
  });

  test('close(): calls still queued reject with `closed`, the one in flight completes', async () => {
    const app = uniqueName('cz');
    const store = connect({ connectionString: clientUrl, writeConnections: 1, applicationName: app });
    const key = await store.generate({ value: 'v' });
    const holder = await holdWrites();
    const inFlight = settle(store.set(key, 'in flight'));
    await waitingBackends(app, '%session_set%');
    const queued = [settle(store.set(key, 'queued')), settle(store.generate())];
    const closing = store.close();
    assert.deepEqual(await Promise.all(queued), [{ code: 'closed' }, { code: 'closed' }]);
    await holder.query('COMMIT');
    await holder.end();
    await closing;
    assert.deepEqual(await inFlight, { value: true });
    assert.equal(await errorCode(store.set(key, 'after')), 'closed');
  });

  test('with { pool }: writes are batched through the pool, each caller gets its own result', async () => {
    const pool = new pg.Pool({ connectionString: clientUrl, max: 3 });
    const store = connect({ pool, writeConnections: 1 });
    try {
      const keys = await Promise.all(Array.from({ length: 50 }, (_, i) => store.generate({ value: `v${i}` })));
      const results = await Promise.all(keys.map((k, i) => settle(store.set(k, i === 7 ? 'x'.repeat(1001) : `w${i}`))));
      assert.deepEqual(
        results,
        keys.map((_, i) => (i === 7 ? { code: 'value_too_large' } : { value: true })),
      );
      const values = await Promise.all(keys.map((k) => store.get(k)));
      assert.deepEqual(
        values.map((r) => (r.ok ? r.value : r.error)),
        keys.map((_, i) => (i === 7 ? 'v7' : `w${i}`)),
      );
    } finally {
      await store.close();
      await pool.end();
    }
  });

  test('with two lanes idle, a batch of 24 calls or more goes as two statements at once; each key stays in one, in call order', async () => {
    const app = uniqueName('sp');
    const store = connect({ connectionString: clientUrl, applicationName: app });
    try {
      const keys = await Promise.all(Array.from({ length: 40 }, (_, i) => store.generate({ value: `v${i}` })));
      const x = keys[0] as string;
      const holder = await holdWrites();
      let results: Promise<boolean>[];
      try {
        // keys[0] is set first, and twice more at the end: in the second half by position.
        results = keys.map((k, i) => store.set(k, `w${i}`));
        results.push(store.set(x, 'b'), store.set(x, 'c'));
        // Both statements wait for the lock at once: the 42 calls went in two parts.
        await waitingBackends(app, '%session_write_batch%', 2);
      } finally {
        await holder.query('COMMIT');
        await holder.end();
      }
      assert.deepEqual(
        await Promise.all(results),
        results.map(() => true),
      );
      const values = await Promise.all(keys.map((k) => store.get(k)));
      assert.deepEqual(
        values.map((r) => (r.ok ? r.value : r.error)),
        keys.map((_, i) => (i === 0 ? 'c' : `w${i}`)),
      );
    } finally {
      await store.close();
    }
  });

  test('a call queued behind a write goes together with the calls its caller makes as that write resolves', async () => {
    const app = uniqueName('jn');
    const store = connect({ connectionString: clientUrl, writeConnections: 1, applicationName: app });
    try {
      const [a, b, c] = await Promise.all([store.generate(), store.generate(), store.generate()]);
      const holder = await holdWrites();
      let chain: Promise<boolean>;
      let queued: Promise<boolean>;
      try {
        // The caller of the first write makes its next call as soon as the first resolves.
        chain = store.set(a as string, 'first').then(() => store.set(c as string, 'next'));
        await waitingBackends(app, '%session_set%');
        queued = store.set(b as string, 'queued');
      } finally {
        await holder.query('COMMIT');
        await holder.end();
      }
      assert.deepEqual(await Promise.all([chain, queued]), [true, true]);
      // One statement for both, not the queued call alone and the next one after its commit.
      assert.deepEqual(
        (await lastQueries(app)).filter((q) => q.includes('session_')).map((q) => q.includes('session_write_batch')),
        [true],
      );
    } finally {
      await store.close();
    }
  });

  test('a database without session_write_batch, or a role not granted it: the writes go one by one and all succeed', async () => {
    const bare = await freshDatabase('nobatch');
    try {
      const url = await bare.clientRole();
      await bare.query(
        'REVOKE EXECUTE ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[]) FROM session_client',
      );
      const check = async (what: string) => {
        const store = connect({ connectionString: url, writeConnections: 1 });
        try {
          const keys = await Promise.all(Array.from({ length: 30 }, (_, i) => store.generate({ value: `v${i}` })));
          const results = await Promise.all(keys.map((k, i) => settle(store.set(k, i === 3 ? 'x'.repeat(1001) : `w${i}`))));
          assert.deepEqual(
            results,
            keys.map((_, i) => (i === 3 ? { code: 'value_too_large' } : { value: true })),
            what,
          );
        } finally {
          await store.close();
        }
      };
      await bare.query('UPDATE session.config SET max_value_bytes = 1000');
      await check('not granted');
      // As in a database still at 003: the function does not exist.
      await bare.query('DROP FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[])');
      await check('not installed');
    } finally {
      await bare.drop();
    }
  });

  test('writeConnections and maxBatchCalls must be positive integers', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => connect({ connectionString: clientUrl, writeConnections: bad }),
        (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
      );
      assert.throws(
        () => connect({ connectionString: clientUrl, maxBatchCalls: bad }),
        (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
      );
    }
  });
});
