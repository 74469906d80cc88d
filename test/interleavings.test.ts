// Races made deterministic: one call is held inside an open transaction while another waits for
// its row lock, then the first commits. These are the interleavings the stress tests
// (test/stress/races.test.ts) hit by chance; here each one is forced. a and b are client-role
// connections; p is an admin-role one, for the purge.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { adminQuery, adminUrl, freshDatabase, uniqueName, type TestDatabase } from './helpers.js';
import { databaseUrl } from './harness/urls.js';

let db: TestDatabase;
let a: pg.Client;
let b: pg.Client;
let p: pg.Client;
const pids = new Map<pg.Client, number>();
const adminRole = uniqueName('purger');
before(async () => {
  db = await freshDatabase('interleavings');
  const url = await db.clientRole();
  const password = randomBytes(12).toString('hex');
  await adminQuery(`CREATE ROLE ${adminRole} LOGIN PASSWORD '${password}' IN ROLE session_admin`);
  a = new pg.Client({ connectionString: url });
  b = new pg.Client({ connectionString: url });
  p = new pg.Client({ connectionString: databaseUrl(adminUrl, db.name, { user: adminRole, password }) });
  for (const c of [a, b, p]) {
    await c.connect();
    pids.set(c, Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0]?.p));
  }
});
beforeEach(async () => {
  await a.query('ROLLBACK').catch(() => {});
  await p.query('ROLLBACK').catch(() => {});
});
after(async () => {
  for (const c of [a, b, p]) await c.end();
  await db.drop();
  await adminQuery(`DROP ROLE IF EXISTS ${adminRole}`);
});

const one = async (c: pg.Client, sql: string, values: unknown[] = []) =>
  Object.values((await c.query(sql, values)).rows[0] ?? {})[0];
const value = async (key: string) => (await a.query('SELECT value FROM session.session_get($1)', [key])).rows[0]?.value;

/**
 * Starts `call` on `waiter` and waits (bounded) until it waits for a lock; `holder` holds it.
 * Returns the pending call in a box: an async function returning the promise itself would wait for it.
 */
async function blocked<T>(call: () => Promise<T>, waiter = b, holder = a): Promise<{ pending: Promise<T> }> {
  const pending = call();
  pending.catch(() => {});
  for (let i = 0; i < 400; i += 1) {
    const r = await db.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pids.get(waiter)]);
    if (r.rows[0]?.wait_event_type === 'Lock') return { pending };
    await sleep(25);
  }
  // Unblock the waiter before failing, so that nothing hangs.
  await holder.query('ROLLBACK');
  await pending.catch(() => {});
  throw new Error('the second call never waited for the first');
}

describe('forced interleavings', { timeout: 60_000 }, () => {
  test('two puts of a new key: the second waits for the first, then replaces it (neither is lost)', async () => {
    const key = 'interleaved-put'.padEnd(40, '_');
    await a.query('BEGIN');
    assert.equal(await one(a, 'SELECT session.session_put($1, $2)', [key, 'first']), true);
    const { pending: second } = await blocked(() => one(b, 'SELECT session.session_put($1, $2)', [key, 'second']));
    await a.query('COMMIT');
    assert.equal(await second, true, 'the second put reported an expired session');
    assert.equal(await value(key), 'second');
  });

  test('set extends a session at its expiry while purge wants to delete it: the extension wins', async () => {
    const key = String(await one(a, `SELECT session.session_generate(2, 'short')`));
    await a.query('BEGIN'); // now() is fixed from here on, while the session is still live
    assert.equal(await one(a, 'SELECT session.session_set($1, $2, 3600)', [key, 'extended']), true);
    await sleep(2100); // expired as far as any later now() goes
    const { pending: purge } = await blocked(() => one(p, 'SELECT session.session_purge()'), p);
    await a.query('COMMIT');
    assert.equal(Number(await purge), 0);
    assert.equal(await value(key), 'extended');
  });

  // Liveness is decided by the clock (clock_timestamp()), not by the transaction's start: a set in
  // a transaction begun while the session was live sees it expired, so it neither waits for the
  // purge's uncommitted delete nor extends the session. (If it waited, this test would hang.)
  test('purge holds the delete of an expired session: a set in a transaction begun while it was live answers false at once', async () => {
    const key = String(await one(a, `SELECT session.session_generate(2, 'short')`));
    await b.query('BEGIN'); // b's now() is fixed here, while the session is still live
    try {
      await sleep(2100);
      await p.query('BEGIN');
      assert.ok(Number(await one(p, 'SELECT session.session_purge()')) >= 1);
      assert.equal(await one(b, 'SELECT session.session_set($1, $2, 3600)', [key, 'too late']), false);
      await p.query('COMMIT');
    } finally {
      await b.query('COMMIT');
    }
    assert.equal(await value(key), undefined);
  });

  test('clear commits while set waits on the row: set answers false and no later get sees the session', async () => {
    const key = String(await one(a, `SELECT session.session_generate(3600, 'old')`));
    await a.query('BEGIN');
    await a.query('SELECT session.session_clear($1)', [key]);
    const { pending: set } = await blocked(() => one(b, 'SELECT session.session_set($1, $2)', [key, 'new']));
    await a.query('COMMIT');
    assert.equal(await set, false);
    assert.equal(await value(key), undefined);
  });

  test('set commits while clear waits on the row: the clear still wins', async () => {
    const key = String(await one(a, `SELECT session.session_generate(3600, 'old')`));
    await a.query('BEGIN');
    assert.equal(await one(a, 'SELECT session.session_set($1, $2)', [key, 'new']), true);
    const { pending: clear } = await blocked(() => b.query('SELECT session.session_clear($1)', [key]));
    await a.query('COMMIT');
    await clear;
    assert.equal(await value(key), undefined);
  });
});
