// The deployment docs/scale-out.md walks through, with its default role names: the application's
// login on the proxy's server cannot call a partition directly, `scaleout status` warns when the
// proxy's roles could, every partition purges by itself with its pg_cron job, and `session-pg
// stats` on the proxy reports those jobs.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, type SessionStore } from '../../src/index.js';
import { installProxy, partitionPurgeJobs, proxyStatus } from '../../src/scaleout.js';
import { scaleoutCommand } from '../../src/scaleout-cli.js';
import { databaseUrl } from '../harness/urls.js';
import { cli } from '../support.js';
import { deploy, partitionsOf, sql, type Deployment } from './deployment.js';

let d: Deployment;
let store: SessionStore;
before(async () => {
  d = await deploy({ partitions: 4, servers: 2, purgeJobs: true });
  store = connect({ connectionString: d.clientUrl, connections: 2 });
});
after(async () => {
  await store?.close();
  await d?.destroy();
});

const dbOf = (url: string) => new URL(url).pathname.slice(1);

async function sqlStateOf(url: string, text: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(text);
    return 'none';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  } finally {
    await c.end();
  }
}

test("the app's login on the proxy's server cannot call a partition there, and status sees no such role", async () => {
  // Partitions 0 and 1 live on the proxy's server: the app's login exists there.
  for (const p of [0, 1]) {
    const direct = databaseUrl(d.clientUrl, dbOf(d.partitionUrls[p] as string), {
      user: new URL(d.clientUrl).username,
      password: new URL(d.clientUrl).password,
    });
    assert.equal(await sqlStateOf(direct, 'SELECT session.session_generate()'), '42501');
    assert.equal(await sqlStateOf(direct, `SELECT * FROM session.session_get('${'k'.repeat(40)}')`), '42501');
  }
  const s = await proxyStatus({ connectionString: d.proxyUrl });
  assert.deepEqual(
    s.partitions.map((p) => p.directCallers),
    [[], [], [], []],
  );
});

test("status warns when the proxy's roles may call a partition on its server (the old walk-through's role names)", async () => {
  // A second proxy on the first server, installed with the partitions' role names.
  await sql(d.clusters[0]?.url as string, 'CREATE DATABASE proxy_same_roles');
  const proxy = (d.clusters[0] as { urlFor(db: string): string }).urlFor('proxy_same_roles');
  const lines: string[] = [];
  await installProxy({
    connectionString: proxy,
    partitions: d.proxyPartitionUrls,
    clientRole: 'session_client',
    adminRole: 'session_admin',
    log: (l) => lines.push(l),
  });
  assert.equal(
    lines.filter((l) => /^WARNING: partition [01] .*may call its functions directly/.test(l)).length,
    2,
    lines.join('\n'),
  );
  const s = await proxyStatus({ connectionString: proxy });
  assert.deepEqual(
    s.partitions.map((p) => p.directCallers),
    [['session_admin', 'session_client'], ['session_admin', 'session_client'], [], []],
  );

  const errors: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = () => {};
  console.error = (...a: unknown[]) => {
    errors.push(a.join(' '));
  };
  try {
    assert.equal(await scaleoutCommand(['status', '--database-url', proxy]), 0);
  } finally {
    console.log = log;
    console.error = error;
  }
  assert.equal(
    errors.filter((l) =>
      /warning: partition [01] \(part[01]_\w+\) is on the proxy's server and the proxy's role\(s\) session_admin, session_client may call/.test(
        l,
      ),
    ).length,
    2,
    errors.join('\n'),
  );
});

test("session-pg stats on the proxy reports each partition's purge job", async (t) => {
  if (!d.clusters.every((c) => c.cron)) return t.skip('pg_cron is not installed (postgresql-15-cron)');
  const jobs = await partitionPurgeJobs({ connectionString: d.proxyUrl });
  assert.equal(jobs?.length, 4);
  for (const [p, j] of (jobs ?? []).entries()) {
    assert.equal(j.part, p);
    assert.equal(j.database, dbOf(d.partitionUrls[p] as string));
    assert.equal(j.cron?.command, 'CALL session.session_purge_job()', JSON.stringify(j));
    assert.equal(j.cron?.database, j.database);
  }
  const r = cli(['stats', '--database-url', d.proxyUrl]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /purge jobs {9}on each partition:/);
  for (let p = 0; p < 4; p++)
    assert.match(
      r.stdout,
      new RegExp(`p${p} part${p}_\\w+: "\\* \\* \\* \\* \\*" CALL session\\.session_purge_job\\(\\) in part${p}_\\w+`),
    );
  assert.doesNotMatch(r.stdout, /none/);
  // A login that is not the proxy's owner is told why it sees no jobs.
  const other = await partitionPurgeJobs({ connectionString: d.adminUrl });
  assert.match(other?.[0]?.note ?? '', /only the proxy's owner/);
});

test("a partition's own pg_cron job purges an expired session", { timeout: 300_000 }, async (t) => {
  if (!d.clusters.every((c) => c.cron)) return t.skip('pg_cron is not installed (postgresql-15-cron)');
  const key = await store.generate({ expiry: 1, value: 'short-lived' });
  const p = (await partitionsOf(d.proxyUrl, [key]))[0] as number;
  const present = async () =>
    (
      await sql(d.partitionUrls[p] as string, `SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [
        key,
      ])
    ).rowCount === 1;
  assert.equal(await present(), true);
  // pg_cron 1.4 runs jobs once a minute: allow three runs, polling the partition's table.
  const deadline = Date.now() + 180_000;
  while ((await present()) && Date.now() < deadline) await sleep(1000);
  assert.equal(await present(), false, 'the expired session is still there after three minutes');
  const cluster = d.clusters[d.clusterOf[p] as number] as { urlFor(db: string): string; cronDatabase: string };
  const runs = await sql<{ status: string }>(
    cluster.urlFor(cluster.cronDatabase),
    `SELECT d.status FROM cron.job_run_details d
    JOIN cron.job j USING (jobid) WHERE j.jobname = $1 AND d.status = 'succeeded'`,
    [`session-purge-${dbOf(d.partitionUrls[p] as string)}`],
  );
  assert.ok((runs.rowCount ?? 0) >= 1);
});
