// The import reads a table that the application's role owns, as the owner of schema session: the
// table's owner must not get its own code run with the importer's rights. Set up as
// docs/operations.md recommends: a non-superuser owner with CREATEROLE migrates (and so may grant
// roles), the app role owns connect-pg-simple's table and plants a function that, if it ever ran as
// the importer, would plant a session of its choosing and grant itself the admin role.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/admin-index.js';
import { importConnectPgSimple } from '../src/import.js';
import { adminQuery, adminUrl, cli, errorCode, freshDatabase, psql, uniqueName, type TestDatabase } from './helpers.js';
import { databaseUrl } from './harness/urls.js';

let db: TestDatabase;
const roles = { owner: uniqueName('owner'), app: uniqueName('app'), client: uniqueName('client'), admin: uniqueName('admin') };
const password = randomBytes(12).toString('hex');
let ownerUrl: string;
let app: pg.Client;
// The key the app's function would plant, and the value that would make it an administrator.
const plantedKey = randomBytes(32).toString('base64url');
const sids = Array.from({ length: 3 }, () => randomBytes(24).toString('base64url'));

before(async () => {
  db = await freshDatabase('import_hostile', { empty: true });
  await adminQuery(`CREATE ROLE ${roles.owner} LOGIN PASSWORD '${password}' CREATEROLE`);
  await adminQuery(`CREATE ROLE ${roles.app} LOGIN PASSWORD '${password}'`);
  await db.query(`ALTER DATABASE ${db.name} OWNER TO ${roles.owner}`);
  ownerUrl = databaseUrl(adminUrl, db.name, { user: roles.owner, password });
  await migrate({ connectionString: ownerUrl, clientRole: roles.client, adminRole: roles.admin });
  await adminQuery(`GRANT ${roles.client} TO ${roles.app}`, [], ownerUrl);
  // connect-pg-simple's table, created by the app as connect-pg-simple does, in the app's schema.
  await db.query(`CREATE SCHEMA cps AUTHORIZATION ${roles.app}`);
  app = new pg.Client({ connectionString: databaseUrl(adminUrl, db.name, { user: roles.app, password }) });
  await app.connect();
  await app.query(`
    CREATE TABLE cps.session (sid varchar NOT NULL COLLATE "default" PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL);
    INSERT INTO cps.session SELECT s, '{"cookie":{},"user":"someone"}', localtimestamp + interval '1 hour' FROM unnest($$${`{${sids.join(',')}}`}$$::text[]) s;
    -- Where the planted function records that it ran, and as whom.
    CREATE TABLE cps.ran (who name, at timestamptz DEFAULT now());
    GRANT INSERT ON cps.ran TO PUBLIC;
    CREATE FUNCTION cps.plant() RETURNS boolean LANGUAGE plpgsql AS $f$
    BEGIN
      INSERT INTO cps.ran (who) VALUES (current_user);
      BEGIN
        INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at)
        VALUES (sha256(convert_to('${plantedKey}', 'UTF8')), now() + interval '1 day', '{"userId":"admin","isAdmin":true}', now(), now())
        ON CONFLICT DO NOTHING;
      EXCEPTION WHEN OTHERS THEN NULL;
      END;
      BEGIN
        EXECUTE 'GRANT ${roles.admin} TO ${roles.app}';
      EXCEPTION WHEN OTHERS THEN NULL;
      END;
      RETURN true;
    END $f$;
    GRANT USAGE ON SCHEMA cps TO ${roles.owner};
    GRANT SELECT ON cps.session TO ${roles.owner};`);
});
after(async () => {
  await app?.end();
  await db.drop();
  for (const r of [roles.app, roles.client, roles.admin, roles.owner]) await adminQuery(`DROP ROLE IF EXISTS ${r}`);
});

/** Whether the app's function ran as another role than the app, planted its session, or got the app the admin role. */
async function damage(): Promise<{ ran: number; planted: boolean; admin: boolean }> {
  const r = await db.query<{ ran: number; planted: boolean; admin: boolean }>(
    `SELECT (SELECT count(*)::int FROM cps.ran WHERE who <> $2) AS ran,
            EXISTS (SELECT FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))) AS planted,
            pg_has_role($2, $3, 'MEMBER') AS admin`,
    [plantedKey, roles.app, roles.admin],
  );
  return r.rows[0] ?? { ran: -1, planted: true, admin: true };
}
const none = { ran: 0, planted: false, admin: false };

/** The import of cps.<table> as the owner fails with this message and nothing of the app's ran. */
async function refused(table: string, message: RegExp): Promise<void> {
  const r = cli(['import', 'connect-pg-simple', '--schema', 'cps', '--table', table, '--database-url', ownerUrl]);
  assert.deepEqual(await damage(), none, `${table}: the app's function ran as the owner`);
  assert.equal(r.status, 1, `${table}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, message);
  const n = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM session.sessions');
  assert.equal(n.rows[0]?.n, 0, `${table}: nothing is imported`);
}

test("a row-level security policy calling the app's function: refused, the function never runs", async () => {
  await app.query(`ALTER TABLE cps.session ENABLE ROW LEVEL SECURITY;
                   CREATE POLICY everyone ON cps.session USING (cps.plant())`);
  await refused(
    'session',
    /session-pg: permission_denied: table "cps"\."session" has row-level security, .*ALTER TABLE "cps"\."session" DISABLE ROW LEVEL SECURITY/,
  );
  // FORCE makes the policy apply to the table's owner too; still nothing runs as the importer.
  await app.query('ALTER TABLE cps.session FORCE ROW LEVEL SECURITY');
  await refused('session', /row-level security/);
  await app.query('ALTER TABLE cps.session NO FORCE ROW LEVEL SECURITY; ALTER TABLE cps.session DISABLE ROW LEVEL SECURITY');
});

test('a view, a materialized view, a partitioned table, a domain column: refused, saying why', async () => {
  await app.query(`
    CREATE VIEW cps.session_view AS SELECT sid, sess, expire FROM cps.session WHERE cps.plant();
    CREATE MATERIALIZED VIEW cps.session_mat AS SELECT sid, sess, expire FROM cps.session;
    CREATE UNIQUE INDEX ON cps.session_mat (sid);
    CREATE TABLE cps.session_parts (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp NOT NULL) PARTITION BY RANGE (sid);
    CREATE TABLE cps.session_part PARTITION OF cps.session_parts FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
    INSERT INTO cps.session_parts SELECT * FROM cps.session;
    CREATE DOMAIN cps.json_d AS json CHECK (cps.plant());
    CREATE TABLE cps.session_domain (sid varchar PRIMARY KEY, sess cps.json_d NOT NULL, expire timestamp NOT NULL);
    GRANT SELECT ON ALL TABLES IN SCHEMA cps TO ${roles.owner};`);
  await app.query('DELETE FROM cps.ran');
  await refused(
    'session_view',
    /table "cps"\."session_view" is a view, not a plain table: .*run no code of the table's owner.*copy its rows into a plain table/,
  );
  await refused('session_mat', /is a materialized view, not a plain table/);
  await refused('session_parts', /is a partitioned table, not a plain table/);
  await refused('session_domain', /wrong type: sess is cps\.json_d/);
});

test('the plain table the app owns imports, children of it are not read', async () => {
  // An inheritance child's rows are not the table's: read ONLY the table.
  await app.query(`CREATE TABLE cps.session_child () INHERITS (cps.session);
                   INSERT INTO cps.session_child VALUES ('${randomBytes(24).toString('base64url')}', '{"cookie":{}}', localtimestamp + interval '1 hour')`);
  const done = await importConnectPgSimple({ connectionString: ownerUrl, schema: 'cps', table: 'session' });
  assert.equal(done.live, 3);
  assert.equal(done.imported, 3);
  assert.equal(done.scanned, 3);
  assert.deepEqual(await damage(), none);
  const got = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM session.sessions WHERE digest IN (SELECT sha256(convert_to(sid, 'UTF8')) FROM ONLY cps.session)`,
  );
  assert.equal(got.rows[0]?.n, 3);
});

test('the table changed between two batches: the next batch checks again and refuses', async () => {
  await app.query(`CREATE TABLE cps.session_later (LIKE cps.session INCLUDING ALL);
                   INSERT INTO cps.session_later SELECT * FROM cps.session;
                   CREATE POLICY everyone ON cps.session_later USING (cps.plant());
                   GRANT SELECT ON cps.session_later TO ${roles.owner};`);
  await db.query('DELETE FROM session.sessions');
  const appUrl = databaseUrl(adminUrl, db.name, { user: roles.app, password });
  let batches = 0;
  const code = await errorCode(
    importConnectPgSimple({ connectionString: ownerUrl, schema: 'cps', table: 'session_later', batchSize: 1 }, () => {
      batches += 1;
      // Between the first batch and the second, while the importer waits (psql runs synchronously).
      if (batches === 1) psql(appUrl, 'ALTER TABLE cps.session_later ENABLE ROW LEVEL SECURITY');
    }),
  );
  assert.equal(code, 'permission_denied');
  assert.equal(batches, 1);
  assert.deepEqual(await damage(), none);
});

test("an index or statistics expression calling the app's function (planning folds immutable calls): refused", async () => {
  await app.query(`
    CREATE FUNCTION cps.plant_folded(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN cps.plant(); END $f$;
    CREATE TABLE cps.session_partial (LIKE cps.session INCLUDING ALL);
    CREATE INDEX ON cps.session_partial (expire) WHERE cps.plant_folded('x');
    CREATE TABLE cps.session_expr (LIKE cps.session INCLUDING ALL);
    CREATE INDEX ON cps.session_expr (cps.plant_folded('x'));
    CREATE TABLE cps.session_stats (LIKE cps.session INCLUDING ALL);
    CREATE STATISTICS cps.folded ON (cps.plant_folded('x')), (expire) FROM cps.session_stats;
    GRANT SELECT ON ALL TABLES IN SCHEMA cps TO ${roles.owner};`);
  await app.query('DELETE FROM cps.ran');
  await db.query('DELETE FROM session.sessions');
  await refused('session_partial', /has an index or statistics object with an expression or a predicate/);
  await refused('session_expr', /has an index or statistics object with an expression or a predicate/);
  await refused('session_stats', /has an index or statistics object with an expression or a predicate/);
  // constraint_exclusion = on (which the database's owner could set for every role) would fold
  // a CHECK constraint's calls while planning too: the import sets it back to its default.
  await app.query(`CREATE TABLE cps.session_checked (LIKE cps.session INCLUDING ALL, CHECK (cps.plant_folded('x')) NOT VALID);
                   INSERT INTO cps.session_checked SELECT * FROM ONLY cps.session;
                   GRANT SELECT ON cps.session_checked TO ${roles.owner};`);
  await db.query(`ALTER ROLE ${roles.owner} SET constraint_exclusion = on`);
  try {
    const done = await importConnectPgSimple({ connectionString: ownerUrl, schema: 'cps', table: 'session_checked' });
    assert.equal(done.imported, 3);
    assert.deepEqual(await damage(), none);
  } finally {
    await db.query(`ALTER ROLE ${roles.owner} RESET constraint_exclusion`);
    await db.query('DELETE FROM session.sessions');
  }

  // Made between two batches (CREATE INDEX does not wait for the import's lock): the next batch refuses.
  await app.query(`CREATE TABLE cps.session_indexed_later (LIKE cps.session INCLUDING ALL);
                   INSERT INTO cps.session_indexed_later SELECT * FROM cps.session;
                   GRANT SELECT ON cps.session_indexed_later TO ${roles.owner};`);
  const appUrl = databaseUrl(adminUrl, db.name, { user: roles.app, password });
  let batches = 0;
  const code = await errorCode(
    importConnectPgSimple({ connectionString: ownerUrl, schema: 'cps', table: 'session_indexed_later', batchSize: 1 }, () => {
      batches += 1;
      if (batches === 1) psql(appUrl, `CREATE INDEX ON cps.session_indexed_later (expire) WHERE cps.plant_folded('x')`);
    }),
  );
  assert.equal(code, 'database');
  assert.equal(batches, 1);
  assert.deepEqual(await damage(), none);
});
