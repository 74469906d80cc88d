// DBA operations behind the CLI: purge everything, statistics, the pg_cron job, the psql script.
// They connect as the role given (normally the owner); none is needed by applications.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { clientConfig, withClient, type ConnectionOptions } from './connection.js';
import { SessionError, toSessionError } from './errors.js';
import { connectAdmin } from './admin-store.js';

const sqlDir = new URL('../../sql/', import.meta.url);
/** What the pg_cron job runs: session_purge() until nothing is left, paced, within 30 s (sql/002). */
export const purgeCommand = 'CALL session.session_purge_job()';
export const defaultSchedule = '* * * * *';

/** Progress of {@link purgeAll}, after each batch. `busyMs`: time spent inside purge calls. */
export interface PurgeProgress {
  deleted: number;
  batches: number;
  elapsedMs: number;
  busyMs: number;
}

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
export async function purgeAll(
  options: ConnectionOptions & { batchSize?: number; pause?: number },
  onProgress: (p: PurgeProgress) => void,
): Promise<PurgeProgress> {
  const { batchSize, pause = defaultPurgePause, ...connection } = options;
  if (!validPurgePause(pause)) {
    throw new SessionError('invalid_argument', 'pause must be a number from 0 to 1000');
  }
  const store = connectAdmin({ ...connection, connections: 1, applicationName: 'session-pg purge' });
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
export interface CronRun {
  status: string;
  start: Date | null;
  end: Date | null;
  message: string | null;
}
/** The purge job: the database it runs in, the role it runs as (pg_cron's username), its latest runs. */
export interface CronJob {
  database: string;
  username: string;
  schedule: string;
  command: string;
  active: boolean;
  lastRuns: CronRun[];
}

/** The purge job as `stats` and `status` report it. */
export interface PurgeJobState {
  /** The purge job of this database, as this login sees it in pg_cron's database; null if none. */
  cron: CronJob | null;
  /** pg_cron's database, where the job is kept, when pg_cron was found. */
  cronDatabase?: string;
  /** Why `cron` is null. */
  cronNote?: string;
  /** Set when the job runs as a role that cannot purge, or its latest run failed: what and the fix. */
  cronWarning?: string;
}

export interface Stats extends PurgeJobState {
  live: number;
  expired: number;
  tableBytes: number;
  indexBytes: number;
  defaultPeriod: number;
  maxValueBytes: number;
}

/** How many of the job's latest runs stats shows and the failure check reads. */
const recentRuns = 5;

// pg_cron's return_message for a run whose libpq connection was refused; Debian's 1.4 says
// "connection failed". Jobs connect to cron.host unless cron.use_background_workers is on.
const connectFix =
  "pg_cron runs jobs over a libpq connection to cron.host (default localhost) as the job's role: " +
  'allow it in pg_hba.conf (e.g. "host <database> <role> 127.0.0.1/32 scram-sha-256" with a password in ' +
  "the job role's ~/.pgpass, or trust), or set cron.use_background_workers = on in postgresql.conf and restart";

/** A role name as SQL text, quoted when it needs to be. */
const ident = (name: string) => (/^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`);

/**
 * A one-line warning when the latest finished run of the purge job failed, with the usual fix;
 * undefined when it succeeded or there is no finished run. Expired sessions are never returned,
 * but while the job fails nothing is purged and the table grows. `owner`: the owner of schema
 * session, named in the fix for a permission error.
 */
export function cronRunsWarning(runs: CronRun[], owner?: string): string | undefined {
  const finished = runs.filter((r) => r.status === 'succeeded' || r.status === 'failed');
  const latest = finished[0];
  if (latest === undefined || latest.status !== 'failed') return undefined;
  const failed = finished.filter((r) => r.status === 'failed').length;
  const message = (latest.message ?? '').trim().split('\n', 1)[0] ?? '';
  const asOwner = owner === undefined ? 'that role' : ident(owner);
  const fix = /connection failed|could not connect|authentication|pg_hba|password/i.test(message)
    ? connectFix
    : /does not exist/i.test(message)
      ? 'run session-pg migrate (the job calls what the migrations install)'
      : /permission denied|must be owner/i.test(message)
        ? `the job must run as the owner of schema session: schedule it as ${asOwner} (session-pg schedule), or as a superuser`
        : 'see cron.job_run_details for the full message';
  return `the pg_cron purge job failed in ${failed} of its last ${finished.length} runs ("${message}"), so nothing is purged. Fix: ${fix}`;
}

/** The sessions database as the CLI's login sees it, and where pg_cron was looked for. */
interface Where {
  database: string;
  user: string;
  superuser: boolean;
  /** The owner of schema session (null: not installed). */
  owner: string | null;
  /** Whether session.session_purge_job, which the job calls, exists (migration 002). */
  jobInstalled: boolean;
  /** pg_cron's database is another one: the job is made with cron.schedule_in_database. */
  elsewhere: boolean;
  cronDatabase: string;
  /** When pg_cron was not found: where it was looked for and what to do. */
  missing: string;
}

/** The same login on another database of the server. */
function onDatabase(options: ConnectionOptions, database: string): ConnectionOptions {
  if (options.connectionString !== undefined && URL.canParse(options.connectionString)) {
    const url = new URL(options.connectionString);
    url.pathname = `/${encodeURIComponent(database)}`;
    return { ...options, connectionString: url.toString() };
  }
  return { ...options, dbname: database };
}

const createCron = (db: string) =>
  `as a superuser (or your platform's admin user), in database ${db}: CREATE EXTENSION pg_cron;` +
  ' pg_cron must be in shared_preload_libraries, and its extension can only be created in the database that cron.database_name names';

/**
 * Runs `fn` on a connection to pg_cron's database: `cronDatabaseUrl`; else this database if pg_cron
 * is installed here; else, with the same login, the database cron.database_name names (readable by
 * superusers and pg_read_all_settings), or `postgres` (pg_cron's default, and where managed
 * services keep it). `c` is undefined when pg_cron was not found there; `where.missing` says why.
 */
async function cronClient<T>(
  options: ConnectionOptions & { cronDatabaseUrl?: string },
  fn: (c: pg.Client | undefined, where: Where) => Promise<T>,
): Promise<T> {
  const here = await withClient(
    { applicationName: 'session-pg', ...options },
    async (c) =>
      (
        await c.query<{
          database: string;
          user: string;
          superuser: boolean;
          owner: string | null;
          job_installed: boolean;
          cron_here: boolean;
          cron_setting: string | null;
        }>(`SELECT current_database() AS database, current_user AS user,
             (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) AS superuser,
             (SELECT pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n WHERE n.nspname = 'session') AS owner,
             EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'session' AND p.proname = 'session_purge_job') AS job_installed,
             EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') AS cron_here,
             (SELECT s.setting FROM pg_catalog.pg_settings s WHERE s.name = 'cron.database_name') AS cron_setting`)
      ).rows[0],
  );
  if (here === undefined) throw new SessionError('database', 'no answer from the database');
  const base = {
    database: here.database,
    user: here.user,
    superuser: here.superuser,
    owner: here.owner,
    jobInstalled: here.job_installed,
  };
  let target: ConnectionOptions;
  let where: Where;
  if (options.cronDatabaseUrl !== undefined) {
    const url = URL.canParse(options.cronDatabaseUrl) ? new URL(options.cronDatabaseUrl) : undefined;
    const db = (url === undefined ? '' : decodeURIComponent(url.pathname.slice(1))) || 'the cron database';
    target = { connectionString: options.cronDatabaseUrl };
    where = {
      ...base,
      elsewhere: true,
      cronDatabase: db,
      missing: `pg_cron is not installed in database ${db}, the cron database URL given: ${createCron(db)}${here.cron_setting === null ? '' : ` (here: ${here.cron_setting})`}`,
    };
  } else if (here.cron_here) {
    target = options;
    where = { ...base, elsewhere: false, cronDatabase: here.database, missing: '' };
  } else {
    const candidate = here.cron_setting ?? 'postgres';
    const elsewhereNote = 'if pg_cron lives in another database, pass its URL with --cron-database-url';
    if (here.superuser && here.cron_setting === null) {
      return fn(undefined, {
        ...base,
        elsewhere: true,
        cronDatabase: '',
        missing: 'pg_cron is not installed: it is not loaded on this server (add it to shared_preload_libraries and restart)',
      });
    }
    if (candidate === here.database) {
      return fn(undefined, {
        ...base,
        elsewhere: false,
        cronDatabase: candidate,
        missing: `pg_cron is not installed in this database, which cron.database_name names: ${createCron(candidate)}`,
      });
    }
    target = onDatabase(options, candidate);
    where = {
      ...base,
      elsewhere: true,
      cronDatabase: candidate,
      missing:
        here.cron_setting === null
          ? `pg_cron is not installed in this database nor in ${candidate} (its default database); ${elsewhereNote}`
          : `pg_cron is not installed in this database nor in ${candidate}, which cron.database_name names: ${createCron(candidate)}`,
    };
  }
  const client = new pg.Client(clientConfig({ applicationName: 'session-pg', ...target }));
  client.on('error', () => {});
  try {
    try {
      await client.connect();
    } catch (err) {
      if (options.cronDatabaseUrl !== undefined || here.cron_here) throw err;
      // Looking in pg_cron's usual database is a guess: not reaching it is a finding, not a failure.
      const reason = (err instanceof Error ? err.message : String(err)).split('\n', 1)[0];
      return await fn(undefined, {
        ...where,
        missing: `pg_cron is not installed in this database, and database ${where.cronDatabase}, where it usually is, could not be reached as ${here.user} (${reason}); if pg_cron lives elsewhere, pass its URL with --cron-database-url`,
      });
    }
    const installed = (await client.query(`SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron'`)).rowCount === 1;
    return await fn(installed ? client : undefined, where);
  } catch (err) {
    throw toSessionError(err);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * This database's purge job and its latest runs, as `c` (a connection to pg_cron's database) sees
 * them: by database and command, whatever its name, preferring the one that runs as the owner.
 * cron.job has row-level security: a role other than a superuser sees only its own jobs.
 */
async function purgeJobState(c: pg.Client, where: Where): Promise<PurgeJobState> {
  const job = (
    await c.query<{
      jobid: string;
      database: string;
      username: string;
      schedule: string;
      command: string;
      active: boolean;
      superuser: boolean | null;
    }>(
      `SELECT j.jobid, j.database, j.username, j.schedule, j.command, j.active,
            (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = j.username) AS superuser
       FROM cron.job j
      WHERE j.database = $1 AND (j.command = $2 OR j.jobname = $3)
      ORDER BY j.username = $4 DESC, j.username = current_user DESC, j.jobid LIMIT 1`,
      [where.database, purgeCommand, jobName(where.database, where.elsewhere), where.owner ?? ''],
    )
  ).rows[0];
  const located = { cronDatabase: where.cronDatabase };
  if (job === undefined) {
    const note = where.superuser
      ? `no purge job for database ${where.database} is scheduled (session-pg schedule)`
      : `no purge job of ${where.user} for database ${where.database} in pg_cron's database ${where.cronDatabase}; pg_cron shows each role ` +
        'only its own jobs, and a job runs as the role that scheduled it, so schedule it as the owner of schema session ' +
        `(session-pg schedule${where.owner === null ? '' : ` as ${where.owner}`})`;
    return { cron: null, ...located, cronNote: note };
  }
  const runs = await c.query<CronRun>(
    `SELECT status, start_time AS start, end_time AS "end", return_message AS message FROM cron.job_run_details
      WHERE jobid = $1 ORDER BY runid DESC LIMIT ${recentRuns}`,
    [job.jobid],
  );
  const cron: CronJob = {
    database: job.database,
    username: job.username,
    schedule: job.schedule,
    command: job.command,
    active: job.active,
    lastRuns: runs.rows,
  };
  const wrongRole = where.owner !== null && job.username !== where.owner && job.superuser !== true;
  const warning = wrongRole
    ? `the pg_cron purge job runs as ${job.username}, which is not the owner of schema session (${where.owner}) and may not purge, so every run fails. ` +
      `Fix: as ${ident(where.owner ?? '')}, run session-pg schedule${where.elsewhere ? ' --cron-database-url <URL of database ' + where.cronDatabase + '>' : ''}; ` +
      `then, as ${ident(job.username)} in database ${where.cronDatabase}: SELECT cron.unschedule(${job.jobid});`
    : cronRunsWarning(cron.lastRuns, where.owner ?? undefined);
  return { cron, ...located, ...(warning === undefined ? {} : { cronWarning: warning }) };
}

/**
 * The purge job wherever pg_cron keeps it (see {@link stats}), without the counts: what
 * `session-pg status` shows. Never needs the admin role.
 */
export async function purgeJobStatus(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<PurgeJobState> {
  return cronClient(options, async (c, where) =>
    c === undefined ? { cron: null, cronNote: where.missing } : purgeJobState(c, where),
  );
}

/**
 * The warning of {@link purgeJobState} for this database's purge job, if pg_cron is found and the
 * role can see the job; `session-pg migrate` prints it.
 */
export async function purgeJobWarning(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<string | undefined> {
  return (await purgeJobStatus(options)).cronWarning;
}

/** The job name for a database: plain in pg_cron's own database, suffixed when scheduled from elsewhere. */
export const jobName = (database: string, elsewhere: boolean) => (elsewhere ? `session-purge-${database}` : 'session-purge');

/**
 * Counts, sizes and settings (session_stats: the admin role or the owner), and the purge job,
 * looked for in pg_cron's database: `cronDatabaseUrl`, this database, or the one cron.database_name
 * names (default `postgres`) with the same login. Rejects with `not_installed` ("run session-pg
 * migrate") where the schema is missing.
 */
export async function stats(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<Stats> {
  const s = await withClient(
    options,
    async (c) =>
      (
        await c.query({
          text: 'SELECT * FROM session.session_stats()',
          types: {
            getTypeParser: (oid: number) => (oid === 20 || oid === 23 ? Number : pg.types.getTypeParser(oid)),
          } as pg.CustomTypesConfig,
        })
      ).rows[0] as {
        live: number;
        expired: number;
        table_bytes: number;
        index_bytes: number;
        default_period: number;
        max_value_bytes: number;
      },
  ).catch((err: unknown) => {
    if (err instanceof SessionError && err.code === 'not_installed') {
      throw new SessionError('not_installed', 'session-postgresql is not installed in this database: run session-pg migrate', {
        cause: err,
        ...(err.sqlState === undefined ? {} : { sqlState: err.sqlState }),
      });
    }
    throw err;
  });
  const base = {
    live: s.live,
    expired: s.expired,
    tableBytes: s.table_bytes,
    indexBytes: s.index_bytes,
    defaultPeriod: s.default_period,
    maxValueBytes: s.max_value_bytes,
  };
  return { ...base, ...(await purgeJobStatus(options)) };
}

/** A 42501 from pg_cron, with the exact GRANTs the scheduling role lacks. */
function cronPermission(err: unknown, where: Where): unknown {
  const e = toSessionError(err);
  if (e.sqlState !== '42501') return e;
  const who = ident(where.user);
  const grants = [`GRANT USAGE ON SCHEMA cron TO ${who};`];
  if (where.elsewhere)
    grants.push(`GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO ${who};`);
  return new SessionError(
    'permission_denied',
    `${e.message}: ${where.user} may not schedule the purge job with pg_cron. As a superuser (or your ` +
      `platform's admin user: rds_superuser, cloudsqlsuperuser, azure_pg_admin), in database ${where.cronDatabase}, run: ${grants.join(' ')} ` +
      `Then run session-pg schedule again as ${where.user}: the job runs as the role that schedules it`,
    { cause: e, sqlState: '42501' },
  );
}

/**
 * Schedules (or re-schedules: pg_cron upserts by name) the purge job, as this login, which the job
 * will run as: it must be the owner of schema session or a superuser. Resolves the job name.
 * Errors: `not_installed` (migration 002 missing, or pg_cron not found: says where it looked and
 * how to create it), `permission_denied` (not the owner; or pg_cron's grants missing: says which).
 */
export async function schedulePurge(
  options: ConnectionOptions & { cronDatabaseUrl?: string; schedule?: string },
): Promise<string> {
  return cronClient(options, async (c, where) => {
    // A job whose command does not exist fails every minute, visible only in cron.job_run_details.
    if (!where.jobInstalled)
      throw new SessionError('not_installed', 'session.session_purge_job is missing: run session-pg migrate first');
    if (where.owner !== null && where.user !== where.owner && !where.superuser) {
      throw new SessionError(
        'permission_denied',
        `a pg_cron job runs as the role that schedules it, and ${where.user} is not the owner of schema ` +
          `session (${where.owner}): its runs would fail. Run session-pg schedule as ${where.owner}`,
        { sqlState: '42501' },
      );
    }
    if (c === undefined) throw new SessionError('not_installed', where.missing);
    const name = jobName(where.database, where.elsewhere);
    const schedule = options.schedule ?? defaultSchedule;
    try {
      if (where.elsewhere)
        await c.query('SELECT cron.schedule_in_database($1, $2, $3, $4)', [name, schedule, purgeCommand, where.database]);
      else await c.query('SELECT cron.schedule($1, $2, $3)', [name, schedule, purgeCommand]);
    } catch (err) {
      throw cronPermission(err, where);
    }
    return name;
  });
}

/** Removes the purge job; resolves false when there was none (pg_cron itself would error). */
export async function unschedulePurge(options: ConnectionOptions & { cronDatabaseUrl?: string }): Promise<boolean> {
  return cronClient(options, async (c, where) => {
    const name = jobName(where.database, where.elsewhere);
    if (c === undefined || (await c.query('SELECT 1 FROM cron.job WHERE jobname = $1', [name])).rowCount === 0) return false;
    await c.query('SELECT cron.unschedule($1)', [name]);
    return true;
  });
}

/** The roles of this install, as the grants on its functions show them (any login may read these). */
export interface InstallRoles {
  user: string;
  client: string[];
  admin: string[];
}

/**
 * The client and admin roles this database was installed with (session.config names them, and
 * only they are granted these functions), read from the catalog, which any login may read: for
 * hints that name them. Empty lists where the schema is missing.
 */
export async function installRoles(options: ConnectionOptions): Promise<InstallRoles> {
  return withClient({ applicationName: 'session-pg', ...options }, async (c) => {
    const r = (
      await c.query<{ user: string; client: string[] | null; admin: string[] | null }>(
        `WITH grantees AS (
         SELECT p.proname, pg_catalog.pg_get_userbyid(a.grantee) AS role
           FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace,
                LATERAL pg_catalog.aclexplode(p.proacl) a
          WHERE n.nspname = 'session' AND p.proname IN ('session_get', 'session_set_default_period')
            AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0)
       SELECT current_user AS user,
              (SELECT array_agg(DISTINCT g.role::text) FROM grantees g WHERE g.proname = 'session_get') AS client,
              (SELECT array_agg(DISTINCT g.role::text) FROM grantees g WHERE g.proname = 'session_set_default_period') AS admin`,
      )
    ).rows[0];
    return { user: r?.user ?? '', client: r?.client ?? [], admin: r?.admin ?? [] };
  });
}

/** sql/install.sql with every `\ir` file inlined: one script to pipe into psql. */
export function installScript(): string {
  return readFileSync(new URL('install.sql', sqlDir), 'utf8').replace(
    /^\\ir (\S+)$/gm,
    (_, file: string) => `-- ${file}\n${readFileSync(new URL(file, sqlDir), 'utf8')}`,
  );
}
