// DBA operations behind the CLI: purge everything, statistics, the pg_cron job, the psql script.
// They connect as the role given (normally the owner); none is needed by applications.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { withClient, type ConnectionOptions } from './connection.js';
import { SessionError } from './errors.js';
import { connect } from './store.js';

const sqlDir = new URL('../../sql/', import.meta.url);
/** What the pg_cron job runs: session_purge() until nothing is left, paced, within 30 s (sql/002). */
export const purgeCommand = 'CALL session.session_purge_job()';
export const defaultSchedule = '* * * * *';

/** Progress of {@link purgeAll}, after each batch. `busyMs`: time spent inside purge calls. */
export interface PurgeProgress { deleted: number; batches: number; elapsedMs: number; busyMs: number }

/** How long purgeAll rests after a call, as a multiple of that call's duration, by default. */
export const defaultPurgePause = 4;

/** The pause factors purgeAll accepts (the CLI checks with this too, to exit 2 on bad usage). */
export const validPurgePause = (pause: unknown): pause is number => typeof pause === 'number' && pause >= 0 && pause <= 1000;

/**
 * Calls session_purge until it returns 0; each call is its own short transaction. After a call that
 * deleted rows it rests `pause` times as long as the call took (default 4), so that draining a
 * backlog leaves the server to the application: on the 2-core bench machine, back-to-back calls
 * raised the gets' p99 2.6-3.9x, paced by 4x only 1.65x (docs/performance.md#purge). 0: back to back.
 */
export async function purgeAll(options: ConnectionOptions & { batchSize?: number; pause?: number }, onProgress: (p: PurgeProgress) => void): Promise<PurgeProgress> {
  const { batchSize, pause = defaultPurgePause, ...connection } = options;
  if (!validPurgePause(pause)) {
    throw new SessionError('invalid_argument', 'pause must be a number from 0 to 1000');
  }
  const store = connect({ ...connection, connections: 1, applicationName: 'session-pg purge' });
  const started = Date.now();
  const progress: PurgeProgress = { deleted: 0, batches: 0, elapsedMs: 0, busyMs: 0 };
  try {
    for (;;) {
      const callStarted = performance.now();
      const n = await store.purge(batchSize === undefined ? {} : { batchSize });
      const took = performance.now() - callStarted;
      progress.batches += 1;
      progress.deleted += n;
      progress.busyMs += took;
      progress.elapsedMs = Date.now() - started;
      onProgress({ ...progress });
      if (n === 0) return progress;
      if (pause > 0) await new Promise((resolve) => setTimeout(resolve, took * pause));
    }
  } finally {
    await store.close();
  }
}

/** One run of the pg_cron job, from cron.job_run_details (newest first in {@link CronJob}). */
export interface CronRun { status: string; start: Date | null; end: Date | null; message: string | null }
export interface CronJob { database: string; schedule: string; command: string; active: boolean; lastRuns: CronRun[] }
export interface Stats {
  live: number; expired: number; tableBytes: number; indexBytes: number; defaultPeriod: number; maxValueBytes: number;
  /** The purge job as pg_cron in this database (or `cronDatabaseUrl`) sees it; null if none. */
  cron: CronJob | null;
  /** Why `cron` is null. */
  cronNote?: string;
  /** Set when the job's latest run failed: what failed and how to fix it (see {@link cronRunsWarning}). */
  cronWarning?: string;
}

/** How many of the job's latest runs stats shows and the failure check reads. */
const recentRuns = 5;

// pg_cron's return_message for a run whose libpq connection was refused; Debian's 1.4 says
// "connection failed". Jobs connect to cron.host unless cron.use_background_workers is on.
const connectFix = 'pg_cron runs jobs over a libpq connection to cron.host (default localhost) as the job\'s role: '
  + 'allow it in pg_hba.conf (e.g. "host <database> <role> 127.0.0.1/32 scram-sha-256" with a password in '
  + "the job role's ~/.pgpass, or trust), or set cron.use_background_workers = on in postgresql.conf and restart";

/**
 * A one-line warning when the latest finished run of the purge job failed, with the usual fix;
 * undefined when it succeeded or there is no finished run. Expired sessions are never returned,
 * but while the job fails nothing is purged and the table grows.
 */
export function cronRunsWarning(runs: CronRun[]): string | undefined {
  const finished = runs.filter((r) => r.status === 'succeeded' || r.status === 'failed');
  const latest = finished[0];
  if (latest === undefined || latest.status !== 'failed') return undefined;
  const failed = finished.filter((r) => r.status === 'failed').length;
  const message = (latest.message ?? '').trim().split('\n', 1)[0] ?? '';
  const fix = /connection failed|could not connect|authentication|pg_hba|password/i.test(message) ? connectFix
    : /does not exist/i.test(message) ? 'run session-pg migrate (the job calls what the migrations install)'
      : /permission denied|must be owner/i.test(message) ? 'the job must run as the owner of schema session: schedule it as that role, or as a superuser'
        : 'see cron.job_run_details for the full message';
  return `the pg_cron purge job failed in ${failed} of its last ${finished.length} runs ("${message}"), so nothing is purged. Fix: ${fix}`;
}

/** The purge job of this database and its latest runs, as `c` (a connection to pg_cron's database) sees them. */
async function purgeJob(c: pg.Client, database: string, elsewhere: boolean): Promise<CronJob | undefined> {
  const job = (await c.query<{ jobid: number; database: string; schedule: string; command: string; active: boolean }>(
    'SELECT jobid, database, schedule, command, active FROM cron.job WHERE jobname = $1', [jobName(database, elsewhere)])).rows[0];
  if (job === undefined) return undefined;
  const runs = await c.query<CronRun>(
    `SELECT status, start_time AS start, end_time AS "end", return_message AS message FROM cron.job_run_details
      WHERE jobid = $1 ORDER BY runid DESC LIMIT ${recentRuns}`, [job.jobid]);
  return { database: job.database, schedule: job.schedule, command: job.command, active: job.active, lastRuns: runs.rows };
}

/**
 * The warning of {@link cronRunsWarning} for this database's purge job, if pg_cron lives here (or
 * at `cronDatabaseUrl`) and the role can see the job; `session-pg migrate` prints it.
 */
export async function purgeJobWarning(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<string | undefined> {
  return cronClient(options, async (c, database, elsewhere) => {
    if (!(await hasCron(c))) return undefined;
    const job = await purgeJob(c, database, elsewhere).catch(() => undefined);
    return job === undefined ? undefined : cronRunsWarning(job.lastRuns);
  });
}

/** The job name for a database: plain in pg_cron's own database, suffixed when scheduled from elsewhere. */
export const jobName = (database: string, elsewhere: boolean) => (elsewhere ? `session-purge-${database}` : 'session-purge');

/**
 * Runs `fn` on a connection to pg_cron's database, with the name of the sessions database and
 * whether that database has the procedure the job calls (migration 002).
 */
async function cronClient<T>(options: ConnectionOptions & { cronDatabaseUrl?: string }, fn: (c: pg.Client, database: string, elsewhere: boolean, jobInstalled: boolean) => Promise<T>): Promise<T> {
  const target = await withClient({ applicationName: 'session-pg', ...options }, async (c) => (await c.query<{ d: string; installed: boolean }>(
    `SELECT current_database() AS d, to_regprocedure('session.session_purge_job(integer, double precision)') IS NOT NULL AS installed`)).rows[0]);
  const elsewhere = options.cronDatabaseUrl !== undefined;
  const cron = options.cronDatabaseUrl === undefined ? options : { connectionString: options.cronDatabaseUrl };
  return withClient(cron, (c) => fn(c, target?.d ?? '', elsewhere, target?.installed === true));
}

async function hasCron(c: pg.Client): Promise<boolean> {
  return (await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'`)).rowCount === 1;
}

const noCron = () => new SessionError('not_installed',
  'pg_cron is not installed in this database; if it lives in another one, pass its URL with --cron-database-url');

/**
 * Counts, sizes and settings (session_stats: the admin role or the owner), and the purge job.
 * Rejects with `not_installed` ("run session-pg migrate") where the schema is missing.
 */
export async function stats(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<Stats> {
  const s = await withClient(options, async (c) => (await c.query({
    text: 'SELECT * FROM session.session_stats()',
    types: { getTypeParser: (oid: number) => (oid === 20 || oid === 23 ? Number : pg.types.getTypeParser(oid)) } as pg.CustomTypesConfig,
  })).rows[0] as { live: number; expired: number; table_bytes: number; index_bytes: number; default_period: number; max_value_bytes: number })
    .catch((err: unknown) => {
      if (err instanceof SessionError && err.code === 'not_installed') {
        throw new SessionError('not_installed', 'session-postgresql is not installed in this database: run session-pg migrate', { cause: err, ...(err.sqlState === undefined ? {} : { sqlState: err.sqlState }) });
      }
      throw err;
    });
  const base = { live: s.live, expired: s.expired, tableBytes: s.table_bytes, indexBytes: s.index_bytes, defaultPeriod: s.default_period, maxValueBytes: s.max_value_bytes };
  return cronClient(options, async (c, database, elsewhere) => {
    if (!(await hasCron(c))) return { ...base, cron: null, cronNote: 'pg_cron is not installed in this database (see --cron-database-url)' };
    const job = await purgeJob(c, database, elsewhere);
    if (job === undefined) return { ...base, cron: null, cronNote: 'no purge job is scheduled (session-pg schedule)' };
    const warning = cronRunsWarning(job.lastRuns);
    return { ...base, cron: job, ...(warning === undefined ? {} : { cronWarning: warning }) };
  });
}

/** Schedules (or re-schedules: pg_cron upserts by name) the purge job; resolves the job name. */
export async function schedulePurge(options: ConnectionOptions & { cronDatabaseUrl?: string; schedule?: string }): Promise<string> {
  return cronClient(options, async (c, database, elsewhere, jobInstalled) => {
    // A job whose command does not exist fails every minute, visible only in cron.job_run_details.
    if (!jobInstalled) throw new SessionError('not_installed', 'session.session_purge_job is missing (migration 002_purge_job): run session-pg migrate first');
    const name = jobName(database, elsewhere);
    const schedule = options.schedule ?? defaultSchedule;
    if (!(await hasCron(c))) throw noCron();
    if (elsewhere) await c.query('SELECT cron.schedule_in_database($1, $2, $3, $4)', [name, schedule, purgeCommand, database]);
    else await c.query('SELECT cron.schedule($1, $2, $3)', [name, schedule, purgeCommand]);
    return name;
  });
}

/** Removes the purge job; resolves false when there was none (pg_cron itself would error). */
export async function unschedulePurge(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<boolean> {
  return cronClient(options, async (c, database, elsewhere) => {
    const name = jobName(database, elsewhere);
    if (!(await hasCron(c)) || (await c.query('SELECT 1 FROM cron.job WHERE jobname = $1', [name])).rowCount === 0) return false;
    await c.query('SELECT cron.unschedule($1)', [name]);
    return true;
  });
}

/**
 * sql/install.sql with every `\ir` file inlined: one script to pipe into psql. The search_path
 * pin that starts each migration file from 003 on is a SELECT, whose one-row result psql would
 * print once per file: here its result goes into a psql variable instead.
 */
export function installScript(): string {
  const pin = /^(SELECT pg_catalog\.set_config\('search_path', 'pg_catalog, pg_temp', true\));$/gm;
  return readFileSync(new URL('install.sql', sqlDir), 'utf8').replace(/^\\ir (\S+)$/gm, (_, file: string) =>
    `-- ${file}\n${readFileSync(new URL(file, sqlDir), 'utf8').replace(pin, '$1 AS search_path \\gset')}`);
}
