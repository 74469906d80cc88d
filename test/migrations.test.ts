// Migrations: Node and psql paths, idempotence, concurrency, uninstall, pre-release installs, the pg_cron job.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate, migrationNames, migrationStatus, preReleaseMigrations } from '../src/migrate.js';
import { SessionError } from '../src/errors.js';
import { databaseUrl } from './harness/urls.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  adminQuery,
  adminUrl,
  bindir,
  cronDatabase,
  freshDatabase,
  missingTool,
  pgTool,
  psql,
  schemaDump,
  uniqueName,
} from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const sqlDir = `${root}sql`;

/** The migrations this package ships, oldest first. */
const shipped = migrationNames();
const uninstall = (url: string) =>
  pgTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', `${sqlDir}/uninstall.sql`]);

const logs = () => {
  const lines: string[] = [];
  return {
    lines,
    log: (l: string) => {
      lines.push(l);
    },
  };
};

describe('node-pg-migrate path', () => {
  test('up, re-run is a no-op, status; down is refused; uninstall.sql removes everything; up again', {
    skip: missingTool('psql'),
  }, async () => {
    const db = await freshDatabase('mig', { empty: true });
    try {
      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), shipped);
      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), []);
      const status = await migrationStatus({ connectionString: db.url });
      assert.deepEqual(
        status.map((m) => m.name),
        shipped,
      );
      assert.ok(status.every((m) => m.applied && m.runOn instanceof Date));
      const key = psql(db.url, `SELECT session.session_generate(60, 'x')`);
      assert.equal(key.length, 64);

      // Forward-only: down is refused with the way out, and changes nothing.
      await assert.rejects(
        migrate({ connectionString: db.url, direction: 'down', log: false }),
        (e: unknown) =>
          e instanceof SessionError && e.code === 'invalid_argument' && /forward-only.*sql\/uninstall\.sql/.test(e.message),
      );
      assert.equal(psql(db.url, `SELECT value FROM session.session_get('${key}')`), 'x');

      uninstall(db.url);
      assert.equal(psql(db.url, `SELECT count(*) FROM pg_namespace WHERE nspname = 'session'`), '0');
      assert.ok((await migrationStatus({ connectionString: db.url })).every((m) => !m.applied));
      // The roles stay: they are cluster-wide.
      assert.equal(psql(db.url, `SELECT count(*) FROM pg_roles WHERE rolname IN ('session_client', 'session_admin')`), '2');
      uninstall(db.url);

      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), shipped);
      assert.equal(psql(db.url, `SELECT count(*) FROM session.sessions`), '0');
    } finally {
      await db.drop();
    }
  });

  test('a database a pre-release installed is refused by migrate, status and install.sql, unchanged; uninstall.sql clears it', {
    skip: missingTool('psql'),
  }, async () => {
    const db = await freshDatabase('prerel', { empty: true });
    try {
      // What a pre-release left: its migration names and a schema session with sessions in it.
      psql(
        db.url,
        `CREATE TABLE public.session_migrations (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL);
        INSERT INTO public.session_migrations (name, run_on) SELECT n, now() FROM unnest('{${preReleaseMigrations.slice(0, 9).join(',')}}'::text[]) n;
        CREATE SCHEMA session; CREATE TABLE session.sessions (digest bytea PRIMARY KEY, value text);
        INSERT INTO session.sessions VALUES ('\\x01', 'kept')`,
      );
      const state = () =>
        psql(
          db.url,
          `SELECT (SELECT string_agg(name, ',' ORDER BY id) FROM public.session_migrations) || ' '
        || (SELECT string_agg(value, ',') FROM session.sessions) || ' ' || (SELECT count(*) FROM pg_proc WHERE pronamespace = 'session'::regnamespace)`,
        );
      const before = state();
      const refused = (e: unknown) =>
        e instanceof SessionError &&
        e.code === 'prerelease_schema' &&
        e.sqlState === '55000' &&
        /pre-release.*nothing was changed.*sql\/uninstall\.sql/.test(e.message);
      await assert.rejects(migrate({ connectionString: db.url, log: false }), refused);
      await assert.rejects(migrationStatus({ connectionString: db.url }), refused);
      const out = spawnSync(
        join(bindir, 'psql'),
        ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', db.url, '-f', `${sqlDir}/install.sql`],
        { encoding: 'utf8' },
      );
      assert.notEqual(out.status, 0, out.stdout);
      assert.match(out.stderr, /55000.*installed by a pre-release/s, out.stderr);
      assert.equal(state(), before);

      uninstall(db.url);
      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), shipped);
    } finally {
      await db.drop();
    }
  });

  test('five concurrent migrate runs: one applies, the others wait and find nothing; same schema as one run', async (t) => {
    const single = await freshDatabase('single', { empty: true });
    const racy = await freshDatabase('racy', { empty: true });
    try {
      await migrate({ connectionString: single.url, log: false });
      const runs = await Promise.all(Array.from({ length: 5 }, () => migrate({ connectionString: racy.url, log: false })));
      assert.deepEqual(runs.map((r) => r.length).sort(), [0, 0, 0, 0, shipped.length]);
      if (missingTool('pg_dump')) t.diagnostic(`the schemas are not compared: ${String(missingTool('pg_dump'))}`);
      else assert.equal(schemaDump(racy.url), schemaDump(single.url));
    } finally {
      await single.drop();
      await racy.drop();
    }
  });

  test('a database owner without superuser or CREATEROLE can migrate; the app role then works', async () => {
    const owner = uniqueName('owner');
    const name = uniqueName('owned');
    await adminQuery(`CREATE ROLE ${owner} LOGIN PASSWORD 'pw'`);
    await adminQuery(`CREATE DATABASE ${name} OWNER ${owner}`);
    try {
      const { lines, log } = logs();
      const url = databaseUrl(adminUrl, name, { user: owner, password: 'pw' });
      assert.deepEqual(await migrate({ connectionString: url, log }), shipped);
      if (cronDatabase)
        assert.ok(
          lines.some((l) => l.includes('may not read cron.database_name') && l.includes('cron.schedule_in_database')),
          lines.join('\n'),
        );
      else
        assert.ok(
          lines.some((l) => l.includes('pg_cron is not loaded')),
          lines.join('\n'),
        );
      const app = uniqueName('app');
      await adminQuery(`CREATE ROLE ${app} LOGIN PASSWORD 'pw' IN ROLE session_client`);
      try {
        const appUrl = databaseUrl(adminUrl, name, { user: app, password: 'pw' });
        const key = psql(appUrl, `SELECT session.session_generate(60, 'owned')`);
        assert.equal(psql(appUrl, `SELECT value FROM session.session_get('${key}')`), 'owned');
      } finally {
        await adminQuery(`DROP DATABASE ${name} WITH (FORCE)`);
        await adminQuery(`DROP ROLE ${app}`);
      }
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await adminQuery(`DROP ROLE ${owner}`);
    }
  });
});

describe('psql path', { skip: missingTool('psql') || missingTool('pg_dump') }, () => {
  test('sql/install.sql applies every step of sql/steps, and the Node migrations are the same steps', () => {
    const install = readFileSync(`${sqlDir}/install.sql`, 'utf8');
    const steps = readdirSync(`${sqlDir}/steps`)
      .filter((x) => x.endsWith('.sql'))
      .sort();
    for (const f of steps) assert.ok(install.includes(`\\ir steps/${f}`), `install.sql does not apply ${f}`);
    assert.deepEqual(
      shipped,
      steps.map((f) => f.slice(0, -4)),
    );
  });

  test('psql install gives the same schema as the migrations, is re-runnable, and Node sees it applied', async () => {
    const viaNode = await freshDatabase('vianode', { empty: true });
    const viaPsql = await freshDatabase('viapsql', { empty: true });
    try {
      await migrate({ connectionString: viaNode.url, log: false });
      // Without -q, as the docs give it: command tags only, never a result table.
      const args = ['-X', '-v', 'ON_ERROR_STOP=1', '-d', viaPsql.url, '-f', `${sqlDir}/install.sql`];
      for (const out of [pgTool('psql', args), pgTool('psql', args)]) {
        assert.doesNotMatch(out, /\(\d+ rows?\)|set_config/, out);
      }
      assert.equal(schemaDump(viaPsql.url), schemaDump(viaNode.url));
      assert.deepEqual(await migrate({ connectionString: viaPsql.url, log: false }), []);
      assert.equal(
        psql(viaPsql.url, "SELECT string_agg(name, ' ' ORDER BY id) FROM public.session_migrations"),
        shipped.join(' '),
      );
    } finally {
      await viaNode.drop();
      await viaPsql.drop();
    }
  });
});

describe('pg_cron job', () => {
  const cronUrl = cronDatabase ? databaseUrl(adminUrl, cronDatabase) : '';
  const jobs = () => psql(cronUrl, `SELECT count(*) FROM cron.job WHERE jobname = 'session-purge'`);

  test('scheduled once, idempotent, purges, removed by uninstall.sql', { timeout: 150_000 }, async (t) => {
    if (!cronDatabase) {
      t.skip('pg_cron is not installed on this machine (apt-get install postgresql-15-cron); the job is not tested');
      return;
    }
    const command = () => psql(cronUrl, `SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'session-purge'`);
    // Whatever fails, the next test finds this database empty, as it expects.
    t.after(() => uninstall(cronUrl));
    assert.deepEqual(await migrate({ connectionString: cronUrl, log: false }), shipped);
    assert.equal(jobs(), '1');
    assert.equal(command(), '* * * * * CALL session.session_purge_job()');
    uninstall(cronUrl);
    assert.equal(jobs(), '0');
    await migrate({ connectionString: cronUrl, log: false });
    // Applying the job's SQL again (as a DBA might, or session-pg schedule) still leaves one job.
    psql(cronUrl, `SELECT cron.schedule('session-purge', '* * * * *', 'CALL session.session_purge_job()')`);
    assert.equal(jobs(), '1');

    // The job really runs: a backlog of several batches disappears within a minute or so. The job
    // is paused while the backlog is made, so no run that began before it (and, taking a new
    // snapshot per batch, would still see it) can take part: the first run after resuming is alone.
    const setActive = (active: boolean) =>
      psql(cronUrl, `SELECT cron.alter_job(jobid, active := ${active}) FROM cron.job WHERE jobname = 'session-purge'`);
    setActive(false);
    const idle = Date.now() + 130_000;
    while (psql(cronUrl, `SELECT count(*) FROM cron.job_run_details WHERE status IN ('starting', 'running')`) !== '0') {
      assert.ok(Date.now() < idle, 'a pg_cron run did not finish');
      await sleep(200);
    }
    psql(cronUrl, `SELECT session.session_generate(-5, 'expired')`);
    psql(
      cronUrl,
      `INSERT INTO session.sessions (digest, expires_at, value)
                   SELECT sha256(('cron' || i)::bytea), now() - interval '1 s', repeat('x', 1500) FROM generate_series(1, 30000) i`,
    );
    // Runs recorded from here on see the rows (they start after the INSERT committed).
    const before = psql(cronUrl, 'SELECT coalesce(max(runid), 0) FROM cron.job_run_details');
    setActive(true);
    const deadline = Date.now() + 130_000;
    while (psql(cronUrl, 'SELECT count(*) FROM session.sessions') !== '0') {
      assert.ok(Date.now() < deadline, 'the pg_cron job did not purge within 130 s');
      await sleep(2000);
    }
    const since = `FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'session-purge' AND d.runid > ${before}`;
    while (psql(cronUrl, `SELECT count(*) ${since} AND d.status IN ('starting', 'running')`) !== '0') {
      assert.ok(Date.now() < deadline, 'the pg_cron run did not finish');
      await sleep(200);
    }
    const runs = psql(cronUrl, `SELECT count(*) || ' ' || min(status) || ' ' || max(status) ${since}`);
    // One run took all 30001 rows (about 3 batches of 10000): the job drains, not one batch a minute.
    assert.equal(runs, '1 succeeded succeeded');

    uninstall(cronUrl);
    assert.equal(jobs(), '0');
  });

  test('in another database, the migration prints the exact pg_cron call', async (t) => {
    if (!cronDatabase) {
      t.skip('pg_cron is not installed on this machine; nothing to schedule');
      return;
    }
    const db = await freshDatabase('elsewhere', { empty: true });
    try {
      const { lines, log } = logs();
      await migrate({ connectionString: db.url, log });
      const hints = [...lines.join('\n').matchAll(/run: (SELECT cron\.schedule_in_database\(.*\);)/g)].map((m) => m[1]!);
      assert.equal(hints.length, 1, lines.join('\n'));
      assert.match(hints[0]!, /CALL session\.session_purge_job\(\)/);
      for (const hint of hints) psql(cronUrl, hint);
      const job = () =>
        psql(cronUrl, `SELECT database || ' ' || command FROM cron.job WHERE jobname = 'session-purge-${db.name}'`);
      assert.equal(job(), `${db.name} CALL session.session_purge_job()`);
      psql(cronUrl, `SELECT cron.unschedule('session-purge-${db.name}')`);
    } finally {
      await db.drop();
    }
  });
});
