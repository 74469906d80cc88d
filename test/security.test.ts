// The privilege model: the application's role calls functions and can do nothing else.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { adminQuery, freshDatabase, sqlState, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let app: pg.Client;
let ops: pg.Client;
before(async () => {
  db = await freshDatabase('security');
  app = new pg.Client({ connectionString: await db.clientRole() });
  ops = new pg.Client({ connectionString: await db.adminRole() });
  await app.connect();
  await ops.connect();
});
after(async () => {
  await app.end();
  await ops.end();
  await db.drop();
});

/** What the application's role (session_client) may call. */
const clientFunctions = [
  'session_generate(expiry bigint, value text, subject text, label text, lifetime bigint)',
  'session_set_subject(key text, subject text, label text)',
  'session_list(subject text, max_sessions integer)',
  'session_revoke(subject text, except_key text)',
  'session_revoke_handle(subject text, handle uuid)',
  'session_rotate(key text)',
  'session_absolute_lifetime()',
  'session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[], versions bigint[])',
  'session_get(key text)',
  'session_get_batch(keys text[])',
  'session_set(key text, value text, expiry bigint, if_version bigint)',
  'session_touch(key text, expiry bigint)',
  'session_clear(key text)',
  'session_default_period()',
  'session_put(key text, value text, expiry bigint, if_version bigint)',
  'session_count()',
  'session_merge(key text, set_fields jsonb, unset_fields text[], expiry bigint, if_version bigint)',
];
/** What the admin role (session_admin) may call: the calls that affect every session. */
const adminFunctions = [
  'session_set_default_period(period bigint)',
  'session_purge(batch_size integer)',
  'session_stats()',
  'session_default_period()',
  'session_count()',
  'session_set_absolute_lifetime(lifetime bigint)',
  'session_absolute_lifetime()',
];

describe('a login role in session_client', () => {
  test('can call every public function', async () => {
    const key = (await app.query<{ k: string }>(`SELECT session.session_generate(60, 'v') AS k`)).rows[0]?.k;
    assert.equal((await app.query('SELECT value FROM session.session_get($1)', [key])).rows[0]?.value, 'v');
    assert.equal((await app.query('SELECT session.session_set($1, $2) AS ok', [key, 'w'])).rows[0]?.ok, true);
    assert.equal((await app.query('SELECT session.session_touch($1, 120) AS ok', [key])).rows[0]?.ok, true);
    assert.equal((await app.query(`SELECT session.session_set($1, '{}', NULL, NULL) AS ok`, [key])).rows[0]?.ok, true);
    assert.equal((await app.query(`SELECT session.session_merge($1, '{"a": 1}') AS ok`, [key])).rows[0]?.ok, true);
    await app.query('SELECT session.session_clear($1)', [key]);
    await app.query('SELECT session.session_default_period()');
    assert.equal((await app.query('SELECT session.session_put($1, $2) AS ok', ['a'.repeat(32), 'p'])).rows[0]?.ok, true);
    assert.ok(Number((await app.query('SELECT session.session_count() AS n')).rows[0]?.n) >= 1);
  });

  test("cannot change the default period, purge or read stats: those are the admin role's", async () => {
    // With the default period at 1 s, every session written afterwards would end within a second.
    for (const sql of [
      'SELECT session.session_set_default_period(1)',
      'SELECT session.session_set_default_period(3155760000)',
      'SELECT session.session_purge()',
      'SELECT * FROM session.session_stats()',
    ]) {
      assert.equal(await sqlState(app.query(sql)), '42501', sql);
    }
    assert.equal((await db.query('SELECT default_period FROM session.config')).rows[0]?.default_period, '604800');
  });

  test('cannot select, insert, update, delete or truncate any table', async () => {
    const tables = (
      await db.query<{ t: string; c: string }>(`
      SELECT format('session.%I', c.relname) AS t, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = 1) AS c
        FROM pg_class c WHERE c.relnamespace = 'session'::regnamespace AND c.relkind = 'r' ORDER BY 1`)
    ).rows;
    assert.deepEqual(
      tables.map((r) => r.t),
      ['session.config', 'session.purge_state', 'session.sessions'],
    );
    for (const { t, c } of tables) {
      for (const sql of [
        `SELECT * FROM ${t}`,
        `INSERT INTO ${t} DEFAULT VALUES`,
        `UPDATE ${t} SET ${c} = ${c}`,
        `DELETE FROM ${t}`,
        `TRUNCATE ${t}`,
        `COPY ${t} TO STDOUT`,
      ]) {
        assert.equal(await sqlState(app.query(sql)), '42501', sql);
      }
    }
  });

  test('cannot call the private helpers', async () => {
    assert.equal(await sqlState(app.query(`SELECT session.key_digest('k')`)), '42501');
    assert.equal(await sqlState(app.query(`SELECT session.expiry_at('v', 1, now())`)), '42501');
    assert.equal(await sqlState(app.query(`CALL session.session_purge_job()`)), '42501');
  });

  test('cannot redefine, alter or drop the API, nor create objects in the schema', async () => {
    for (const sql of [
      `CREATE OR REPLACE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint) LANGUAGE sql AS $$ SELECT 'x', 1::bigint $$`,
      `ALTER FUNCTION session.session_get(text) SECURITY INVOKER`,
      `ALTER FUNCTION session.session_get(text) RESET search_path`,
      `DROP FUNCTION session.session_clear(text)`,
      `CREATE TABLE session.mine (x int)`,
      `CREATE FUNCTION session.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
      `ALTER TABLE session.sessions ADD COLUMN leak text`,
      `GRANT SELECT ON session.sessions TO PUBLIC`,
    ]) {
      assert.equal(await sqlState(app.query(sql)), '42501', sql);
    }
  });
});

describe('a login role in session_admin', () => {
  test('changes the default period, purges and reads stats, and cannot touch a session', async () => {
    await ops.query('SELECT session.session_set_default_period(3600)');
    assert.equal((await ops.query('SELECT session.session_default_period() AS p')).rows[0]?.p, '3600');
    await ops.query('SELECT session.session_set_default_period(604800)');
    assert.equal(Number((await ops.query('SELECT session.session_purge() AS n')).rows[0]?.n) >= 0, true);
    assert.equal((await ops.query('SELECT count(*) AS n FROM session.session_stats()')).rows[0]?.n, '1');
    for (const sql of [
      `SELECT session.session_generate()`,
      `SELECT * FROM session.session_get('k')`,
      `SELECT session.session_clear('k')`,
      `SELECT * FROM session.sessions`,
    ]) {
      assert.equal(await sqlState(ops.query(sql)), '42501', sql);
    }
  });
});

describe('function definitions', () => {
  test('every public function is SECURITY DEFINER with a pinned search_path, granted as documented, never to PUBLIC', async () => {
    const rows = (
      await db.query<{
        sig: string;
        secdef: boolean;
        config: string[] | null;
        public_exec: boolean;
        client_exec: boolean;
        admin_exec: boolean;
      }>(`
      SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS sig, p.prosecdef AS secdef,
             p.proconfig AS config,
             has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
             has_function_privilege('session_client', p.oid, 'EXECUTE') AS client_exec,
             has_function_privilege('session_admin', p.oid, 'EXECUTE') AS admin_exec
        FROM pg_proc p WHERE p.pronamespace = 'session'::regnamespace`)
    ).rows;
    // The procedure session_purge_job is the owner's (see sql/schema/50_admin.sql for why it cannot
    // be SECURITY DEFINER): no one else may execute it.
    // session_stats has only OUT arguments: it is called as session_stats().
    for (const r of rows) r.sig = r.sig.replace(/^(session_stats)\(OUT .*\)$/, '$1()');
    const api = rows.filter((r) => r.sig.startsWith('session_') && !r.sig.startsWith('session_purge_job('));
    assert.deepEqual(api.map((r) => r.sig).sort(), [...new Set([...clientFunctions, ...adminFunctions])].sort());
    for (const r of api) {
      assert.equal(r.secdef, true, r.sig);
      assert.deepEqual(r.config, ['search_path=pg_catalog, pg_temp'], r.sig);
    }
    for (const r of rows) {
      assert.equal(r.public_exec, false, r.sig);
      assert.equal(r.client_exec, clientFunctions.includes(r.sig), r.sig);
      assert.equal(r.admin_exec, adminFunctions.includes(r.sig), r.sig);
    }
  });
});

describe('search_path hijack', () => {
  test('look-alike functions and operators in an attacker schema first in search_path are never called', async () => {
    await adminQuery(
      `GRANT CREATE ON DATABASE ${db.name} TO ${(await app.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u}`,
    );
    await app.query(`CREATE SCHEMA evil`);
    await app.query(`CREATE TABLE evil.calls (fn text)`);
    for (const [name, args, ret] of [
      ['sha256', 'bytea', 'bytea'],
      ['now', '', 'timestamptz'],
      ['encode', 'bytea, text', 'text'],
      ['convert_to', 'text, name', 'bytea'],
      ['gen_random_uuid', '', 'uuid'],
      ['octet_length', 'text', 'int'],
      ['translate', 'text, text, text', 'text'],
      ['make_interval', 'int, int, int, int, int, int, double precision', 'interval'],
    ] as const) {
      await app.query(`CREATE FUNCTION evil.${name}(${args}) RETURNS ${ret} LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO evil.calls VALUES ('${name}'); RETURN NULL; END $$`);
    }
    await app.query(`CREATE FUNCTION evil.eq(bytea, bytea) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO evil.calls VALUES ('='); RETURN true; END $$`);
    await app.query(`CREATE OPERATOR evil.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = evil.eq)`);
    await app.query(`CREATE FUNCTION evil.gt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO evil.calls VALUES ('>'); RETURN true; END $$`);
    await app.query(`CREATE OPERATOR evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.gt)`);
    await app.query(`SET search_path = evil, pg_catalog, public`);
    try {
      const key = (await app.query<{ k: string }>(`SELECT session.session_generate(60, 'v') AS k`)).rows[0]?.k ?? '';
      assert.match(key, /^[A-Za-z0-9_-]{64}$/);
      assert.equal((await app.query('SELECT value FROM session.session_get($1)', [key])).rows[0]?.value, 'v');
      assert.equal((await app.query('SELECT value FROM session.session_get($1)', ['not-a-key'])).rowCount, 0);
      assert.equal((await app.query('SELECT session.session_set($1, $2) AS ok', ['not-a-key', 'x'])).rows[0]?.ok, false);
      assert.equal((await app.query(`SELECT session.session_get(session.session_generate(0, 'x'))`)).rowCount, 0);
      await app.query('SELECT session.session_clear($1)', [key]);
      assert.equal((await app.query('SELECT value FROM session.session_get($1)', [key])).rowCount, 0);
      assert.equal((await app.query('SELECT session.session_touch($1) AS ok', [key])).rows[0]?.ok, false);
      await ops.query(`SET search_path = evil, pg_catalog, public`);
      await ops.query('SELECT session.session_purge()');
      assert.deepEqual((await app.query('SELECT fn FROM evil.calls')).rows, []);
    } finally {
      await app.query('RESET search_path');
      await ops.query('RESET search_path');
    }
  });
});
