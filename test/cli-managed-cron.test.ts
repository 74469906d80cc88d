// pg_cron on managed PostgreSQL (RDS/Aurora, Cloud SQL, Azure, Supabase), emulated with roles that
// hold only what those platforms give: pg_cron is created by the platform in its own database; a
// "master user" that is not a superuser holds the cron grants (with grant option) and CREATEROLE;
// the owner of schema session is a non-superuser with CREATEROLE. The documented steps must give a
// job that runs as the owner and succeeds, and stats and status must find it and its failures.
// Also: hints that name the install's roles, and a URL without a password against SCRAM.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate } from '../src/admin-index.js';
import {
  adminQuery,
  adminUrl,
  cli,
  cronDatabase,
  freshDatabase,
  psql,
  shippedMigrations,
  uniqueName,
  type TestDatabase,
} from './helpers.js';
import { databaseUrl } from './harness/urls.js';

// No password but the one a URL carries.
const noPassword = { PGPASSWORD: '', PGPASSFILE: '/nonexistent/session-pg-test' };

let db: TestDatabase;
const roles = {
  master: uniqueName('master'),
  owner: uniqueName('owner'),
  client: uniqueName('client'),
  admin: uniqueName('admin'),
  app: uniqueName('app'),
};
const password = randomBytes(12).toString('hex');
const as = (role: string, database: string) => databaseUrl(adminUrl, database, { user: role, password });
const scheduleIn = 'cron.schedule_in_database(text, text, text, text, text, boolean)';

before(async () => {
  db = await freshDatabase('managed', { empty: true });
  await adminQuery(`CREATE ROLE ${roles.master} LOGIN PASSWORD '${password}' CREATEROLE CREATEDB`);
  await adminQuery(`CREATE ROLE ${roles.owner} LOGIN PASSWORD '${password}' CREATEROLE`);
  await db.query(`ALTER DATABASE ${db.name} OWNER TO ${roles.owner}`);
  await migrate({ connectionString: as(roles.owner, db.name), clientRole: roles.client, adminRole: roles.admin });
});
after(async () => {
  if (cronDatabase) {
    const cronUrl = databaseUrl(adminUrl, cronDatabase);
    await adminQuery('DELETE FROM cron.job_run_details WHERE username IN ($1, $2)', [roles.owner, roles.master], cronUrl);
    await adminQuery('DELETE FROM cron.job WHERE username IN ($1, $2)', [roles.owner, roles.master], cronUrl);
    await adminQuery(`DROP OWNED BY ${roles.owner}, ${roles.master}`, [], cronUrl);
  }
  await db.drop();
  for (const r of [roles.app, roles.client, roles.admin, roles.owner, roles.master]) await adminQuery(`DROP ROLE IF EXISTS ${r}`);
});

/** Waits until pg_cron recorded a finished run of each job (ids), at most 130 s (1.4 runs on the minute). */
async function finishedRuns(
  cronUrl: string,
  jobs: string[],
): Promise<Map<string, { status: string; message: string; username: string }>> {
  const deadline = Date.now() + 130_000;
  for (;;) {
    const rows = JSON.parse(
      psql(
        cronUrl,
        `SELECT coalesce(json_agg(r), '[]') FROM (
      SELECT DISTINCT ON (jobid) jobid::text AS job, status, return_message AS message, username FROM cron.job_run_details
       WHERE jobid IN (${jobs.join(', ')}) AND status IN ('succeeded', 'failed') ORDER BY jobid, runid DESC) r`,
      ),
    ) as { job: string; status: string; message: string; username: string }[];
    if (rows.length === jobs.length) return new Map(rows.map((r) => [r.job, r]));
    assert.ok(Date.now() < deadline, `no finished run of every job within 130 s: ${JSON.stringify(rows)}`);
    await sleep(1000);
  }
}

test('managed pg_cron: the documented grants schedule a job that runs as the owner and purges; stats and status find it and the failing one', {
  timeout: 200_000,
}, async (t) => {
  if (!cronDatabase) {
    t.skip('pg_cron is not installed on this machine (apt-get install postgresql-15-cron): no managed pg_cron to emulate');
    return;
  }
  const superCron = databaseUrl(adminUrl, cronDatabase);
  // The platform: pg_cron in its database, the cron rights given to the master user.
  psql(
    superCron,
    `CREATE EXTENSION IF NOT EXISTS pg_cron;
    GRANT USAGE ON SCHEMA cron TO ${roles.master} WITH GRANT OPTION;
    GRANT EXECUTE ON FUNCTION ${scheduleIn} TO ${roles.master} WITH GRANT OPTION;`,
  );
  const ownerDb = as(roles.owner, db.name);
  const ownerCron = as(roles.owner, cronDatabase);
  const masterCron = as(roles.master, cronDatabase);
  const schedule = () => cli(['schedule', '--database-url', ownerDb, '--cron-database-url', ownerCron], noPassword);

  // pg_cron's database given before its extension exists there: say that, and how to create it.
  const noExtension = cli(
    ['schedule', '--database-url', ownerDb, '--cron-database-url', as(roles.owner, 'postgres')],
    noPassword,
  );
  assert.equal(noExtension.status, 1);
  assert.match(
    noExtension.stderr,
    /^session-pg: not_installed: pg_cron is not installed in database postgres, the cron database URL given: as a superuser \(or your platform's admin user\), in database postgres: CREATE EXTENSION pg_cron;/,
  );

  // The owner without grants, then with only USAGE (what the docs used to say): the exact GRANT.
  let r = schedule();
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /permission_denied: permission denied for schema cron: .* in database cron, run: GRANT USAGE ON SCHEMA cron TO \S+; GRANT EXECUTE ON FUNCTION cron\.schedule_in_database\(text, text, text, text, text, boolean\) TO \S+;/,
  );
  psql(masterCron, `GRANT USAGE ON SCHEMA cron TO ${roles.owner}`);
  r = schedule();
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `permission denied for function schedule_in_database: .*GRANT EXECUTE ON FUNCTION cron\\.schedule_in_database\\(text, text, text, text, text, boolean\\) TO ${roles.owner};`,
    ),
  );
  // The master user may not schedule the owner's job through the CLI: it would run as the master.
  const byMaster = cli(['schedule', '--database-url', as(roles.master, db.name), '--cron-database-url', masterCron], noPassword);
  assert.equal(byMaster.status, 1);
  assert.match(
    byMaster.stderr,
    new RegExp(
      `runs as the role that schedules it, and ${roles.master} is not the owner of schema session \\(${roles.owner}\\).*as ${roles.owner}`,
    ),
  );

  // The documented step, as the master user: then the owner schedules, and the job runs as it.
  psql(masterCron, `GRANT EXECUTE ON FUNCTION ${scheduleIn} TO ${roles.owner}`);
  r = schedule();
  assert.equal(r.status, 0, r.stderr);
  const ownerJob = psql(superCron, `SELECT jobid FROM cron.job WHERE username = '${roles.owner}' AND database = '${db.name}'`);
  assert.match(ownerJob, /^\d+$/);
  // What the RDS steps used to say: the master user schedules the printed call, so the job runs as it.
  const masterJob = psql(
    masterCron,
    `SELECT cron.schedule_in_database('purge-by-master', '* * * * *', 'CALL session.session_purge_job()', '${db.name}')`,
  );
  psql(
    ownerDb,
    `INSERT INTO session.sessions (digest, expires_at, value) SELECT sha256(i::text::bytea), now() - interval '1 s', 'x' FROM generate_series(1, 50) i`,
  );

  const runs = await finishedRuns(superCron, [ownerJob, masterJob]);
  assert.deepEqual(runs.get(ownerJob), {
    job: ownerJob,
    status: 'succeeded',
    message: runs.get(ownerJob)?.message,
    username: roles.owner,
  });
  assert.equal(runs.get(masterJob)?.status, 'failed');
  assert.match(runs.get(masterJob)?.message ?? '', /permission denied for schema session/);
  assert.equal(psql(ownerDb, 'SELECT count(*) FROM session.sessions WHERE expires_at < now()'), '0', "the owner's job purged");

  // stats and status as the owner find its job in pg_cron's database and its successful runs.
  const admin = cli(['stats', '--database-url', ownerDb, '--cron-database-url', ownerCron], noPassword);
  assert.equal(admin.status, 0, admin.stderr);
  assert.match(
    admin.stdout,
    new RegExp(
      `^purge job {10}"\\* \\* \\* \\* \\*" CALL session\\.session_purge_job\\(\\) in ${db.name} as ${roles.owner} \\(kept in cron\\)$`,
      'm',
    ),
  );
  assert.match(admin.stdout, /^ {2}\S+ {2}succeeded /m);
  assert.equal(admin.stderr, '');
  const status = cli(['status', '--database-url', ownerDb, '--cron-database-url', ownerCron], noPassword);
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`^applied {2}${shippedMigrations().at(-1)!}`, 'm'));
  assert.match(status.stdout, new RegExp(`^purge job .* in ${db.name} as ${roles.owner} \\(kept in cron\\)$`, 'm'));
  // Without the flag, a non-superuser cannot read cron.database_name: pg_cron's default database is
  // tried, and the note says where it looked; with pg_read_all_settings the job is found.
  const guessed = cli(['status', '--database-url', ownerDb], noPassword);
  assert.equal(guessed.status, 0, guessed.stderr);
  assert.match(
    guessed.stdout,
    /^purge job {10}none: pg_cron is not installed in this database nor in postgres \(its default database\); if pg_cron lives in another database, pass its URL with --cron-database-url$/m,
  );
  await adminQuery(`GRANT pg_read_all_settings TO ${roles.owner}`);
  const found = cli(['stats', '--json', '--database-url', ownerDb], noPassword);
  assert.equal(found.status, 0, found.stderr);
  const json = JSON.parse(found.stdout) as { cron: { username: string; database: string }; cronDatabase: string };
  assert.deepEqual([json.cron.username, json.cron.database, json.cronDatabase], [roles.owner, db.name, 'cron']);

  // The master user's job: the owner cannot see it (pg_cron's row-level security), the note says so;
  // seen through the master's login, its failures and the fix are shown.
  await adminQuery(`SELECT cron.unschedule(${ownerJob})`, [], superCron);
  const hidden = cli(['stats', '--database-url', ownerDb, '--cron-database-url', ownerCron], noPassword);
  assert.match(
    hidden.stdout,
    new RegExp(
      `^purge job {10}none: no purge job of ${roles.owner} for database ${db.name} in pg_cron's database cron; pg_cron shows each role only its own jobs`,
      'm',
    ),
  );
  const failing = cli(['stats', '--database-url', ownerDb, '--cron-database-url', masterCron], noPassword);
  assert.equal(failing.status, 0, failing.stderr);
  assert.match(failing.stdout, new RegExp(`in ${db.name} as ${roles.master} \\(kept in cron\\)$`, 'm'));
  assert.match(failing.stdout, /^ {2}\S+ {2}failed {4} .*permission denied for schema session$/m);
  assert.match(
    failing.stderr,
    new RegExp(
      `^session-pg: warning: the pg_cron purge job runs as ${roles.master}, which is not the owner of schema session \\(${roles.owner}\\) and may not purge, so every run fails\\. Fix: as ${roles.owner}, run session-pg schedule --cron-database-url <URL of database cron>; then, as ${roles.master} in database cron: SELECT cron\\.unschedule\\(${masterJob}\\);$`,
      'm',
    ),
  );
});

test('hints name the roles this database was installed with', async () => {
  await adminQuery(`CREATE ROLE ${roles.app} LOGIN PASSWORD '${password}'`);
  const app = as(roles.app, db.name);
  const stats = cli(['stats', '--database-url', app], noPassword);
  assert.equal(stats.status, 1);
  assert.match(
    stats.stderr,
    new RegExp(
      `HINT: session-pg stats needs the admin role \\(GRANT ${roles.admin} TO ${roles.app}\\) or the owner of schema session\\n$`,
    ),
  );
  const sessions = cli(['sessions', 'alice', '--database-url', app], noPassword);
  assert.equal(sessions.status, 1);
  assert.match(
    sessions.stderr,
    new RegExp(
      `HINT: session-pg sessions needs the client role \\(GRANT ${roles.client} TO ${roles.app}\\) or the owner of schema session\\n$`,
    ),
  );
  assert.doesNotMatch(stats.stderr + sessions.stderr, /session_admin|session_client/);
});

test('a URL without a password against a server that asks for SCRAM says the URL has no password', async (t) => {
  const hba = psql(adminUrl, 'SHOW hba_file');
  let original: string;
  try {
    original = readFileSync(hba, 'utf8');
    accessSync(hba, constants.W_OK);
  } catch {
    t.skip(`the server's ${hba} cannot be changed from here (not a server the test harness started): not checked`);
    return;
  }
  const user = uniqueName('scram');
  await adminQuery(`SET password_encryption = 'scram-sha-256'; CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
  try {
    writeFileSync(hba, `host all ${user} 127.0.0.1/32 scram-sha-256\n${original}`);
    psql(adminUrl, 'SELECT pg_reload_conf()');
    const url = new URL(adminUrl);
    const r = cli(['status', '--database-url', `postgresql://${user}@${url.host}/${db.name}`], noPassword);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^session-pg: connection: the server asks for a password \(SCRAM authentication\) and the connection has none: the URL has no password;/,
    );
    assert.doesNotMatch(r.stderr, /SASL|must be a string/);
    // With the password it gets in (and is refused what this role may not read, which is another matter).
    const withPassword = cli(['status', '--database-url', `postgresql://${user}:${password}@${url.host}/${db.name}`], noPassword);
    assert.match(withPassword.stderr, /^session-pg: permission_denied: permission denied for table session_migrations/);
  } finally {
    writeFileSync(hba, original);
    psql(adminUrl, 'SELECT pg_reload_conf()');
    await adminQuery(`DROP ROLE ${user}`);
  }
});
