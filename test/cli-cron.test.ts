// A pg_cron purge job whose runs fail must not go unnoticed: `session-pg migrate` and `stats` warn,
// with the fix. A private cluster where pg_cron runs jobs over libpq (no background workers) to a
// host that does not exist: every run fails with "connection failed", as with a pg_hba.conf that
// refuses the loopback connection.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, type Cluster } from './harness/cluster.js';
import { cli, psql } from './helpers.js';

let cluster: Cluster | undefined;
before(async () => {
  cluster = await startCluster({ settings: ['cron.use_background_workers = off', `cron.host = '/nonexistent/session-pg-test'`] });
});
after(() => cluster?.destroy());

test('failing pg_cron runs: stats shows them with their times, stats and migrate warn with the fix', {
  timeout: 150_000,
}, async (t) => {
  assert.ok(cluster);
  if (!cluster.cron) {
    t.skip('pg_cron is not installed on this machine (apt-get install postgresql-15-cron): no job runs to check');
    return;
  }
  const url = cluster.urlFor(cluster.cronDatabase);
  const migrated = cli(['migrate', '--database-url', url]);
  assert.equal(migrated.status, 0, migrated.stderr);
  assert.doesNotMatch(migrated.stderr, /warning/, 'no run yet, no warning');
  assert.equal(psql(url, `SELECT command FROM cron.job WHERE jobname = 'session-purge'`), 'CALL session.session_purge_job()');

  // pg_cron 1.4 runs jobs on the minute: wait for the first run to fail.
  const deadline = Date.now() + 130_000;
  while (psql(url, `SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'`) === '0') {
    assert.ok(Date.now() < deadline, 'no failed run within 130 s');
    await sleep(1000);
  }
  const message = psql(url, `SELECT return_message FROM cron.job_run_details WHERE status = 'failed' LIMIT 1`);
  t.diagnostic(`pg_cron recorded: ${message}`);

  const fix = /Fix: pg_cron runs jobs over a libpq connection to cron\.host .*pg_hba\.conf.*cron\.use_background_workers = on/;
  const stats = cli(['stats', '--database-url', url]);
  assert.equal(stats.status, 0, stats.stderr);
  assert.match(stats.stdout, /^purge job {10}"\* \* \* \* \*" CALL session\.session_purge_job\(\) in cron as postgres$/m);
  // start, status, duration, message; a run that could not connect never started: no times.
  assert.match(
    stats.stdout,
    /^ {2}last runs \(start, status, duration, message\):\n {2}(\d{4}-\d\d-\d\dT\S+Z|-) {2}failed {5} +([\d.]+ s|-) {2}\S/m,
  );
  assert.match(
    stats.stderr,
    new RegExp(
      `^session-pg: warning: the pg_cron purge job failed in \\d+ of its last \\d+ runs \\("${message}"\\), so nothing is purged\\. ${fix.source}`,
    ),
  );

  const json = JSON.parse(cli(['stats', '--json', '--database-url', url]).stdout) as {
    cron: { lastRuns: { status: string; message: string }[] };
    cronWarning: string;
  };
  assert.ok(json.cron.lastRuns.some((r) => r.status === 'failed' && r.message === message));
  assert.match(json.cronWarning, fix);

  const again = cli(['migrate', '--database-url', url]);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, 'Nothing to do: the database is up to date.\n');
  assert.match(again.stderr, fix);
});
