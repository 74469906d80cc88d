// Privilege attacks beyond security.test.ts: a login role in session_client tries every other door
// to the tables, the functions, the owner's rights and the server. Every attempt must fail, and the
// stored sessions must come through unchanged.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { adminQuery, freshDatabase, sqlState, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let app: pg.Client;
let appRole = '';
let victim = '';
let tried = 0;

before(async () => {
  db = await freshDatabase('privileges');
  app = new pg.Client({ connectionString: await db.clientRole() });
  await app.connect();
  appRole = String((await app.query('SELECT current_user AS u')).rows[0]?.u);
  victim = String((await app.query(`SELECT session.session_generate(3600, 'victim') AS k`)).rows[0]?.k);
});
after(async () => {
  await app.end();
  await db.drop();
});

/** Rows, settings and the shape of the schema: what an attack could change. */
async function state(): Promise<unknown> {
  return (
    await db.query(`
    SELECT (SELECT json_agg(json_build_array(digest, value, expires_at) ORDER BY digest) FROM session.sessions) AS rows,
           (SELECT row_to_json(c) FROM session.config c) AS config,
           (SELECT json_agg(json_build_array(p.proname, p.prosecdef, p.proconfig, p.proowner::regrole, p.proacl, md5(p.prosrc)) ORDER BY p.oid)
              FROM pg_proc p WHERE p.pronamespace = 'session'::regnamespace) AS functions,
           (SELECT json_agg(json_build_array(c.relname, c.relowner::regrole, c.relacl, c.relfilenode, c.relhastriggers, c.relhasrules, c.relrowsecurity) ORDER BY c.oid)
              FROM pg_class c WHERE c.relnamespace = 'session'::regnamespace) AS relations,
           (SELECT json_build_array(n.nspname, n.nspowner::regrole, n.nspacl) FROM pg_namespace n WHERE n.nspname = 'session') AS schema,
           (SELECT json_agg(json_build_array(r.rolname, r.rolcanlogin, r.rolsuper) ORDER BY r.rolname)
              FROM pg_roles r WHERE r.rolname IN ('session_client', current_user)) AS roles`)
  ).rows[0];
}

/** Each statement must fail with 42501 and leave everything as it was. */
async function refused(statements: string[]): Promise<void> {
  const before = await state();
  for (const sql of statements) {
    assert.equal(await sqlState(app.query(sql)), '42501', sql);
    tried += 1;
  }
  assert.deepEqual(await state(), before);
  const r = await app.query('SELECT value FROM session.session_get($1)', [victim]);
  assert.equal(r.rows[0]?.value, 'victim');
}

describe('a login role in session_client cannot', () => {
  test('truncate, lock, index, trigger, rule, policy, publish or comment on the tables', async () => {
    await refused([
      'TRUNCATE session.sessions CASCADE',
      'TRUNCATE ONLY session.sessions, session.config RESTART IDENTITY',
      'DO $$ BEGIN LOCK TABLE session.sessions IN ACCESS EXCLUSIVE MODE; END $$',
      'CREATE INDEX ON session.sessions (value)',
      `CREATE TRIGGER t AFTER UPDATE ON session.sessions FOR EACH ROW EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()`,
      `CREATE RULE leak AS ON UPDATE TO session.sessions DO ALSO NOTIFY leak`,
      `CREATE POLICY p ON session.sessions USING (true)`,
      `CREATE PUBLICATION leak FOR TABLE session.sessions`,
      `COMMENT ON TABLE session.sessions IS 'mine'`,
      'REINDEX TABLE session.sessions',
      'CLUSTER session.sessions USING sessions_pkey',
      `SELECT pg_catalog.pg_relation_filepath('session.sessions') IS NOT NULL AND pg_catalog.pg_read_binary_file(pg_catalog.pg_relation_filepath('session.sessions')) IS NOT NULL`,
    ]);
  });

  test('alter the tables or the schema through other paths', async () => {
    await refused([
      'ALTER TABLE session.sessions RENAME TO mine',
      'ALTER TABLE session.sessions RENAME COLUMN value TO v',
      `ALTER TABLE session.sessions OWNER TO ${'CURRENT_USER'}`,
      'ALTER TABLE session.sessions ENABLE ROW LEVEL SECURITY',
      'ALTER TABLE session.sessions SET (fillfactor = 10)',
      'ALTER TABLE session.config DROP CONSTRAINT config_singleton_check',
      'ALTER TABLE session.sessions ALTER COLUMN expires_at DROP NOT NULL',
      'ALTER SCHEMA session RENAME TO mine',
      'ALTER SCHEMA session OWNER TO CURRENT_USER',
      'DROP SCHEMA session CASCADE',
      'DROP TABLE session.purge_state',
      `GRANT SELECT ON session.sessions TO CURRENT_USER`,
      `GRANT EXECUTE ON FUNCTION session.key_digest(text) TO PUBLIC`,
    ]);
  });

  test('alter, rename, re-own or re-grant the functions, public or private', async () => {
    await refused([
      'ALTER FUNCTION session.session_get(text) SET search_path = public',
      'ALTER FUNCTION session.session_set(text, text, bigint, bigint) RENAME TO mine',
      'ALTER FUNCTION session.session_clear(text) OWNER TO CURRENT_USER',
      'ALTER FUNCTION session.key_digest(text) STABLE LEAKPROOF',
      `COMMENT ON FUNCTION session.session_purge(integer) IS 'mine'`,
      'DROP FUNCTION session.expiry_at(text, bigint, timestamptz)',
      `CREATE OR REPLACE FUNCTION session.key_digest(key text) RETURNS bytea LANGUAGE sql AS $$ SELECT '\\x00'::bytea $$`,
      `CREATE FUNCTION session.session_get(key text, extra int) RETURNS int LANGUAGE sql AS 'SELECT 1'`,
      `CREATE OPERATOR session.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = pg_catalog.byteaeq)`,
      `CREATE VIEW session.leak AS SELECT 1`,
      `SELECT session.key_digest(key => 'k')`,
      `SELECT * FROM session.expiry_at(value => 'v', expiry => 1, at => now())`,
    ]);
  });

  test('re-grant what it has: without the grant option GRANT and REVOKE only warn, and change nothing', async () => {
    const before = await state();
    for (const sql of [
      `GRANT CREATE ON SCHEMA session TO ${appRole}`,
      `GRANT EXECUTE ON FUNCTION session.session_get(text) TO PUBLIC`,
      `REVOKE EXECUTE ON FUNCTION session.session_get(text) FROM session_client`,
      `REVOKE USAGE ON SCHEMA session FROM session_client`,
    ]) {
      await app.query(sql); // PostgreSQL warns "no privileges were granted/revoked"
      tried += 1;
    }
    assert.deepEqual(await state(), before);
    assert.equal(await sqlState(app.query(`SELECT session.key_digest('k')`)), '42501');
    assert.equal(await sqlState(app.query('SELECT * FROM session.sessions')), '42501');
  });

  test('become the owner, a superuser, or hand out session_client', async () => {
    const owner = String(
      (await db.query(`SELECT nspowner::regrole::text AS o FROM pg_namespace WHERE nspname = 'session'`)).rows[0]?.o,
    );
    await refused([
      `SET ROLE ${owner}`,
      `SET SESSION AUTHORIZATION ${owner}`,
      'SET ROLE pg_read_all_data',
      'SET ROLE pg_write_all_data',
      `ALTER ROLE ${appRole} SUPERUSER`,
      `ALTER ROLE ${appRole} BYPASSRLS`,
      'ALTER ROLE session_client LOGIN',
      `ALTER ROLE session_client PASSWORD 'x'`,
      'GRANT session_client TO pg_monitor',
      `GRANT ${owner} TO ${appRole}`,
      'CREATE ROLE impostor',
      'SET session_replication_role = replica',
    ]);
    // session_client itself (SET ROLE to it is allowed: the app is a member) reads no table either.
    await app.query('SET ROLE session_client');
    try {
      assert.equal(await sqlState(app.query('SELECT * FROM session.sessions')), '42501');
      tried += 1;
    } finally {
      await app.query('RESET ROLE');
    }
  });

  test('reach the server: files, programs, large objects, extensions, settings, other backends', async () => {
    const owner = new pg.Client({ connectionString: db.url, application_name: 'owner-victim' });
    await owner.connect();
    try {
      const ownerPid = Number((await owner.query('SELECT pg_backend_pid() AS p')).rows[0]?.p);
      await refused([
        `SELECT pg_read_file('postgresql.conf')`,
        `SELECT pg_read_binary_file('global/pg_control')`,
        `SELECT pg_ls_dir('.')`,
        `SELECT pg_stat_file('postgresql.conf')`,
        `SELECT lo_import('/etc/passwd')`,
        `COPY (SELECT 1) TO '/tmp/session-pg-leak'`,
        `COPY (SELECT 1) TO PROGRAM 'id'`,
        `ALTER SYSTEM SET log_statement = 'all'`,
        `SELECT pg_reload_conf()`,
        'CREATE EXTENSION file_fdw',
        'CREATE EXTENSION dblink',
        `CREATE EVENT TRIGGER grab ON ddl_command_start EXECUTE FUNCTION pg_catalog.pg_event_trigger_ddl_commands()`,
        `SELECT pg_terminate_backend(${ownerPid})`,
        `SELECT pg_cancel_backend(${ownerPid})`,
        `SET log_parameter_max_length = -1`,
      ]);
      assert.equal((await owner.query('SELECT 1 AS one')).rows[0]?.one, 1, 'the owner connection survived');
    } finally {
      await owner.end();
    }
  });
});

describe('a login role in session_client sees nothing through the catalog', () => {
  test('no statistics, no owner query text, no relation contents', async () => {
    await db.query('ANALYZE session.sessions');
    assert.equal((await db.query(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'session'`)).rows[0]?.n > 0, true);
    // pg_stats would show most_common_vals (digests, values) to anyone with column privileges.
    assert.equal((await app.query(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'session'`)).rows[0]?.n, 0);
    assert.equal(await sqlState(app.query(`SELECT stavalues1 FROM pg_statistic`)), '42501');
    const owner = new pg.Client({ connectionString: db.url });
    await owner.connect();
    try {
      const pid = Number((await owner.query(`SELECT pg_backend_pid() AS p, 'a query the app must not read'`)).rows[0]?.p);
      const seen = (await app.query('SELECT query, state FROM pg_stat_activity WHERE pid = $1', [pid])).rows;
      assert.deepEqual(seen, [{ query: '<insufficient privilege>', state: null }]);
    } finally {
      await owner.end();
    }
    tried += 3;
  });

  test('VACUUM FULL and ANALYZE by the app are skipped with a warning: the table is not rewritten', async () => {
    const file = async () =>
      (await db.query(`SELECT relfilenode FROM pg_class WHERE oid = 'session.sessions'::regclass`)).rows[0]?.relfilenode;
    const before = await file();
    const warnings: string[] = [];
    const onNotice = (n: { message?: string | undefined }) => {
      warnings.push(String(n.message));
    };
    app.on('notice', onNotice);
    try {
      await app.query('VACUUM FULL session.sessions');
      await app.query('ANALYZE session.sessions');
    } finally {
      app.off('notice', onNotice);
    }
    assert.equal(await file(), before);
    assert.equal(warnings.length, 2, warnings.join('; '));
    tried += 2;
  });
});

describe('temporary objects cannot hijack the API', () => {
  test('pg_temp tables and functions named like the API uses are never used', async () => {
    await app.query(`CREATE TEMP TABLE sessions (expires_at timestamptz, digest bytea, value text)`);
    await app.query(`CREATE TEMP TABLE config (singleton boolean, default_period bigint, max_value_bytes integer)`);
    await app.query(`INSERT INTO pg_temp.config VALUES (true, 1, 1)`);
    await app.query(`CREATE FUNCTION pg_temp.sha256(bytea) RETURNS bytea LANGUAGE sql AS $$ SELECT '\\x00'::bytea $$`);
    await app.query(`CREATE FUNCTION pg_temp.key_digest(text) RETURNS bytea LANGUAGE sql AS $$ SELECT '\\x00'::bytea $$`);
    await app.query('SET search_path = pg_temp, public');
    try {
      const key = String((await app.query(`SELECT session.session_generate(NULL, 'real') AS k`)).rows[0]?.k);
      const r = await app.query('SELECT value, period FROM session.session_get($1)', [key]);
      assert.equal(r.rows[0]?.value, 'real');
      assert.ok(Number(r.rows[0]?.period) > 604000, 'the default period came from session.config');
      assert.equal((await app.query('SELECT count(*)::int AS n FROM pg_temp.sessions')).rows[0]?.n, 0);
      assert.equal((await app.query('SELECT value FROM session.session_get($1)', [victim])).rows[0]?.value, 'victim');
    } finally {
      await app.query('RESET search_path');
    }
    tried += 1;
  });

  test('figures', (t) => {
    assert.ok(tried >= 70, `only ${tried} attempts`);
    const line = `privilege attacks: ${tried} attempts by a session_client login role, refused (42501) or ignored with a warning, 0 sessions changed`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });
});

// The owner role's own connection is used above only to observe; make sure the test database's
// template settings did not grant PUBLIC anything on the schema in the meantime.
test('PUBLIC still has no privilege on the schema objects', async () => {
  const r = await adminQuery<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                                             WHERE c.relnamespace = 'session'::regnamespace AND a.grantee = 0`,
    [],
    db.url,
  );
  assert.equal(r.rows[0]?.n, 0);
});
