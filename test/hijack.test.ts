// A role with only CREATE on the database plants look-alikes of every function and operator the
// migrations call (format with a `name` argument beats pg_catalog's variadic format, and so on) in
// the migrating role's "$user" schema and in public. Then the migrations run up, down and up, by
// the Node path and by psql, as a superuser and as a database owner without superuser: nothing
// planted may run, and no role's rights may change.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/admin-index.js';
import { databaseUrl } from './harness/urls.js';
import { adminQuery, adminUrl, missingTool, pgTool, uniqueName } from './helpers.js';

const sqlDir = fileURLToPath(new URL('../../sql/', import.meta.url));

/** [name, argument types, result type] of each planted function. */
const functions: [string, string, string][] = [
  ['format', 'text', 'text'],
  ['format', 'text, text', 'text'],
  ['format', 'text, name', 'text'],
  ['format', 'text, text, text', 'text'],
  ['format', 'text, text, name', 'text'],
  ['format', 'text, name, name', 'text'],
  ['format', 'text, text, text, name', 'text'],
  ['format', 'text, text, text, text, name', 'text'],
  ['format', 'text, name, text, text, name', 'text'],
  ['format', 'text, text, text, text, text', 'text'],
  ['current_setting', 'text', 'text'],
  ['current_setting', 'text, boolean', 'text'],
  ['current_database', '', 'name'],
  ['quote_literal', 'text', 'text'],
  ['quote_ident', 'text', 'text'],
  ['set_config', 'text, text, boolean', 'text'],
  ['pg_advisory_xact_lock', 'bigint', 'void'],
  ['pg_advisory_lock', 'bigint', 'void'],
  ['to_regclass', 'text', 'regclass'],
  ['to_regprocedure', 'text', 'regprocedure'],
  ['now', '', 'timestamptz'],
  ['clock_timestamp', '', 'timestamptz'],
  ['octet_length', 'text', 'integer'],
  ['sha256', 'bytea', 'bytea'],
  ['convert_to', 'text, name', 'bytea'],
  ['make_interval', 'integer', 'interval'],
  ['pg_relation_size', 'regclass', 'bigint'],
  ['least', 'timestamptz, timestamptz', 'timestamptz'],
  ['nullif', 'text, text', 'text'],
  ['upper', 'text', 'text'],
  ['lower', 'text', 'text'],
];
/** [operator, left type, right type] of each planted operator. */
const operators: [string, string, string][] = [
  ['||', 'text', 'text'],
  ['||', 'text', 'name'],
  ['||', 'name', 'text'],
  ['=', 'text', 'text'],
  ['=', 'name', 'text'],
  ['=', 'text', 'name'],
  ['=', 'name', 'name'],
  ['<>', 'text', 'name'],
  ['<>', 'name', 'text'],
  ['<>', 'text', 'text'],
  ['~', 'text', 'text'],
  ['!~', 'text', 'text'],
  ['~~', 'text', 'text'],
  ['<', 'bigint', 'integer'],
  ['>=', 'bigint', 'bigint'],
];

interface Attacker {
  role: string;
  /** What the planted code recorded, oldest first. */
  calls(): Promise<string[]>;
}

/** Plants everything in `schemas` (created by the attacker if missing) of database `db`. */
async function plant(dbUrl: string, role: string, schemas: string[]): Promise<Attacker> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    await c.query(`CREATE SCHEMA ${role}_log`);
    await c.query(`CREATE TABLE ${role}_log.calls (n serial, what text)`);
    await c.query(`GRANT USAGE ON SCHEMA ${role}_log TO PUBLIC; GRANT INSERT ON ${role}_log.calls TO PUBLIC;
                   GRANT USAGE ON SEQUENCE ${role}_log.calls_n_seq TO PUBLIC`);
    // The payload a real attacker would run; it records itself first, so a failure to escalate
    // (the migrating role is no superuser) is still seen.
    const body = (what: string, result: string) => `BEGIN
        INSERT INTO ${role}_log.calls (what) VALUES (${pg.escapeLiteral(what)});
        BEGIN EXECUTE 'ALTER ROLE ${role} SUPERUSER CREATEROLE'; EXCEPTION WHEN OTHERS THEN NULL; END;
        RETURN${result === 'void' ? '' : ' NULL'};
      END`;
    for (const schema of schemas) {
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
      const s = pg.escapeIdentifier(schema);
      // "$user" only counts when the role may use the schema: the attacker sees to it.
      await c.query(`GRANT USAGE ON SCHEMA ${s} TO PUBLIC`);
      for (const [name, args, result] of functions) {
        await c.query(
          `CREATE FUNCTION ${s}.${name}(${args}) RETURNS ${result} LANGUAGE plpgsql AS $$${body(`${schema}.${name}(${args})`, result)}$$`,
        );
      }
      for (const [[op, left, right], i] of operators.map((o, i) => [o, i] as const)) {
        const fn = `${s}.op_${i}`;
        await c.query(
          `CREATE FUNCTION ${fn}(${left}, ${right}) RETURNS ${op === '||' ? 'text' : 'boolean'} LANGUAGE plpgsql AS $$${body(`${schema}.${left} ${op} ${right}`, 'boolean')}$$`,
        );
        await c.query(`CREATE OPERATOR ${s}.${op} (LEFTARG = ${left}, RIGHTARG = ${right}, FUNCTION = ${fn})`);
      }
    }
  } finally {
    await c.end();
  }
  return {
    role,
    calls: async () =>
      (await adminQuery<{ what: string }>(`SELECT what FROM ${role}_log.calls ORDER BY n`, [], dbUrl)).rows.map((r) => r.what),
  };
}

/** Every role's attributes and memberships: nothing a migration run may change. */
const rights = async () =>
  (
    await adminQuery(`
  SELECT (SELECT json_agg(r ORDER BY r.rolname) FROM (SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication,
                 rolbypassrls, rolinherit, rolcanlogin FROM pg_roles) r) AS roles,
         (SELECT json_agg(m ORDER BY m.roleid, m.member) FROM (SELECT roleid::regrole::text AS roleid, member::regrole::text AS member,
                 admin_option FROM pg_auth_members) m) AS members`)
  ).rows[0];

const psqlAs = (url: string, file: string) =>
  pgTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', `${sqlDir}${file}`]);

describe('planted look-alikes never run during migrations', { timeout: 180_000 }, () => {
  const attacker = uniqueName('mallory');
  const owner = uniqueName('dbowner');
  const cleanup: string[] = [];
  before(async () => {
    await adminQuery(`CREATE ROLE ${attacker} LOGIN PASSWORD 'pw'`);
    await adminQuery(`CREATE ROLE ${owner} LOGIN PASSWORD 'pw'`);
  });
  after(async () => {
    for (const name of cleanup) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await adminQuery(`DROP ROLE IF EXISTS ${attacker}`);
    await adminQuery(`DROP ROLE IF EXISTS ${owner}`);
  });

  for (const as of ['superuser', 'owner'] as const) {
    test(`as the ${as}: node-pg-migrate and psql, install, uninstall, install`, async (t) => {
      const name = uniqueName(`hijack_${as}`);
      cleanup.push(name);
      await adminQuery(`CREATE DATABASE ${name}${as === 'owner' ? ` OWNER ${owner}` : ''}`);
      const superUrl = databaseUrl(adminUrl, name);
      const url = as === 'owner' ? databaseUrl(adminUrl, name, { user: owner, password: 'pw' }) : superUrl;
      const migrator = as === 'owner' ? owner : String((await adminQuery<{ u: string }>('SELECT current_user AS u')).rows[0]?.u);
      // CREATE on the database lets the attacker make a schema named after the migrating role, which
      // is first in its default search_path ("$user", public); public is writable where granted.
      await adminQuery(
        `GRANT CREATE ON DATABASE ${name} TO ${attacker}; GRANT CREATE ON SCHEMA public TO ${attacker}`,
        [],
        superUrl,
      );
      const mallory = await plant(databaseUrl(adminUrl, name, { user: attacker, password: 'pw' }), attacker, [
        migrator,
        'public',
      ]);

      // The plants work: an unpinned call as 001 makes it runs the attacker's code.
      await adminQuery(`DO $$ BEGIN PERFORM format('%s %s %s', 'a', 'b', current_database()); END $$`, [], url);
      assert.deepEqual(await mallory.calls(), [`${migrator}.format(text, text, text, name)`]);
      await adminQuery(`TRUNCATE ${attacker}_log.calls`, [], superUrl);
      await adminQuery(`ALTER ROLE ${attacker} NOSUPERUSER NOCREATEROLE`);

      const before = await rights();
      await migrate({ connectionString: url, log: false });
      await migrate({ connectionString: url, log: false });
      assert.deepEqual(await mallory.calls(), [], 'node-pg-migrate path');

      const noPsql = missingTool('psql');
      if (noPsql) t.diagnostic(`the psql path is not checked: ${noPsql}`);
      else {
        psqlAs(url, 'uninstall.sql');
        psqlAs(url, 'install.sql');
        psqlAs(url, 'install.sql');
      }
      assert.deepEqual(await mallory.calls(), [], 'psql path');
      assert.deepEqual(await rights(), before);
      const installed = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM public.session_migrations`, [], superUrl);
      assert.ok((installed.rows[0]?.n ?? 0) >= 1);
      t.diagnostic(
        `${functions.length} functions and ${operators.length} operators planted in schemas ${migrator} and public; ` +
          'migrate, uninstall.sql and install.sql ran none of them; no role changed',
      );
    });
  }
});
