// The migration when role session_client does not exist and the migrating role may not create it.
// Roles are cluster-wide and the shared cluster already has session_client, so this runs on a
// private cluster: the migration must still succeed, print the exact SQL a DBA must run, and that
// SQL, run as printed, must give the app role the documented privileges.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/admin-index.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { databaseUrl } from './harness/urls.js';
import { shippedMigrations } from './helpers.js';

const shipped = shippedMigrations();

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
  assert.deepEqual(
    await migrate({
      connectionString: owner,
      log: (l) => {
        lines.push(l);
      },
    }),
    shipped,
  );
  const output = lines.join('\n');
  // 001, 003, 004 and 005 each say what is missing; only the last one's SQL, the whole of it, is shown.
  assert.match(output, /WARNING: session-postgresql: plain_owner may not create roles/);
  const hints = [...output.matchAll(/HINT: A DBA must run: (.*?) ?Then GRANT session_client TO <your application role>;/g)];
  const hint = hints[hints.length - 1];
  assert.ok(hint?.[1], output);
  assert.equal((await query(admin, `SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'session_client'`)).rows[0].n, 0);

  // The DBA runs the printed SQL verbatim, then grants the role to the application's login role.
  await query(admin, hint[1]);
  await query(admin, `CREATE ROLE web LOGIN PASSWORD 'pw' IN ROLE session_client`);
  await query(admin, `CREATE ROLE ops LOGIN PASSWORD 'pw' IN ROLE session_admin`);
  const app = databaseUrl(admin, 'app', { user: 'web', password: 'pw' });
  const ops = databaseUrl(admin, 'app', { user: 'ops', password: 'pw' });

  const key = (await query(app, `SELECT session.session_generate(60, 'v') AS key`)).rows[0].key as string;
  assert.equal(key.length, 64);
  const got = await query(app, `SELECT value, period FROM session.session_get('${key}')`);
  assert.equal(got.rows[0].value, 'v');
  assert.equal((await query(app, `SELECT session.session_set('${key}', 'w') AS ok`)).rows[0].ok, true);
  assert.equal((await query(app, 'SELECT session.session_count() AS n')).rows[0].n, '1');
  for (const table of ['session.sessions', 'session.config', 'session.purge_state']) {
    await assert.rejects(query(app, `SELECT * FROM ${table}`), (e: { code?: string }) => e.code === '42501', table);
  }
  // The administrative calls are the admin role's, not the application's.
  for (const call of [
    'SELECT * FROM session.session_stats()',
    'SELECT session.session_set_default_period(1)',
    'SELECT session.session_purge()',
  ]) {
    await assert.rejects(query(app, call), (e: { code?: string }) => e.code === '42501', call);
  }
  assert.equal((await query(ops, 'SELECT session.session_purge() AS n')).rows[0].n, '0');
  await query(ops, 'SELECT session.session_set_default_period(3600)');
  assert.equal((await query(ops, 'SELECT live FROM session.session_stats()')).rows[0].live, '1');
  await assert.rejects(query(ops, `SELECT session.session_get('${key}')`), (e: { code?: string }) => e.code === '42501');
});
