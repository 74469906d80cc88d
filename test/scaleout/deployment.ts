// A scale-out deployment on this machine for the tests and the bench: N partition databases on S
// throwaway clusters (partition p on cluster floor(p * S / N)), a proxy database on the first
// cluster, installed the way docs/scale-out.md tells a user to. Passwords are checked
// (scram-sha-256) for the proxy's partition login, so the user mapping is really used. The clusters
// load pg_cron (its database is `cron`); `purgeJobs` schedules each partition's purge job there.
// The proxy has its own role pair (the installer's defaults), distinct from the partitions'.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { schedulePurge } from '../../src/admin.js';
import { installProxy, migratePartitions, proxyRoles } from '../../src/scaleout.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { databaseUrl } from '../harness/urls.js';

export interface Deployment {
  clusters: Cluster[];
  /** Owner (superuser) URLs of the partition databases, in partition order. */
  partitionUrls: string[];
  /** The URLs the proxy was installed with: the partition login and its password. */
  proxyPartitionUrls: string[];
  /** The proxy database as its owner (superuser). */
  proxyUrl: string;
  /** The proxy database as a login in the proxy's client role only. */
  clientUrl: string;
  /** The proxy database as a login in the proxy's client and admin roles (as test/client.test.ts uses). */
  clientAdminUrl: string;
  /** The proxy database as a login in the proxy's admin role only. */
  adminUrl: string;
  /** The cluster index of each partition. */
  clusterOf: number[];
  /** Runs SQL as superuser on a URL. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    url: string,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  destroy(): Promise<void>;
}

export const partitionLogin = 'session_proxy_login';

/** Requires a password (scram-sha-256) from `role` over TCP, ahead of the trust lines initdb wrote. */
export function requirePassword(cluster: Cluster, role: string): void {
  const hba = join(dirname(cluster.logFile), 'data', 'pg_hba.conf');
  writeFileSync(hba, `host all ${role} 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
  const r = cluster.run('pg_ctl', ['-D', join(dirname(cluster.logFile), 'data'), 'reload']);
  if (r.status !== 0) throw new Error(`pg_ctl reload failed: ${String(r.stderr)}`);
}

export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<R>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query<R>(text, values);
  } finally {
    await c.end();
  }
}

/**
 * The partition each key routes to (in key order), asked in one query: a connection per key
 * would run the server out of connections when many keys are checked at once.
 */
export async function partitionsOf(proxyUrl: string, keys: string[], partitions = 4): Promise<number[]> {
  const r = await sql<{ p: number }>(
    proxyUrl,
    'SELECT session_proxy.key_hash(k) & ($2::int - 1) AS p FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i',
    [keys, partitions],
  );
  return r.rows.map((row) => Number(row.p));
}

export interface DeployOptions {
  partitions?: number;
  servers?: number;
  /** postgresql.conf lines for every cluster (e.g. wal_level = logical). */
  settings?: string[];
  tcpUserTimeoutMs?: number;
  queryTimeoutSeconds?: number;
  /** Clusters to reuse instead of starting `servers` new ones. */
  clusters?: Cluster[];
  /** Schedule each partition's pg_cron purge job (`session-pg schedule`), as the walkthrough does. */
  purgeJobs?: boolean;
}

export async function deploy(options: DeployOptions = {}): Promise<Deployment> {
  const n = options.partitions ?? 4;
  const servers = options.servers ?? 2;
  const clusters: Cluster[] = options.clusters ?? [];
  try {
    while (clusters.length < servers) {
      clusters.push(
        await startCluster({ settings: ['wal_level = logical', 'max_connections = 300', ...(options.settings ?? [])] }),
      );
    }
    const password = randomBytes(12).toString('hex');
    const tag = randomBytes(3).toString('hex');
    const clusterOf = Array.from({ length: n }, (_, p) => Math.floor((p * servers) / n));
    const partitionUrls: string[] = [];
    const proxyPartitionUrls: string[] = [];
    for (let p = 0; p < n; p++) {
      const cluster = clusters[clusterOf[p] as number] as Cluster;
      const db = `part${p}_${tag}`;
      await sql(cluster.url, `CREATE DATABASE ${db}`);
      partitionUrls.push(cluster.urlFor(db));
      proxyPartitionUrls.push(databaseUrl(cluster.urlFor(db), db, { user: partitionLogin, password }));
    }
    await migratePartitions(partitionUrls, { log: false });
    if (options.purgeJobs) {
      for (const cluster of clusters)
        if (cluster.cron) await sql(cluster.urlFor(cluster.cronDatabase), 'CREATE EXTENSION IF NOT EXISTS pg_cron');
      for (const [p, url] of partitionUrls.entries()) {
        const cluster = clusters[clusterOf[p] as number] as Cluster;
        if (cluster.cron) await schedulePurge({ connectionString: url, cronDatabaseUrl: cluster.urlFor(cluster.cronDatabase) });
      }
    }
    for (const cluster of clusters) {
      await sql(
        cluster.url,
        `DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${partitionLogin}') THEN CREATE ROLE ${partitionLogin} LOGIN IN ROLE session_proxy; END IF;
      END $$`,
      );
      await sql(cluster.url, `ALTER ROLE ${partitionLogin} PASSWORD '${password}'`);
      requirePassword(cluster, partitionLogin);
    }
    const first = clusters[0] as Cluster;
    const proxyDb = `proxy_${tag}`;
    await sql(first.url, `CREATE DATABASE ${proxyDb}`);
    const proxyUrl = first.urlFor(proxyDb);
    await installProxy({
      connectionString: proxyUrl,
      partitions: proxyPartitionUrls,
      log: false,
      ...(options.tcpUserTimeoutMs === undefined ? {} : { tcpUserTimeoutMs: options.tcpUserTimeoutMs }),
      ...(options.queryTimeoutSeconds === undefined ? {} : { queryTimeoutSeconds: options.queryTimeoutSeconds }),
    });
    const login = async (name: string, roles: string) => {
      const pw = randomBytes(12).toString('hex');
      await sql(first.url, `CREATE ROLE ${name}_${tag} LOGIN PASSWORD '${pw}' IN ROLE ${roles}`);
      return databaseUrl(proxyUrl, proxyDb, { user: `${name}_${tag}`, password: pw });
    };
    return {
      clusters,
      partitionUrls,
      proxyPartitionUrls,
      proxyUrl,
      clientUrl: await login('app', proxyRoles.client),
      clientAdminUrl: await login('appadm', `${proxyRoles.client}, ${proxyRoles.admin}`),
      adminUrl: await login('ops', proxyRoles.admin),
      clusterOf,
      query: sql,
      async destroy() {
        for (const c of clusters) c.destroy();
      },
    };
  } catch (err) {
    for (const c of clusters) c.destroy();
    throw err;
  }
}

/**
 * A database ready to receive a moved partition: an ordinary install on `cluster`, and the
 * proxy's partition login there with the same password. Resolves its owner URL.
 */
export async function newPartition(d: Deployment, cluster: Cluster, database: string): Promise<string> {
  await sql(cluster.url, `CREATE DATABASE ${database}`);
  const url = cluster.urlFor(database);
  await migratePartitions([url], { log: false });
  const password = new URL(d.proxyPartitionUrls[0] as string).password;
  await sql(cluster.url, `CREATE ROLE ${partitionLogin} LOGIN PASSWORD '${password}' IN ROLE session_proxy`);
  requirePassword(cluster, partitionLogin);
  return url;
}

/** Appends to a file of the cluster's data directory (for tests that change settings). */
export function appendConf(cluster: Cluster, lines: string[]): void {
  appendFileSync(join(dirname(cluster.logFile), 'data', 'postgresql.conf'), `\n${lines.join('\n')}\n`);
}
