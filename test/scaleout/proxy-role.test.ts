// Migration 006 names the proxy role <client role>_proxy. Roles are per server, so that name may
// already belong to another database's install: it must be refused, never granted the rights of
// this database's proxy (which would let the other database's app change this one's settings).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { migrate } from '../../src/migrate.js';
import { migratePartitions } from '../../src/scaleout.js';
import { SessionError } from '../../src/index.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { sql } from './deployment.js';

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ cron: false });
  for (const db of ['b', 'a', 'c']) await sql(cluster.url, `CREATE DATABASE ${db}`);
});
after(() => cluster?.destroy());

const memberOf = async (role: string, of: string) =>
  (
    await sql<{ m: boolean }>(
      cluster.url,
      `SELECT CASE WHEN to_regrole($2) IS NULL THEN false ELSE pg_has_role($1, $2, 'MEMBER') END AS m`,
      [role, of],
    )
  ).rows[0]?.m;

test("another database's client role named like this one's proxy role is refused, and gets nothing", async () => {
  // Database B: its app's role is shop_proxy.
  await migrate({ connectionString: cluster.urlFor('b'), clientRole: 'shop_proxy', adminRole: 'shop_proxy_admin' });
  // Database A, client role shop: its proxy role would be shop_proxy.
  await assert.rejects(
    migrate({ connectionString: cluster.urlFor('a'), clientRole: 'shop', adminRole: 'shop_admin' }),
    (err: unknown) => {
      assert.ok(err instanceof SessionError, String(err));
      assert.equal(err.sqlState, '42710');
      assert.match(err.message, /shop_proxy.*not created by session-postgresql/);
      return true;
    },
  );
  assert.equal(await memberOf('shop_proxy', 'shop'), false);
  assert.equal(await memberOf('shop_proxy', 'shop_admin'), false);
  // Nothing of 006 was applied on A (one transaction): B's role has no right there.
  const a = await sql<{ n: string }>(cluster.urlFor('a'), `SELECT count(*) AS n FROM pg_proc WHERE proname LIKE 'partition\\_%'`);
  assert.equal(a.rows[0]?.n, '0');

  // With a proxy role of its own, A installs; B's role still has nothing of A.
  await migratePartitions([cluster.urlFor('a')], {
    clientRole: 'shop',
    adminRole: 'shop_admin',
    proxyRole: 'shop_px',
    log: false,
  });
  assert.equal(await memberOf('shop_px', 'shop_admin'), true);
  assert.equal(await memberOf('shop_proxy', 'shop_admin'), false);
  const grants = await sql<{ f: boolean; s: boolean }>(
    cluster.urlFor('a'),
    `SELECT
    has_function_privilege('shop_proxy', 'session.partition_generate(text, bigint, text, text, text, bigint)', 'EXECUTE') AS f,
    has_function_privilege('shop_proxy', 'session.session_set_default_period(bigint)', 'EXECUTE') AS s`,
  );
  assert.deepEqual(grants.rows[0], { f: false, s: false });
});

test('a proxy role made by an earlier install on the same server is shared, as before', async () => {
  await migrate({
    connectionString: cluster.urlFor('c'),
    clientRole: 'shop',
    adminRole: 'shop_admin',
    options: '-c session_postgresql.proxy_role=shop_px',
  });
  const r = await sql<{ f: boolean }>(
    cluster.urlFor('c'),
    `SELECT has_function_privilege('shop_px', 'session.partition_generate(text, bigint, text, text, text, bigint)', 'EXECUTE') AS f`,
  );
  assert.equal(r.rows[0]?.f, true);
});

test('a role created by hand before migrating is refused until the DBA marks it as the proxy role', async () => {
  await sql(cluster.url, 'CREATE DATABASE d');
  await sql(cluster.url, 'CREATE ROLE hand_made NOLOGIN');
  await assert.rejects(
    migratePartitions([cluster.urlFor('d')], { proxyRole: 'hand_made', log: false }),
    /hand_made.*not created by session-postgresql/,
  );
  await sql(cluster.url, `COMMENT ON ROLE hand_made IS 'session-postgresql proxy role'`);
  await migratePartitions([cluster.urlFor('d')], { proxyRole: 'hand_made', log: false });
  assert.equal(await memberOf('hand_made', 'session_client'), true);
});
