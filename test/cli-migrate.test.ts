// session-pg migrate / status as a DBA meets them: permission errors in one line, a database that a
// newer version migrated, no node-pg-migrate banner, one schedule instruction, a silent migrate().
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { noticeLines } from '../src/migrate.js';
import { databaseUrl } from './harness/urls.js';
import { adminQuery, adminUrl, cli, cronDatabase, freshDatabase, psql, shippedMigrations, uniqueName } from './helpers.js';

const shipped = shippedMigrations();
const migrateModule = new URL('../src/migrate.js', import.meta.url).href;

/** stderr is exactly one line: the error, with its SQLSTATE, and no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n');
  assert.equal(lines.length, 2, stderr);
  assert.equal(lines[1], '');
  assert.doesNotMatch(stderr, /\bat .*\.js:\d+|node_modules/);
  return lines[0] ?? '';
}

test('permission errors during migrate: permission_denied, SQLSTATE and hint in one line, nothing applied', async () => {
  const db = await freshDatabase('cliperm', { empty: true });
  const role = uniqueName('mig');
  await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
  const url = databaseUrl(db.url, db.name, { user: role, password: 'pw' });
  try {
    // No CREATE on schema public for other roles, so not even the migrations table: the default
    // since PostgreSQL 15; before it, PUBLIC had CREATE there, and this REVOKE is what 15 does.
    await db.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
    let r = cli(['migrate', '--database-url', url]);
    assert.equal(r.status, 1);
    assert.equal(
      oneLine(r.stderr),
      `session-pg: permission_denied: role ${role} may not create public.session_migrations ` +
        `(no CREATE on schema public): migrate as the database owner, or have it run GRANT CREATE ON SCHEMA public TO ${role} (SQLSTATE 42501)`,
    );
    assert.equal(r.stdout, '');

    // With the table allowed, the first migration's CREATE SCHEMA is refused by PostgreSQL itself.
    await db.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
    r = cli(['migrate', '--database-url', url]);
    assert.equal(r.status, 1);
    assert.match(
      oneLine(r.stderr),
      new RegExp(`^session-pg: permission_denied: permission denied for database ${db.name} \\(SQLSTATE 42501\\)$`),
    );
    assert.equal(psql(db.url, `SELECT count(*) FROM pg_namespace WHERE nspname = 'session'`), '0');
    assert.equal(psql(db.url, 'SELECT count(*) FROM public.session_migrations'), '0');
  } finally {
    await db.drop();
    await adminQuery(`DROP ROLE ${role}`);
  }
});

test('a database migrated by a newer version: status reports it, migrate refuses and changes nothing', async () => {
  const db = await freshDatabase('clinewer');
  try {
    await db.query(`INSERT INTO public.session_migrations (name, run_on) VALUES ('999_from_the_future', now())`);
    const before = psql(db.url, "SELECT string_agg(name, ',' ORDER BY id) FROM public.session_migrations");

    const status = cli(['status', '--database-url', db.url]);
    assert.equal(status.status, 0, status.stderr);
    assert.match(
      status.stdout,
      new RegExp(
        `^applied {2}${shipped.at(-1)} {2}\\S+\\napplied {2}999_from_the_future {2}\\S+ {2}newer than this package\\npurge job {10}\\S`,
        'm',
      ),
    );
    assert.match(
      oneLine(status.stderr),
      /^session-pg: warning: a newer version of session-postgresql migrated this database \(999_from_the_future\)/,
    );

    for (const args of [['migrate'], ['migrate', '--count', '1']]) {
      const r = cli([...args, '--database-url', db.url]);
      assert.equal(r.status, 1, args.join(' '));
      assert.equal(
        oneLine(r.stderr),
        'session-pg: newer_schema: the database has migrations newer than this package (999_from_the_future): ' +
          'nothing was changed; upgrade session-postgresql to migrate it',
      );
      assert.equal(r.stdout, '');
    }
    assert.equal(psql(db.url, "SELECT string_agg(name, ',' ORDER BY id) FROM public.session_migrations"), before);
    assert.equal(psql(db.url, `SELECT to_regprocedure('session.session_touch(text, bigint)') IS NOT NULL`), 't');
  } finally {
    await db.drop();
  }
});

test('migrate prints no node-pg-migrate banner, and migrate() from TypeScript logs nothing unless asked', async (t) => {
  const db = await freshDatabase('clibanner', { empty: true });
  try {
    const r = cli(['migrate', '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `Applied: ${shipped.join(', ')}\n`);
    assert.doesNotMatch(r.stderr, /Migrating files|### MIGRATION|No migrations to run|^> /m);
    // Every line printed is a server notice (or its hint): what the DBA must act on.
    for (const line of r.stderr.split('\n').filter((l) => l !== ''))
      assert.match(line, /^(NOTICE|WARNING): session-postgresql: |^ {2}HINT: /, line);
    const again = cli(['migrate', '--database-url', db.url]);
    assert.equal(again.stdout, 'Nothing to do: the database is up to date.\n');
    assert.equal(again.stderr, '');

    // The same install from a script, into another empty database (so notices are raised
    // again): not a line.
    const other = await freshDatabase('clibanner2', { empty: true });
    t.after(() => other.drop());
    const script = `const { migrate } = await import(${JSON.stringify(migrateModule)});
      const connectionString = ${JSON.stringify(other.url)};
      await migrate({ connectionString });`;
    const ts = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(ts.status, 0, ts.stderr);
    assert.equal(ts.stdout, '');
    assert.equal(ts.stderr, '');
  } finally {
    await db.drop();
  }
});

test("a fresh install outside pg_cron's database prints one schedule command, the final one", async (t) => {
  if (!cronDatabase) {
    t.skip("pg_cron is not installed on this machine: no database other than pg_cron's to install into");
    return;
  }
  const db = await freshDatabase('clicron', { empty: true });
  try {
    const r = cli(['migrate', '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    // Only the procedure is named: the job never runs a single session_purge() call.
    assert.doesNotMatch(r.stderr, /session\.session_purge\(\)/);
    const commands = r.stderr.match(/cron\.schedule_in_database\('[^']*', '[^']*', '[^']*', '[^']*'\)/g) ?? [];
    assert.deepEqual(commands, [
      `cron.schedule_in_database('session-purge-${db.name}', '* * * * *', 'CALL session.session_purge_job()', '${db.name}')`,
    ]);
    // ...and it works as printed.
    const hint = /HINT: In database (\w+), run: (.*)$/m.exec(r.stderr);
    assert.ok(hint?.[1] && hint[2], r.stderr);
    assert.equal(hint[1], cronDatabase);
    psql(databaseUrl(adminUrl, cronDatabase), 'CREATE EXTENSION IF NOT EXISTS pg_cron');
    psql(databaseUrl(adminUrl, cronDatabase), hint[2]);
    try {
      assert.equal(
        psql(databaseUrl(adminUrl, cronDatabase), `SELECT command FROM cron.job WHERE jobname = 'session-purge-${db.name}'`),
        'CALL session.session_purge_job()',
      );
    } finally {
      psql(databaseUrl(adminUrl, cronDatabase), `SELECT cron.unschedule('session-purge-${db.name}')`);
    }
  } finally {
    await db.drop();
  }
});

// What follows every schedule_in_database call printed: who must run it.
const asOwner =
  'Run it as the owner of schema session (the job runs as the role that schedules it), once a superuser or the ' +
  "platform's admin user granted the owner, in pg_cron's database: GRANT USAGE ON SCHEMA cron TO <owner>; GRANT EXECUTE ON FUNCTION " +
  'cron.schedule_in_database(text, text, text, text, text, boolean) TO <owner>; or, as the owner: session-pg schedule --cron-database-url URL';

test('of notices on one topic (the pg_cron job, the roles), only the final instruction is printed', () => {
  // What a cluster without pg_cron gives a role that may not create roles (001, 002, 003).
  assert.deepEqual(
    noticeLines([
      {
        severity: 'WARNING',
        message: 'session-postgresql: role session_client does not exist and app may not create roles',
        hint: 'A DBA must run: CREATE ROLE session_client NOLOGIN; GRANT ...',
      },
      {
        severity: 'NOTICE',
        message: 'session-postgresql: pg_cron is not loaded, so no purge job was scheduled',
        hint: "Run 'SELECT session.session_purge()' every minute until it returns 0, or install pg_cron.",
      },
      {
        severity: 'NOTICE',
        message: 'session-postgresql: if you schedule the purge yourself, call session_purge_job()',
        hint: 'Every minute, outside a transaction block, as the owner: CALL session.session_purge_job()',
      },
      {
        severity: 'WARNING',
        message:
          'session-postgresql: app may not create roles; a DBA must create them before the application can call the functions',
        hint: 'A DBA must run: CREATE ROLE session_client NOLOGIN; ...',
      },
      { severity: 'NOTICE', message: 'unrelated', hint: 'kept' },
    ]),
    [
      'WARNING: session-postgresql: role session_client does not exist and app may not create roles',
      'NOTICE: session-postgresql: pg_cron is not loaded, so no purge job was scheduled',
      'NOTICE: session-postgresql: if you schedule the purge yourself, call session_purge_job()\n  HINT: Every minute, outside a transaction block, as the owner: CALL session.session_purge_job()',
      'WARNING: session-postgresql: app may not create roles; a DBA must create them before the application can call the functions\n  HINT: A DBA must run: CREATE ROLE session_client NOLOGIN; ...',
      'NOTICE: unrelated\n  HINT: kept',
    ],
  );
  // A role that may not read cron.database_name: 001's call is the only one naming pg_cron's
  // database, so it stays, with the command 002 gave the job.
  assert.deepEqual(
    noticeLines([
      {
        severity: 'NOTICE',
        message: 'session-postgresql: app may not read cron.database_name, so no purge job was scheduled',
        hint: "If pg_cron is installed, a superuser must run, in pg_cron's database: SELECT cron.schedule_in_database('session-purge-shop', '* * * * *', 'SELECT session.session_purge()', 'shop');",
      },
      {
        severity: 'NOTICE',
        message: 'session-postgresql: if you schedule the purge yourself, call session_purge_job()',
        hint: 'Every minute, outside a transaction block, as the owner: CALL session.session_purge_job()',
      },
    ]),
    [
      "NOTICE: session-postgresql: app may not read cron.database_name, so no purge job was scheduled\n  HINT: If pg_cron is installed, a superuser must run, in pg_cron's database: SELECT cron.schedule_in_database('session-purge-shop', '* * * * *', 'CALL session.session_purge_job()', 'shop');" +
        `\n  HINT: ${asOwner}`,
      'NOTICE: session-postgresql: if you schedule the purge yourself, call session_purge_job()\n  HINT: Every minute, outside a transaction block, as the owner: CALL session.session_purge_job()',
    ],
  );
  // 001 applied alone: its advice is final.
  const alone = {
    severity: 'NOTICE',
    message: 'session-postgresql: pg_cron lives in database cron, not shop; schedule the purge job there',
    hint: "In database cron, run: SELECT cron.schedule_in_database('session-purge-shop', '* * * * *', 'SELECT session.session_purge()', 'shop');",
  };
  assert.deepEqual(noticeLines([alone]), [`NOTICE: ${alone.message}\n  HINT: ${alone.hint}\n  HINT: ${asOwner}`]);
});

test('migrate --client-role / --admin-role name the roles, and bad names are usage errors', async () => {
  const db = await freshDatabase('cliroles', { empty: true });
  const client = uniqueName('cr');
  const admin = uniqueName('ar');
  try {
    const bad = cli(['migrate', '--client-role', 'Shop', '--database-url', db.url]);
    assert.equal(bad.status, 2);
    assert.match(oneLine(bad.stderr), /^session-pg migrate: clientRole must be a lower-case identifier/);
    const r = cli(['migrate', '--client-role', client, '--admin-role', admin, '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(psql(db.url, "SELECT client_role || ' ' || admin_role FROM session.config"), `${client} ${admin}`);
    assert.equal(psql(db.url, `SELECT has_function_privilege('${admin}', 'session.session_stats()', 'EXECUTE')`), 't');
    assert.equal(psql(db.url, `SELECT has_function_privilege('${client}', 'session.session_stats()', 'EXECUTE')`), 'f');
    // Migrating again with the same names, or none, is fine; other names would be ignored: refused.
    assert.equal(cli(['migrate', '--client-role', client, '--database-url', db.url]).status, 0);
    const renamed = cli(['migrate', '--client-role', 'other_session', '--database-url', db.url]);
    assert.equal(renamed.status, 2);
    assert.equal(
      oneLine(renamed.stderr),
      `session-pg migrate: this database's roles were named when it was installed: ${client} and ${admin}; ` +
        'migrating again cannot rename them (leave the role names out, or pass those) (see session-pg migrate --help)',
    );
  } finally {
    await db.drop();
    for (const role of [client, admin]) await adminQuery(`DROP ROLE IF EXISTS ${role}`);
  }
});
