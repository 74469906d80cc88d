// The migration when role session_client does not exist and the migrating role may not create it.
// Roles are cluster-wide and the shared cluster already has session_client, so this runs on a
// private cluster: the migration must still succeed, print the exact SQL a DBA must run, and that
// SQL, run as printed, must give the app role the documented privileges.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/index.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { databaseUrl } from './harness/urls.js';

let cluster: Cluster | undefined;
before(async () => {
  cluster = await startCluster({ cron: false });
});
after(() => cluster?.destroy());

async function query(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

test('without CREATEROLE the migration succeeds and prints the SQL a DBA must run; that SQL works as printed', async () => {
  assert.ok(cluster);
  const superuser = cluster.urlFor('postgres');
  await query(superuser, `CREATE ROLE plain_owner LOGIN PASSWORD 'pw'`);
  await query(superuser, 'CREATE DATABASE app OWNER plain_owner');
  const admin = cluster.urlFor('app');
  const owner = databaseUrl(admin, 'app', { user: 'plain_owner', password: 'pw' });

  const lines: string[] = [];
  assert.deepEqual(await migrate({ connectionString: owner, log: (l) => { lines.push(l); } }), ['001_core', '002_purge_job']);
  const output = lines.join('\n');
  assert.match(output, /WARNING: session-postgresql: role session_client does not exist and plain_owner may not create roles/);
  const hint = /HINT: A DBA must run: (.*) Then GRANT session_client TO <your application role>;/.exec(output);
  assert.ok(hint?.[1], output);
  assert.equal((await query(admin, `SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'session_client'`)).rows[0].n, 0);

  // The DBA runs the printed SQL verbatim, then grants the role to the application's login role.
  await query(admin, hint[1]);
  await query(admin, `CREATE ROLE web LOGIN PASSWORD 'pw' IN ROLE session_client`);
  const app = databaseUrl(admin, 'app', { user: 'web', password: 'pw' });

  const key = (await query(app, `SELECT session.session_generate(60, 'v') AS key`)).rows[0].key as string;
  assert.equal(key.length, 64);
  const got = await query(app, `SELECT value, period FROM session.session_get('${key}')`);
  assert.equal(got.rows[0].value, 'v');
  assert.equal((await query(app, `SELECT session.session_set('${key}', 'w') AS ok`)).rows[0].ok, true);
  assert.equal((await query(app, 'SELECT session.session_count() AS n')).rows[0].n, '1');
  for (const table of ['session.sessions', 'session.config', 'session.purge_state']) {
    await assert.rejects(query(app, `SELECT * FROM ${table}`), (e: { code?: string }) => e.code === '42501', table);
  }
  // The administrative helper stays the owner's.
  await assert.rejects(query(app, 'SELECT * FROM session.session_stats()'), (e: { code?: string }) => e.code === '42501');
});
