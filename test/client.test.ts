// The TypeScript client against one real database: what only one database shows (input checks,
// connections, roles, psql). The calls every target shares are the contract of test/contract/api.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { connectAdmin, type SessionAdmin } from '../src/admin-index.js';
import { adminQuery, errorCode, freshDatabase, psql, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let clientUrl: string;
let store: SessionStore;
let admin: SessionAdmin;
before(async () => {
  db = await freshDatabase('client');
  clientUrl = await db.clientRole({ admin: true });
  store = connect({ connectionString: clientUrl });
  admin = connectAdmin({ connectionString: clientUrl });
});
after(async () => {
  await store.close();
  await admin.close();
  await db.drop();
});

const code = errorCode;

describe('API', () => {
  test('int8 is parsed per query: pg global parsers are unchanged', async () => {
    assert.equal(pg.types.getTypeParser(20, 'text')('12'), '12');
  });
});

describe('errors', () => {
  test('a role outside session_client gets permission_denied', async () => {
    const role = `t_outsider_${process.pid}`;
    await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    const u = new URL(db.url);
    u.username = role;
    u.password = 'pw';
    const outsider = connect({ connectionString: u.toString() });
    try {
      assert.equal(await code(outsider.generate()), 'permission_denied');
    } finally {
      await outsider.close();
      await adminQuery(`DROP ROLE ${role}`);
    }
  });
  test('a database without the schema gives not_installed', async () => {
    const empty = await freshDatabase('empty', { empty: true });
    const s = connect({ connectionString: empty.url });
    try {
      assert.equal(await code(s.get('k')), 'not_installed');
    } finally {
      await s.close();
      await empty.drop();
    }
  });
  test('closed store rejects with closed', async () => {
    const s = connect({ connectionString: clientUrl });
    await s.get('k');
    await s.close();
    assert.equal(await code(s.get('k')), 'closed');
  });
});

describe('connections', () => {
  test('libpq-style options and conninfo connect', async () => {
    const u = new URL(clientUrl);
    const fields = {
      host: u.hostname,
      port: Number(u.port),
      dbname: u.pathname.slice(1),
      user: u.username,
      password: u.password,
    };
    for (const options of [
      fields,
      { conninfo: `host=${u.hostname} port=${u.port} dbname=${fields.dbname} user=${u.username} password='${u.password}'` },
      { hostaddr: '127.0.0.1', ...fields, host: undefined as unknown as string },
    ]) {
      const s = connect(options);
      try {
        assert.deepEqual(await s.get('k'), { ok: false, error: 'not_found' });
      } finally {
        await s.close();
      }
    }
    assert.throws(
      () => connect({ conninfo: 'bogus=1' }),
      (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
    );
  });
  test('{ pool } is reused with named prepared statements, and left open by close()', async () => {
    const pool = new pg.Pool({ connectionString: clientUrl, max: 1 });
    const s = connect({ pool });
    const key = await s.generate({ value: 'p' });
    await s.get(key);
    await s.set(key, 'q');
    await s.close();
    const names = (await pool.query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name')).rows.map(
      (r) => r.name,
    );
    assert.deepEqual(names, ['session_pg_generate', 'session_pg_get', 'session_pg_set']);
    await pool.end();
  });
  test('`connections` is how many connections the store opens, lazily', async () => {
    const s = connect({ connectionString: clientUrl, connections: 3, applicationName: 'three' });
    try {
      const count = async () =>
        (await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'three'`)).rows[0]?.n;
      assert.equal(await count(), 0);
      // Calls that are not batched: until every connection is open, each goes to the next one.
      await Promise.all(Array.from({ length: 10 }, () => s.count()));
      assert.equal(await count(), 3);
    } finally {
      await s.close();
    }
  });
  test('connections killed under an idle store: no crash, the next calls reconnect', async () => {
    let reported = 0;
    const s = connect({
      connectionString: clientUrl,
      applicationName: 'killed',
      onError: () => {
        reported += 1;
      },
    });
    try {
      const key = await s.generate({ value: 'survives' });
      await Promise.all([s.get(key), s.get(key)]);
      await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'killed'`);
      // The server only signals the backends: the sockets close a moment later.
      for (let i = 0; i < 200 && reported === 0; i += 1) await sleep(25);
      assert.ok(reported >= 1, 'the broken connection was reported');
      const r = await s.get(key);
      assert.ok(r.ok && r.value === 'survives');
    } finally {
      await s.close();
    }
  });
});

describe('psql and TypeScript interoperate', () => {
  test('a session made by psql is read by the client, and the other way', async () => {
    const fromPsql = psql(db.url, `SELECT session.session_generate(600, 'from psql');`);
    const r = await store.get(fromPsql);
    assert.ok(r.ok && r.value === 'from psql');
    const fromTs = await store.generate({ expiry: 600, value: 'from ts' });
    assert.equal(psql(db.url, `SELECT value FROM session.session_get('${fromTs}');`), 'from ts');
    assert.equal(psql(db.url, `SELECT session.session_set('${fromTs}', 'changed by psql');`), 't');
    const r2 = await store.get(fromTs);
    assert.ok(r2.ok && r2.value === 'changed by psql');
  });
});
