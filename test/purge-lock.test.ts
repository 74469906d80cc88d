// A purge left open in a transaction (a DBA's psql session, a stuck job) must not make the next
// purge, or the pg_cron job, wait for it: they return at once and leave the work to it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { freshDatabase, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let holder: pg.Client;
let ops: pg.Client;
let owner: pg.Client;
before(async () => {
  db = await freshDatabase('purgelock');
  holder = new pg.Client({ connectionString: await db.adminRole() });
  ops = new pg.Client({ connectionString: await db.adminRole() });
  // A statement that waits for a lock fails with 57014 instead of hanging the test.
  owner = new pg.Client({ connectionString: db.url, statement_timeout: 5000 });
  for (const c of [holder, ops, owner]) await c.connect();
  await ops.query('SET statement_timeout = 5000');
});
after(async () => {
  for (const c of [holder, ops, owner]) await c.end();
  await db.drop();
});

test('while a purge is open in another transaction, purge and the pg_cron job return at once', async (t) => {
  await holder.query('BEGIN');
  assert.equal(Number((await holder.query('SELECT session.session_purge() AS n')).rows[0]?.n), 0);
  await db.query(`SELECT session.session_generate(-1, 'expired') FROM generate_series(1, 50)`);
  try {
    const started = Date.now();
    assert.equal(Number((await ops.query('SELECT session.session_purge() AS n')).rows[0]?.n), 0);
    await owner.query('CALL session.session_purge_job()');
    const waited = Date.now() - started;
    t.diagnostic(`purge and session_purge_job returned in ${waited} ms while another purge held the cursor`);
  } finally {
    await holder.query('COMMIT');
  }
  // With the other purge gone, the next one does the work.
  assert.equal(Number((await ops.query('SELECT session.session_purge() AS n')).rows[0]?.n), 50);
});
