// What a partition move must carry over and must not leak: every setting of session.config reaches
// the new partition (an absolute lifetime left behind would let its sessions outlive the admin's
// cap), and the publisher's password never appears in either server's log, with every statement,
// its duration and the plans of nested statements logged.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { connect, type SessionStore } from '../../src/index.js';
import { connectAdmin } from '../../src/admin-index.js';
import { movePartition } from '../../src/scaleout.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { databaseUrl } from '../harness/urls.js';
import { deploy, newPartition, requirePassword, sql, type Deployment } from './deployment.js';

const logEverything = [
  'log_min_duration_statement = 0',
  "log_statement = 'all'",
  "session_preload_libraries = 'auto_explain'",
  'auto_explain.log_min_duration = 0',
  'auto_explain.log_nested_statements = on',
  'auto_explain.log_verbose = on',
];

let d: Deployment;
let target: Cluster;
let store: SessionStore;
before(async () => {
  d = await deploy({ partitions: 4, servers: 2, settings: logEverything });
  target = await startCluster({ cron: false, settings: logEverything });
  store = connect({ connectionString: d.clientAdminUrl, connections: 2 });
});
after(async () => {
  await store?.close();
  target?.destroy();
  await d?.destroy();
});

/** Runs a statement that holds a secret with this session's logging off (the test's own setup). */
async function quietly(url: string, text: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`SET log_statement = 'none'`);
    await c.query('SET log_min_duration_statement = -1');
    await c.query('SET auto_explain.log_min_duration = -1');
    await c.query(text);
  } finally {
    await c.end();
  }
}

const config = async (url: string) =>
  (await sql<{ c: Record<string, unknown> }>(url, `SELECT to_jsonb(c) AS c FROM session.config c`)).rows[0]?.c;

test('a move copies every setting and sends no password in any statement: both servers log everything', {
  timeout: 300_000,
}, async () => {
  // Settings that differ from the defaults, on every partition.
  const admin = connectAdmin({ connectionString: d.clientAdminUrl, connections: 1 });
  try {
    await admin.setDefaultPeriod(7200);
    await admin.setAbsoluteLifetime(3600);
  } finally {
    await admin.close();
  }
  for (const url of d.partitionUrls) await sql(url, 'UPDATE session.config SET max_value_bytes = 4096');
  for (let i = 0; i < 40; i++) await store.generate({ value: `v${i}` });

  // The new server reaches the old one as a login with a password (checked: scram-sha-256).
  const moving = 1;
  const source = d.clusters[d.clusterOf[moving] as number] as Cluster;
  const secret = `pw${randomBytes(12).toString('hex')}`;
  await quietly(source.url, `CREATE ROLE session_mover LOGIN SUPERUSER PASSWORD '${secret}'`);
  requirePassword(source, 'session_mover');
  const fromDb = new URL(d.partitionUrls[moving] as string).pathname.slice(1);
  const from = databaseUrl(d.partitionUrls[moving] as string, fromDb, { user: 'session_mover', password: secret });

  const to = await newPartition(d, target, 'moved');

  // A publisher the new server cannot log in to: the move fails, names no password, and leaves no
  // replication slot (which would hold the old server's WAL) nor anything that stops a second try.
  const wrong = `pw${randomBytes(12).toString('hex')}`;
  const bad = databaseUrl(d.partitionUrls[moving] as string, fromDb, { user: 'session_mover', password: wrong });
  await assert.rejects(
    movePartition({ proxies: [d.proxyUrl], partition: moving, from, to, publisherUrl: bad, log: false }),
    (err: unknown) => {
      assert.match(String((err as Error).message), /password authentication failed/);
      assert.ok(!JSON.stringify(err, Object.getOwnPropertyNames(err)).includes(wrong));
      return true;
    },
  );
  assert.equal((await sql(source.url, 'SELECT 1 FROM pg_replication_slots')).rowCount, 0);

  const before = await config(d.partitionUrls[moving] as string);
  await movePartition({ proxies: [d.proxyUrl], partition: moving, from, to, log: false });

  // Every partition, the moved one on its new server included, has the same whole configuration.
  const now = [...d.partitionUrls.map((u, p) => (p === moving ? to : u))];
  for (const url of now) assert.deepEqual(await config(url), before, url);
  assert.equal((before as { absolute_lifetime: number }).absolute_lifetime, 3600);
  // And the moved partition's new sessions obey the cap.
  let onMoved = false;
  for (let i = 0; i < 200 && !onMoved; i++) {
    const key = await store.generate({ expiry: 86400 * 30, value: 'x' });
    const row = await sql<{ left: number }>(
      to,
      `SELECT extract(epoch FROM expires_at - now())::int AS left FROM session.sessions
      WHERE digest = sha256(convert_to($1, 'UTF8'))`,
      [key],
    );
    if (row.rowCount === 1) {
      onMoved = true;
      assert.ok((row.rows[0]?.left ?? Infinity) <= 3600, `${row.rows[0]?.left} s left`);
    }
  }
  assert.ok(onMoved, 'no new session landed on the moved partition');

  // Both servers logged the move's statements (so the check below is not vacuous), never the password.
  const logs = [source.logFile, target.logFile].map((f) => readFileSync(f, 'utf8'));
  assert.match(logs[0] as string, /PUBLICATION session_move_p1/);
  assert.match(logs[1] as string, /execute <unnamed>: SELECT pg_temp\.session_move_subscribe\(\$1, \$2\)/);
  for (const [i, text] of logs.entries()) {
    assert.ok(!text.includes(secret), `the password is in the log of server ${i}`);
    assert.ok(!text.includes(wrong), `the wrong password is in the log of server ${i}`);
  }
});
