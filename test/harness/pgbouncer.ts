// A throwaway PgBouncer in a temp dir on a free loopback port, from the binary on this machine
// (Debian's `pgbouncer`), with the package's stock settings except where the caller says.
// Used by the tests and the benchmark.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './cluster.js';

export interface PgBouncer {
  port: number;
  /** A URL for `database` through this PgBouncer. */
  url(database: string, user: string, password: string): string;
  /** PgBouncer's own log. */
  log(): string;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /** The PostgreSQL server it pools for (127.0.0.1). */
  serverPort: number;
  /** Every database of the server is reachable under its own name (a `*` entry). */
  poolMode: 'transaction' | 'session';
  /** Login roles and their passwords (auth_type = md5, as in Debian's stock pgbouncer.ini). */
  users: Record<string, string>;
  /** More `[pgbouncer]` settings, e.g. `default_pool_size = 3`. */
  settings?: string[];
}

const candidates = [process.env.PGBOUNCER, '/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'];

/** The pgbouncer binary, or undefined when it is not installed (tests then skip, saying so). */
export function findPgBouncer(): string | undefined {
  return candidates.find((p): p is string => p !== undefined && existsSync(p));
}

/** PgBouncer refuses to run as root: as root, run it as the OS user that runs the test clusters. */
function osUser(): string | undefined {
  return process.getuid?.() === 0 ? (process.env.PG_TEST_OS_USER ?? 'postgres') : undefined;
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const binary = findPgBouncer();
  if (binary === undefined) throw new Error('pgbouncer is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'session-pgbouncer-'));
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  const logFile = join(dir, 'pgbouncer.log');
  writeFileSync(
    join(dir, 'userlist.txt'),
    Object.entries(options.users)
      .map(([u, p]) => `"${u}" "${p}"\n`)
      .join(''),
  );
  writeFileSync(
    ini,
    [
      '[databases]',
      `* = host=127.0.0.1 port=${options.serverPort}`,
      '[pgbouncer]',
      `logfile = ${logFile}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = md5',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `pool_mode = ${options.poolMode}`,
      ...(options.settings ?? []),
      '',
    ].join('\n'),
  );
  const user = osUser();
  if (user !== undefined) {
    const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  const child: ChildProcess = spawn(binary, [...(user === undefined ? [] : ['-u', user]), ini], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  for (let i = 0; !(await canConnect(port)); i += 1) {
    if (child.exitCode !== null || i > 200) {
      child.kill('SIGKILL');
      throw new Error(`pgbouncer did not start: ${log()}`);
    }
    await sleep(50);
  }
  return {
    port,
    url: (database, u, password) => `postgresql://${u}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    log,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
