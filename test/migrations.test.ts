// Migrations: Node and psql paths, idempotence, concurrency, down, the CLI and the pg_cron job.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrate, migrationStatus } from '../src/admin-index.js';
import { databaseUrl } from './harness/urls.js';
import { adminQuery, adminUrl, cronDatabase, freshDatabase, missingTool, pgTool, psql, schemaDump, uniqueName } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const sqlDir = `${root}sql`;

/** The migrations this package ships, oldest first. */
const shipped = readdirSync(`${root}migrations`).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
/** How many to revert to go back to 001_core alone. */
const downTo001 = shipped.length - 1;

const logs = () => {
  const lines: string[] = [];
  return { lines, log: (l: string) => { lines.push(l); } };
};

describe('node-pg-migrate path', () => {
  test('up, re-run is a no-op, status, down, up again', async () => {
    const db = await freshDatabase('mig', { empty: true });
    try {
      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), shipped);
      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), []);
      const status = await migrationStatus({ connectionString: db.url });
      assert.equal(status.length, readdirSync(sqlDir).filter((f) => f.endsWith('.up.sql')).length);
      assert.ok(status.every((m) => m.applied && m.runOn instanceof Date));
      const key = psql(db.url, `SELECT session.session_generate(60, 'x')`);
      assert.equal(key.length, 64);

      // down reverts one migration at a time, newest first; a live session survives each step.
      for (const name of [...shipped].reverse().slice(0, -1)) {
        assert.deepEqual(await migrate({ connectionString: db.url, direction: 'down', log: false }), [name]);
        assert.equal(psql(db.url, `SELECT value FROM session.session_get('${key}')`), 'x');
      }
      assert.equal(psql(db.url, `SELECT to_regprocedure('session.session_purge_job(integer, double precision)') IS NULL`), 't');
      assert.deepEqual(await migrate({ connectionString: db.url, direction: 'down', log: false }), ['001_core']);
      assert.equal(psql(db.url, `SELECT count(*) FROM pg_namespace WHERE nspname = 'session'`), '0');
      assert.ok((await migrationStatus({ connectionString: db.url })).every((m) => !m.applied));

      assert.deepEqual(await migrate({ connectionString: db.url, log: false }), shipped);
      assert.equal(psql(db.url, `SELECT count(*) FROM session.sessions`), '0');
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
      if (cronDatabase) assert.ok(lines.some((l) => l.includes('may not read cron.database_name') && l.includes('cron.schedule_in_database')), lines.join('\n'));
      else assert.ok(lines.some((l) => l.includes('pg_cron is not loaded')), lines.join('\n'));
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
  test('sql/install.sql applies every numbered migration file', () => {
    const install = readFileSync(`${sqlDir}/install.sql`, 'utf8');
    for (const f of readdirSync(sqlDir).filter((x) => x.endsWith('.up.sql'))) {
      assert.ok(install.includes(`\\ir ${f}`), `install.sql does not apply ${f}`);
    }
    const migrations = readdirSync(`${root}migrations`).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
    assert.deepEqual(migrations, readdirSync(sqlDir).filter((x) => x.endsWith('.up.sql')).map((f) => f.slice(0, -7)));
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
      assert.equal(psql(viaPsql.url, 'SELECT string_agg(name, \' \' ORDER BY id) FROM public.session_migrations'), shipped.join(' '));
    } finally {
      await viaNode.drop();
      await viaPsql.drop();
    }
  });
});

describe('pg_cron job', () => {
  const cronUrl = cronDatabase ? databaseUrl(adminUrl, cronDatabase) : '';
  const jobs = () => psql(cronUrl, `SELECT count(*) FROM cron.job WHERE jobname = 'session-purge'`);

  test('scheduled once, idempotent, purges, removed by down', { timeout: 150_000 }, async (t) => {
    if (!cronDatabase) {
      t.skip('pg_cron is not installed on this machine (apt-get install postgresql-15-cron); the job is not tested');
      return;
    }
    const command = () => psql(cronUrl, `SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'session-purge'`);
    // Whatever fails, the next test finds this database empty, as it expects.
    t.after(() => migrate({ connectionString: cronUrl, direction: 'down', count: Infinity, log: false }));
    assert.deepEqual(await migrate({ connectionString: cronUrl, log: false }), shipped);
    assert.equal(jobs(), '1');
    assert.equal(command(), '* * * * * CALL session.session_purge_job()');
    // Reverting to 001 gives the job back its 001 command; reverting 001 removes it.
    await migrate({ connectionString: cronUrl, direction: 'down', count: downTo001, log: false });
    assert.equal(command(), '* * * * * SELECT session.session_purge()');
    await migrate({ connectionString: cronUrl, direction: 'down', log: false });
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
    psql(cronUrl, `INSERT INTO session.sessions (digest, expires_at, value)
                   SELECT sha256(('cron' || i)::bytea), now() - interval '1 s', repeat('x', 1500) FROM generate_series(1, 30000) i`);
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

    await migrate({ connectionString: cronUrl, direction: 'down', count: Infinity, log: false });
    assert.equal(jobs(), '0');
  });

  test('002 up and down by a role that cannot change the job: a NOTICE with the call that does, which works', async (t) => {
    if (!cronDatabase) {
      t.skip('pg_cron is not installed on this machine; there is no job to change');
      return;
    }
    const command = () => psql(cronUrl, `SELECT command FROM cron.job WHERE jobname = 'session-purge' AND database = current_database()`);
    // 001 as the superuser: the job is the superuser's. 002's SQL, up then down, is then run by
    // another role that may create the procedure, once without and once with USAGE on schema cron.
    assert.deepEqual(await migrate({ connectionString: cronUrl, count: 1, log: false }), ['001_core']);
    const role = uniqueName('mig');
    await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    const upSql = readFileSync(`${sqlDir}/002_purge_job.up.sql`, 'utf8');
    const downSql = readFileSync(`${sqlDir}/002_purge_job.down.sql`, 'utf8');
    const run002 = async () => {
      const client = new pg.Client({ connectionString: databaseUrl(adminUrl, cronDatabase, { user: role, password: 'pw' }) });
      const notices: string[] = [];
      client.on('notice', (n) => { notices.push(`${n.message} HINT: ${n.hint ?? ''}`); });
      await client.connect();
      try {
        await client.query('BEGIN');
        await client.query(upSql);
        const up = notices.splice(0);
        await client.query(downSql);
        await client.query('ROLLBACK');
        return { up, down: notices };
      } finally {
        await client.end();
      }
    };
    const hintIn = (notices: string[], says: string) => {
      assert.equal(notices.length, 1, notices.join('\n'));
      assert.ok(notices[0]!.includes(says), notices[0]);
      const hint = /must run: (SELECT cron\.alter_job\(.*;)$/.exec(notices[0]!)?.[1];
      assert.ok(hint, notices[0]);
      return hint;
    };
    try {
      psql(cronUrl, `GRANT CREATE, USAGE ON SCHEMA session TO ${role}`);
      for (const [grant, says] of [['', 'may not change pg_cron jobs'], [`GRANT USAGE ON SCHEMA cron TO ${role}`, 'has no pg_cron job named session-purge']] as const) {
        if (grant) psql(cronUrl, grant);
        const { up, down } = await run002();
        assert.equal(command(), 'SELECT session.session_purge()');
        psql(cronUrl, hintIn(up, says));
        assert.equal(command(), 'CALL session.session_purge_job()');
        psql(cronUrl, hintIn(down, says));
        assert.equal(command(), 'SELECT session.session_purge()');
      }
    } finally {
      await migrate({ connectionString: cronUrl, direction: 'down', count: Infinity, log: false });
      psql(cronUrl, `REVOKE ALL ON SCHEMA cron FROM ${role}`);
      await adminQuery(`DROP ROLE ${role}`);
    }
    assert.equal(jobs(), '0');
  });

  test('in another database, the migrations print the exact pg_cron calls, up and down', async (t) => {
    if (!cronDatabase) {
      t.skip('pg_cron is not installed on this machine; nothing to schedule');
      return;
    }
    const db = await freshDatabase('elsewhere', { empty: true });
    try {
      const { lines, log } = logs();
      await migrate({ connectionString: db.url, log });
      // 001 and 002 each print a call; only the final one (002's command) is shown.
      const hints = [...lines.join('\n').matchAll(/run: (SELECT cron\.schedule_in_database\(.*\);)/g)].map((m) => m[1]!);
      assert.equal(hints.length, 1, lines.join('\n'));
      assert.match(hints[0]!, /CALL session\.session_purge_job\(\)/);
      for (const hint of hints) psql(cronUrl, hint);
      const job = () => psql(cronUrl, `SELECT database || ' ' || command FROM cron.job WHERE jobname = 'session-purge-${db.name}'`);
      assert.equal(job(), `${db.name} CALL session.session_purge_job()`);
      // Reverting 002 prints the call that points that job back at session_purge().
      lines.length = 0;
      await migrate({ connectionString: db.url, direction: 'down', count: downTo001, log });
      const back = /run: (SELECT cron\.alter_job\(.*;)$/m.exec(lines.join('\n'))?.[1];
      assert.ok(back, lines.join('\n'));
      psql(cronUrl, back);
      assert.equal(job(), `${db.name} SELECT session.session_purge()`);
      psql(cronUrl, `SELECT cron.unschedule('session-purge-${db.name}')`);
    } finally {
      await db.drop();
    }
  });
});
