// A primary with a synchronous streaming standby (made with pg_basebackup -R), both throwaway
// clusters on loopback, for the failover and hot-standby tests.
import { appendFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrate } from '../../src/admin-index.js';
import { freePort, startCluster, type Cluster } from './cluster.js';

export interface Standby {
  port: number;
  urlFor(database: string, user?: string): string;
  /** `pg_ctl promote -w`: the standby becomes a primary. */
  promote(): void;
  /** The postmaster's process id. */
  pid(): number;
}

export interface ReplicatedPair {
  primary: Cluster;
  standby: Standby;
  /** Stops both servers and removes their files. */
  destroy(): void;
}

/** The application_name the standby connects with, as `synchronous_standby_names` names it. */
const standbyName = 'standby1';

/** Starts a primary whose commits wait for a standby, and that standby, streaming in sync. */
export async function startReplicatedPair(settings: string[] = []): Promise<ReplicatedPair> {
  const primary = await startCluster({
    cron: false,
    settings: [
      'wal_level = replica',
      'max_wal_senders = 4',
      'hot_standby = on',
      `synchronous_standby_names = '${standbyName}'`,
      ...settings,
    ],
  });
  const data = join(dirname(primary.logFile), 'standby');
  const port = await freePort();
  const must = (r: ReturnType<Cluster['run']>, what: string) => {
    if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${String(r.stderr)}${String(r.stdout)}`);
  };
  try {
    must(
      primary.run('pg_basebackup', [
        '-h',
        '127.0.0.1',
        '-p',
        String(primary.port),
        '-U',
        'postgres',
        '-D',
        data,
        '-R',
        '-X',
        'stream',
        '-c',
        'fast',
        '--no-sync',
      ]),
      'pg_basebackup',
    );
    // The copy has the primary's settings: its own port and name, and once promoted it must not
    // wait for a standby of its own.
    appendFileSync(
      join(data, 'postgresql.conf'),
      `\nport = ${port}\ncluster_name = '${standbyName}'\nsynchronous_standby_names = ''\n`,
    );
    must(
      primary.run('pg_ctl', ['-D', data, '-l', join(dirname(data), 'standby.log'), '-w', '-t', '60', 'start']),
      'starting the standby',
    );
  } catch (err) {
    primary.destroy();
    throw err;
  }
  const urlFor = (database: string, role = 'postgres') => `postgresql://${role}@127.0.0.1:${port}/${database}`;
  const pair: ReplicatedPair = {
    primary,
    standby: {
      port,
      urlFor,
      promote: () => must(primary.run('pg_ctl', ['-D', data, '-w', '-t', '60', 'promote']), 'pg_ctl promote'),
      pid: () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n', 1)[0]),
    },
    destroy() {
      primary.run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      primary.destroy();
    },
  };
  try {
    await waitForSync(primary.url);
  } catch (err) {
    pair.destroy();
    throw err;
  }
  return pair;
}

/** Waits (bounded) until the standby streams as the synchronous one. */
async function waitForSync(primaryUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: primaryUrl });
  await c.connect();
  try {
    for (let i = 0; i < 300; i += 1) {
      const r = await c.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'`, [
        standbyName,
      ]);
      if (r.rowCount === 1) return;
      await sleep(100);
    }
    throw new Error('the standby did not become synchronous within 30 s');
  } finally {
    await c.end();
  }
}

/** The postmaster of a server, from one of its backends' parent process. */
export function postmasterOf(backendPid: number): number {
  const status = readFileSync(`/proc/${backendPid}/status`, 'utf8');
  return Number(/^PPid:\s*(\d+)/m.exec(status)?.[1]);
}

/** Creates database `app`, migrates it and makes a LOGIN role `app` in session_client (trust auth). */
export async function installApp(superuserUrl: string, appUrl: string): Promise<void> {
  await run(superuserUrl, 'CREATE DATABASE app');
  await migrate({ connectionString: appUrl, log: false });
  await run(appUrl, 'CREATE ROLE app LOGIN IN ROLE session_client');
}

async function run(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}
