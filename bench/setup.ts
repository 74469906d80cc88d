// The benchmarks' server: a throwaway cluster (or $DATABASE_URL), fresh databases migrated with
// migrate(), and a LOGIN role that is a member of session_client, as an application would use.
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import pg from 'pg';
import { migrate } from '../src/admin-index.js';
import { findBindir, startCluster, type Cluster } from '../test/harness/cluster.js';
import { databaseUrl } from '../test/harness/urls.js';

export interface BenchDatabase {
  name: string;
  /** Superuser (owner) URL of the database. */
  adminUrl: string;
  /** The application role's URL (member of session_client). */
  appUrl: string;
  bindir: string;
  /** Runs SQL as the owner on a connection kept open for the whole run. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
}

export interface BenchServer {
  bindir: string;
  /**
   * Runs pg_test_fsync (a few seconds) on the data directory's disk as the server's OS user, with
   * `env` added (e.g. the slow-fsync preload). A string says why it could not run.
   */
  testFsync(env?: Record<string, string>): FsyncFigure | string;
  /** Creates `name` afresh (dropping it if it exists), migrates it and lets the app role in. */
  database(name: string): Promise<BenchDatabase>;
  /** Drops a database made by `database` (to give its disk space back). */
  drop(name: string): Promise<void>;
  /** Closes the owner connections and removes the throwaway cluster. */
  destroy(): Promise<void>;
}

export const appRole = 'session_bench_app';
const appPassword = 'session-bench-app';

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** pg_test_fsync's figure for one 8 kB write followed by fdatasync (PostgreSQL's default on Linux). */
export interface FsyncFigure {
  fdatasyncUs: number;
  opsPerSec: number;
}

/**
 * Starts the cluster (unless DATABASE_URL is set); it is destroyed on SIGINT/SIGTERM too.
 * `settings` are postgresql.conf lines; `env` is added to the server's environment.
 */
export async function openBenchServer(settings: string[] = [], env?: Record<string, string>): Promise<BenchServer> {
  let cluster: Cluster | undefined;
  const owners = new Map<string, pg.Client>();
  const onSignal = (signal: NodeJS.Signals) => {
    cluster?.destroy();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    // No pg_cron: a purge job firing every minute would disturb the measurements.
    cluster = await startCluster({ cron: false, settings, ...(env ? { env } : {}) });
    serverUrl = cluster.url;
  }
  const url = serverUrl;
  const destroy = async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all([...owners.values()].map((c) => c.end().catch(() => {})));
    cluster?.destroy();
  };
  try {
    await withClient(url, (c) =>
      c.query(`DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${appRole}') THEN
          CREATE ROLE ${appRole} LOGIN PASSWORD '${appPassword}';
        END IF;
      END $$`),
    );
  } catch (err) {
    await destroy();
    throw err;
  }
  return {
    bindir: cluster?.bindir ?? findBindir(),
    testFsync: (extraEnv) =>
      cluster ? pgTestFsync(cluster, extraEnv) : "DATABASE_URL is set: the server's disk is not reachable from here",
    async database(name) {
      await withClient(url, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.query(`CREATE DATABASE ${name}`);
      });
      const adminUrl = databaseUrl(url, name);
      await migrate({ connectionString: adminUrl, log: false });
      const owner = new pg.Client({ connectionString: adminUrl });
      owner.on('error', () => {});
      await owner.connect();
      owners.set(name, owner);
      await owner.query(`GRANT session_client TO ${appRole}`);
      return {
        name,
        adminUrl,
        appUrl: databaseUrl(url, name, { user: appRole, password: appPassword }),
        bindir: cluster?.bindir ?? findBindir(),
        sql: async (text, values) => (await owner.query(text, values)).rows,
      };
    },
    async drop(name) {
      await owners
        .get(name)
        ?.end()
        .catch(() => {});
      owners.delete(name);
      await withClient(url, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
    destroy,
  };
}

/**
 * pg_test_fsync's first section (one 8 kB write, then each sync method) is all we need: stop it
 * after a few seconds, by which time it has printed the fdatasync line (it flushes stdout before
 * each test). SIGINT makes it delete its test file.
 */
function pgTestFsync(cluster: Cluster, env?: Record<string, string>): FsyncFigure | string {
  const r = cluster.run('pg_test_fsync', ['-s', '1', '-f', 'pg_test_fsync.tmp'], {
    timeout: 7000,
    killSignal: 'SIGINT',
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  const out = String(r.stdout ?? '');
  const m = /^\s*fdatasync\s+([\d.]+) ops\/sec\s+(\d+) usecs\/op/m.exec(out);
  if (!m)
    return `pg_test_fsync printed no fdatasync figure (${r.error?.message ?? `exit ${r.status}`}): ${String(r.stderr ?? '').slice(0, 300)}${out.slice(0, 300)}`;
  return { opsPerSec: Number(m[1]), fdatasyncUs: Number(m[2]) };
}

/** Facts about the machine, recorded with every result. */
export interface MachineFacts {
  date: string;
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  postgres: string;
  loadAverage: string;
  loadAverageEnd?: string;
  /** The 1-minute load average every 30 s during the run: other work on the machine shows here. */
  loadSamples?: number[];
}

export const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').trim();

/** Samples the 1-minute load average every 30 s until stopped; returns the samples. */
export function sampleLoad(): () => number[] {
  const samples: number[] = [];
  const take = () => samples.push(Number(loadAverage().split(' ')[0]));
  take();
  const timer = setInterval(take, 30_000);
  timer.unref();
  return () => {
    clearInterval(timer);
    take();
    return samples;
  };
}

export async function machineFacts(db: BenchDatabase): Promise<MachineFacts> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const [row] = await db.sql<{ version: string }>('SELECT version()');
  return {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres: row?.version ?? 'unknown',
    loadAverage: loadAverage(),
  };
}
