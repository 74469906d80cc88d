#!/usr/bin/env node
// session-pg: the DBA's tool. Exit codes: 0 success, 1 the database failed or refused, 2 usage.
import { parseArgs } from 'node:util';
import {
  defaultPurgePause,
  installScript,
  validPurgePause,
  purgeAll,
  purgeJobStatus,
  purgeJobWarning,
  schedulePurge,
  stats,
  unschedulePurge,
  installRoles,
  type CronRun,
  type PurgeJobState,
  type PurgeProgress,
  type Stats,
} from './admin.js';
import { causeChain, SessionError } from './errors.js';
import { importArguments, importCommand } from './import.js';
import { printPartitionJobs, scaleoutCommand } from './scaleout-cli.js';
import { partitionPurgeJobs } from './scaleout.js';
import { downRefused, migrate, migrationStatus } from './migrate.js';
import { connect } from './store.js';
import { connectAdmin } from './admin-store.js';
import { hostPlan } from './hosts.js';

const common = `Options:
  --database-url URL   the database: a postgresql:// URL (default: $DATABASE_URL, then the PG*
                       variables)
  -h, --help           show help`;

const adminNote = `Needs the admin role (session_admin, or the name given to migrate --admin-role) or the
owner of schema session.`;

const help = {
  main: `Usage: session-pg <command> [options]

Commands:
  migrate                 apply pending migrations
  status                  list migrations and whether they are applied
  purge                   delete every expired session, in short batches, with progress
  stats                   live and expired sessions, sizes, settings, the pg_cron job
  default-period [secs]   show or change the default session period
  schedule / unschedule   add or remove the pg_cron purge job by hand
  sql                     print the psql install script (for DBAs who apply SQL themselves)
  sessions SUBJECT        list the live sessions of a user (support staff)
  revoke SUBJECT          end every session of a user, or one with --handle
  import connect-pg-simple  copy the live sessions of a connect-pg-simple table into this store
  scaleout ...            PL/Proxy scale-out: migrate partitions, install/status the proxy, move a partition

Run "session-pg <command> --help" for details.
${common}

Exit codes: 0 success, 1 the database failed or refused, 2 wrong usage.`,
  migrate: `Usage: session-pg migrate [--count N] [--client-role NAME] [--admin-role NAME]
                        [--database-url URL]

Applies every pending migration (or the first N) in one transaction. Concurrent runs wait for each
other. A database that a newer version of session-postgresql has migrated, or that a pre-release
installed, is refused. Migrations are forward-only: there is no "migrate down"; sql/uninstall.sql
removes everything. What a DBA must do by hand (e.g. schedule the pg_cron job
when this is not pg_cron's database, or create the roles) is printed to standard error, and so is a
warning when the purge job's latest run failed.

  --client-role NAME   the role the application's login role is granted (default session_client)
  --admin-role NAME    the role an operator's login role is granted, for default-period, purge and
                       stats (default session_admin)
Roles are shared by every database of the server: give each database its own pair, e.g.
  session-pg migrate --client-role shop_session --admin-role shop_session_admin
The names are chosen once, when the roles are set up: other names later are refused.
${common}`,
  status: `Usage: session-pg status [--cron-database-url URL] [--database-url URL]

Prints each migration shipped with this version and whether the database has applied it, then any
migration the database has that this version does not know ("newer than this package"), then the
pg_cron purge job as "stats" shows it.
${common}`,
  purge: `Usage: session-pg purge [--batch-size N] [--pause FACTOR] [--database-url URL]

Calls session.session_purge(N) until it returns 0. Each call is one short transaction that sweeps
the table in 1 MiB block ranges and stops at the end of the range in which it reached N deleted rows
(default 10000): a call deletes N or more, up to one range's worth more (about 3,800 small
sessions). After each call it rests FACTOR times as long as the call took (default
${defaultPurgePause}), so that a large backlog does not crowd out the application's queries; --pause 0 runs
the calls back to back. Shows a progress line on a terminal, plain lines otherwise.
${adminNote}
${common}`,
  stats: `Usage: session-pg stats [--json] [--cron-database-url URL] [--database-url URL]

Live and expired (not yet purged) sessions, table and index sizes, default period, value limit, and
the pg_cron purge job with its last runs (start, status, duration); warns when the latest run
failed, or the job runs as a role that cannot purge, with the fix. The job is looked for in
pg_cron's database: --cron-database-url URL, else this database if pg_cron is installed here, else
(with the same login) the database cron.database_name names, or postgres. pg_cron shows a role
only its own jobs: run this as the role that scheduled the job (the owner) to see it.
${adminNote}
${common}`,
  'default-period': `Usage: session-pg default-period [SECONDS] [--database-url URL]

Without SECONDS, prints the default period. With SECONDS (a whole number from 1 to 3155760000),
changes it for sessions written from now on. The client role may read it; changing it needs the
admin role (session_admin, or the name given to migrate --admin-role) or the owner of schema session.
${common}`,
  schedule: `Usage: session-pg schedule [--every "CRON"] [--cron-database-url URL] [--database-url URL]

Schedules (or updates) the pg_cron job, every minute by default. It runs
CALL session.session_purge_job(): session_purge() until nothing is left, paced, for at most 30 s,
as the role that schedules it, which must be the owner of schema session (or a superuser).
If pg_cron lives in another database, pass its URL with --cron-database-url (else it is looked for
as "stats" does): the job is then named session-purge-<database> and uses
cron.schedule_in_database, which the owner may call only once a superuser (or the platform's admin
user) granted it, in pg_cron's database:
  GRANT USAGE ON SCHEMA cron TO shop_owner;
  GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO shop_owner;
${common}`,
  unschedule: `Usage: session-pg unschedule [--cron-database-url URL] [--database-url URL]

Removes the purge job; says so if there was none.
${common}`,
  sql: `Usage: session-pg sql

Prints sql/install.sql with every migration file inlined, e.g.
  session-pg sql | psql -v ON_ERROR_STOP=1 -d mydb
It applies only what is missing, under the same lock and bookkeeping as "session-pg migrate".
Role names, as migrate's --client-role and --admin-role:
  session-pg sql | psql -v ON_ERROR_STOP=1 -v client_role=shop_session -v admin_role=shop_session_admin -d shop
${common}`,
  import: `Usage: session-pg import connect-pg-simple [--schema public] [--table session] [--batch-size N]
                                           [--time-zone ZONE] [--database-url URL]

Copies the live sessions of connect-pg-simple's table (in this database) into this store, so that
the same cookies keep working with ExpressSessionStore: the id's digest, the session's JSON, the
expiry from "expire". Reads N rows per batch (default 1000), in id order, and prints "imported N of
M" progress to standard error. Never writes to the source table, never replaces a live session of
this store nor revives one whose user logged out here: running it again imports nothing twice.
Expired sessions are skipped; sessions larger than session.config.max_value_bytes or with ids this
store cannot save are skipped and counted in the report. "expire" has no time zone: it is read in
the connection's TimeZone, as connect-pg-simple did, or in --time-zone ZONE. An absolute lifetime,
if set, counts from the import; an "expire" more than 100 years ahead is skipped.
Needs the owner's role of schema session (it writes session.sessions directly) and SELECT on the
table. It reads only a plain table with columns of PostgreSQL's own types and no row-level security
that applies to this role, so that no code of the table's owner runs with the importer's rights;
anything else is refused, saying why.
${common}`,
  sessions: `Usage: session-pg sessions SUBJECT [--json] [--database-url URL]

Lists the live sessions of SUBJECT (the user id the application gave them), newest first: the
handle (not the key: it gives no access), when each was created and last written, when it
expires, and its label. Needs the client role (or the owner).
${common}`,
  revoke: `Usage: session-pg revoke SUBJECT [--handle HANDLE] [--database-url URL]

Ends every live session of SUBJECT ("log out everywhere"), or with --handle only the one that
"session-pg sessions" showed with that handle. Prints how many sessions ended. Needs the client role
(or the owner).
${common}`,
} as const;
type Command = Exclude<keyof typeof help, 'main'>;

/** The options each command accepts (besides --database-url and --help). */
const commandOptions: Record<Command, string[]> = {
  migrate: ['count', 'client-role', 'admin-role'],
  status: ['cron-database-url'],
  purge: ['batch-size', 'pause'],
  stats: ['json', 'cron-database-url'],
  'default-period': [],
  schedule: ['every', 'cron-database-url'],
  unschedule: ['cron-database-url'],
  sql: [],
  import: ['schema', 'table', 'batch-size', 'time-zone'],
  sessions: ['json'],
  revoke: ['handle'],
};

const options = {
  'database-url': { type: 'string' },
  'cron-database-url': { type: 'string' },
  count: { type: 'string' },
  'batch-size': { type: 'string' },
  pause: { type: 'string' },
  every: { type: 'string' },
  'client-role': { type: 'string' },
  'admin-role': { type: 'string' },
  schema: { type: 'string' },
  table: { type: 'string' },
  'time-zone': { type: 'string' },
  handle: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Wrong usage: one line saying what is wrong, exit 2. */
class Usage extends Error {}

const maxPeriod = 3155760000;

/** A whole number in [min, max], or a usage error naming the argument and what it got. */
function wholeNumber(name: string, v: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new Usage(`${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  }
  return n;
}

/**
 * Checks a database URL before pg sees it: pg reads anything (a MySQL URL, "not a url") as some
 * connection string and falls back to 127.0.0.1:5432, so a typo would reach another server.
 */
function databaseUrl(name: string, value: string): string {
  // A libpq host list (db1:5432,db2:5432) is no WHATWG URL: check the URL of each host.
  let hosts: string[];
  try {
    hosts = hostPlan({ connectionString: value }).hosts.map((h) => h.connectionString ?? value);
  } catch (err) {
    throw new Usage(`${name}: ${(err as Error).message}`);
  }
  for (const one of hosts) oneHostUrl(name, one);
  return value;
}

function oneHostUrl(name: string, value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // A typo in the port ("5501O") is the usual reason: say so, without echoing what could be a password.
    const port = /^postgres(?:ql)?:\/\/(?:[^@/]*@)?(?:\[[^\]/]*\]|[^/:@[]*):([^/?#@]*)(?:[/?#]|$)/.exec(value)?.[1];
    if (port !== undefined && !(/^\d{0,5}$/.test(port) && Number(port) <= 65535))
      throw new Usage(`${name} has a bad port: a port is a number from 1 to 65535`);
    throw new Usage(`${name} must be a postgresql:// URL, e.g. postgresql://user@host:5432/database`);
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    throw new Usage(`${name} must be a postgresql:// URL, not ${url.protocol}//...`);
  }
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
    decodeURIComponent(url.pathname);
  } catch {
    throw new Usage(`${name} is not a valid URL: bad %-escape`);
  }
}

// parseArgs reads "-5" as an unknown short option: keep negative numbers as arguments (or as the
// value of the option before them), so that "default-period -5" says what is wrong with -5.
function negativeNumbersAsArguments(argv: string[]): string[] {
  const out: string[] = [];
  const rest: string[] = [];
  for (const arg of argv) {
    const previous = out.at(-1);
    if (!/^-\d/.test(arg)) out.push(arg);
    else if (
      previous?.startsWith('--') &&
      !previous.includes('=') &&
      options[previous.slice(2) as keyof typeof options]?.type === 'string'
    )
      out[out.length - 1] = `${previous}=${arg}`;
    else rest.push(arg);
  }
  return rest.length === 0 ? out : [...out, '--', ...rest];
}

const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
/** 1536 → "1.5 KiB". */
function humanBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/** 90061 → "1 d 1 h 1 min 1 s". */
function humanSeconds(s: number): string {
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['min', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
  }
  return parts.join(' ') || '0 s';
}

function runLine(r: CronRun): string {
  const took = r.start && r.end ? `${((r.end.getTime() - r.start.getTime()) / 1000).toFixed(2)} s` : '-';
  return `  ${r.start?.toISOString() ?? '-'}  ${r.status.padEnd(9)}  ${took.padStart(8)}  ${(r.message ?? '').trim().split('\n', 1)[0]}`;
}

function printStats(s: Stats, job = true): void {
  console.log(`live sessions      ${s.live}`);
  console.log(`expired, unpurged  ${s.expired}`);
  console.log(`table size         ${humanBytes(s.tableBytes)}`);
  console.log(`index size         ${humanBytes(s.indexBytes)}`);
  console.log(`default period     ${s.defaultPeriod} s (${humanSeconds(s.defaultPeriod)})`);
  console.log(`max value size     ${humanBytes(s.maxValueBytes)}`);
  if (job) printJob(s);
}

/** The purge job and its last runs (stats and status); its warning on standard error. */
function printJob(s: PurgeJobState): void {
  if (s.cron === null) {
    console.log(`purge job          none: ${s.cronNote ?? ''}`);
    return;
  }
  const kept = s.cronDatabase === undefined || s.cronDatabase === s.cron.database ? '' : ` (kept in ${s.cronDatabase})`;
  console.log(
    `purge job          "${s.cron.schedule}" ${s.cron.command} in ${s.cron.database} as ${s.cron.username}${kept}${s.cron.active ? '' : ' (inactive)'}`,
  );
  console.log(s.cron.lastRuns.length === 0 ? '  no runs yet' : '  last runs (start, status, duration, message):');
  for (const r of s.cron.lastRuns) console.log(runLine(r));
  if (s.cronWarning !== undefined) console.error(`session-pg: warning: ${s.cronWarning}`);
}

function bar(p: PurgeProgress): string {
  const secs = p.elapsedMs / 1000;
  const rate = secs > 0 ? Math.round(p.deleted / secs) : 0;
  return `purged ${p.deleted} rows in ${p.batches} batches, ${rate} rows/s, ${secs.toFixed(1)} s`;
}

type Values = Record<string, string | boolean | undefined>;

async function runMigrate(args: string[], values: Values, conn: { connectionString?: string }): Promise<void> {
  if (args[0] === 'down') throw new Usage(downRefused);
  if (args[0] !== undefined && args[0] !== 'up') throw new Usage(`takes no argument but "up", not "${args[0]}"`);
  const direction = 'up';
  const count =
    values.count === undefined ? undefined : wholeNumber('--count', values.count as string, 1, Number.MAX_SAFE_INTEGER);
  const roles = {
    ...(values['client-role'] === undefined ? {} : { clientRole: values['client-role'] as string }),
    ...(values['admin-role'] === undefined ? {} : { adminRole: values['admin-role'] as string }),
  };
  const ran = await migrate({
    ...conn,
    ...roles,
    direction,
    ...(count === undefined ? {} : { count }),
    log: (l) => console.error(l),
  });
  if (ran.length > 0) console.log(`Applied: ${ran.join(', ')}`);
  else console.log('Nothing to do: the database is up to date.');
  // The migration succeeded either way; a job that cannot connect would go unnoticed otherwise.
  const warning = await purgeJobWarning(conn).catch(() => undefined);
  if (warning !== undefined) console.error(`session-pg: warning: ${warning}`);
}

/** The database the command works on: --database-url, else $DATABASE_URL, else the PG* variables. */
function connectionOf(values: Values): { connectionString?: string } {
  const urlValue = values['database-url'] as string | undefined;
  const url =
    urlValue !== undefined
      ? databaseUrl('--database-url', urlValue)
      : process.env.DATABASE_URL
        ? databaseUrl('DATABASE_URL', process.env.DATABASE_URL)
        : undefined;
  return url ? { connectionString: url } : {};
}

async function run(command: Command, args: string[], values: Values): Promise<void> {
  const conn = connectionOf(values);
  const cronUrl = values['cron-database-url'] as string | undefined;
  const cron = cronUrl === undefined ? {} : { cronDatabaseUrl: databaseUrl('--cron-database-url', cronUrl) };
  const maxArgs = ['migrate', 'default-period', 'import', 'sessions', 'revoke'].includes(command) ? 1 : 0;
  if (args.length > maxArgs) {
    throw new Usage(
      `takes ${maxArgs === 0 ? 'no arguments' : 'at most one argument'}; unexpected: ${args.slice(maxArgs).join(' ')}`,
    );
  }
  switch (command) {
    case 'migrate':
      return runMigrate(args, values, conn);
    case 'status': {
      const all = await migrationStatus(conn);
      for (const m of all) {
        console.log(
          `${m.applied ? 'applied' : 'pending'}  ${m.name}${m.runOn ? `  ${m.runOn.toISOString()}` : ''}${m.newer ? '  newer than this package' : ''}`,
        );
      }
      const newer = all.filter((m) => m.newer).map((m) => m.name);
      if (newer.length > 0) {
        console.error(
          `session-pg: warning: a newer version of session-postgresql migrated this database (${newer.join(', ')}); this version's migrate refuses it: upgrade the package`,
        );
      }
      // The job is where pg_cron keeps it; not finding it does not make the migrations' status fail.
      printJob(
        await purgeJobStatus({ ...conn, ...cron }).catch((err: unknown) => ({
          cron: null,
          cronNote: `not known (${(err as Error).message.split('\n', 1)[0]})`,
        })),
      );
      return;
    }
    case 'purge': {
      const batchSize =
        values['batch-size'] === undefined
          ? undefined
          : wholeNumber('--batch-size', values['batch-size'] as string, 1, 2147483647);
      const pauseText = values.pause as string | undefined;
      const pause = pauseText === undefined ? undefined : pauseText.trim() === '' ? NaN : Number(pauseText);
      if (pause !== undefined && !validPurgePause(pause))
        throw new Usage(`--pause must be a number from 0 to 1000, got "${pauseText}"`);
      const tty = process.stderr.isTTY;
      const done = await purgeAll(
        { ...conn, ...(batchSize === undefined ? {} : { batchSize }), ...(pause === undefined ? {} : { pause }) },
        (p) => {
          if (tty) process.stderr.write(`\r${bar(p)}\x1b[K`);
          else console.error(bar(p));
        },
      );
      if (tty) process.stderr.write('\n');
      console.log(`Done: ${done.deleted} expired sessions deleted.`);
      return;
    }
    case 'stats': {
      const s = await stats({ ...conn, ...cron });
      // On a proxy, purging runs on the partitions: their jobs, not the proxy's (none).
      const partitions = await partitionPurgeJobs(conn);
      if (values.json) console.log(JSON.stringify(partitions === null ? s : { ...s, partitions }, null, 2));
      else printStats(s, partitions === null);
      if (!values.json && partitions !== null) printPartitionJobs(partitions, runLine);
      return;
    }
    case 'default-period': {
      const period = args[0] === undefined ? undefined : wholeNumber('SECONDS', args[0], 1, maxPeriod);
      const store = connectAdmin({ ...conn, connections: 1, applicationName: 'session-pg' });
      try {
        if (period !== undefined) await store.setDefaultPeriod(period);
        console.log(`${await store.defaultPeriod()}`);
      } finally {
        await store.close();
      }
      return;
    }
    case 'schedule': {
      const every = values.every as string | undefined;
      const name = await schedulePurge({ ...conn, ...cron, ...(every === undefined ? {} : { schedule: every }) });
      console.log(`Scheduled pg_cron job ${name}.`);
      return;
    }
    case 'unschedule':
      console.log((await unschedulePurge({ ...conn, ...cron })) ? 'Removed the purge job.' : 'There was no purge job.');
      return;
    case 'sql':
      process.stdout.write(installScript());
      return;
    case 'import': {
      const importOptions = importArguments(args, values);
      if (typeof importOptions === 'string') throw new Usage(importOptions);
      await importCommand({ ...conn, ...importOptions });
      return;
    }
    case 'sessions':
    case 'revoke':
      return runSubject(command, args[0], values, conn);
  }
}

/** sessions and revoke: what support staff do for a user who lost a device. */
async function runSubject(
  command: 'sessions' | 'revoke',
  subject: string | undefined,
  values: Values,
  conn: { connectionString?: string },
): Promise<void> {
  if (subject === undefined || subject === '') throw new Usage('needs a SUBJECT (the user id the application gave the sessions)');
  const store = connect({ ...conn, connections: 1, writeConnections: 1, applicationName: 'session-pg' });
  try {
    if (command === 'revoke') {
      const handle = values.handle as string | undefined;
      const ended =
        handle === undefined
          ? await store.revoke(subject)
          : Number(
              await store.revokeHandle(subject, handle).catch((err: unknown) => {
                if (err instanceof SessionError && err.code === 'invalid_argument')
                  throw new Usage(
                    `--handle must be one of the handles that "session-pg sessions SUBJECT" lists, got ${JSON.stringify(handle)}`,
                  );
                throw err;
              }),
            );
      console.log(`Ended ${ended} session${ended === 1 ? '' : 's'} of ${JSON.stringify(subject)}.`);
      return;
    }
    const list = await store.list(subject, { max: 10000 });
    if (values.json) {
      console.log(JSON.stringify(list, null, 2));
      return;
    }
    if (list.length === 0) console.log(`No live sessions of ${JSON.stringify(subject)}.`);
    for (const s of list) {
      console.log(
        `${s.handle}  created ${s.createdAt.toISOString()}  written ${s.writtenAt.toISOString()}  expires ${s.expiresAt.toISOString()}  ${s.label ?? ''}`.trimEnd(),
      );
    }
  } finally {
    await store.close();
  }
}

// Commands whose SQL functions only the admin role (or the owner) may call, since migration 003,
// and those of the client role.
const needsAdmin = new Set<Command>(['purge', 'stats', 'default-period']);
const needsClient = new Set<Command>(['sessions', 'revoke']);

/**
 * For a permission error of a command that needs the admin or client role: which role to grant, by
 * the name this database was installed with, to the login that was refused.
 */
async function roleHint(command: Command, err: unknown, values: Values): Promise<string | undefined> {
  const which = needsAdmin.has(command) ? 'admin' : needsClient.has(command) ? 'client' : undefined;
  if (which === undefined || !(err instanceof SessionError) || err.code !== 'permission_denied') return undefined;
  const roles = await installRoles(connectionOf(values)).catch(() => undefined);
  const names = roles?.[which] ?? [];
  const role = names.length === 0 ? (which === 'admin' ? 'session_admin' : 'session_client') : names.join(' or ');
  const user = roles?.user === undefined || roles.user === '' ? '<your role>' : roles.user;
  return `session-pg ${command} needs the ${which} role (GRANT ${role} TO ${user}) or the owner of schema session`;
}

/** One line for a database error: what failed, its SQLSTATE and PostgreSQL's hint. Never a stack. */
function errorLine(err: unknown, ours?: string): string {
  const code = err instanceof SessionError ? err.code : 'error';
  const message = (err instanceof Error ? err.message : String(err)).split('\n', 1)[0];
  const sqlState = err instanceof SessionError ? err.sqlState : undefined;
  const hint = causeChain(err)
    .map((e) => e.hint)
    .find((h): h is string => typeof h === 'string' && h !== '');
  const fallback =
    code === 'not_installed' && !String(message).includes('session-pg migrate')
      ? 'session-postgresql is not installed in this database: run session-pg migrate'
      : undefined;
  const hintText = hint ?? ours ?? fallback;
  return `session-pg: ${code}: ${message}${sqlState ? ` (SQLSTATE ${sqlState})` : ''}${hintText !== undefined ? ` HINT: ${hintText.replace(/\s*\n\s*/g, ' ')}` : ''}`;
}

async function main(argv: string[]): Promise<number> {
  // `session-pg sql | head`: the reader left, which is no error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  // Its own options and help (src/scaleout-cli.ts).
  if (argv[0] === 'scaleout') return scaleoutCommand(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({ args: negativeNumbersAsArguments(argv), allowPositionals: true, options });
  } catch (err) {
    console.error(`session-pg: ${(err as Error).message.split('\n', 1)[0]} (see session-pg --help)`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [name, ...args] = positionals;
  if (name === undefined) {
    if (values.help) {
      console.log(help.main);
      return 0;
    }
    console.error(help.main);
    return 2;
  }
  // Object.hasOwn: "toString" or "__proto__" are not commands.
  if (!Object.hasOwn(commandOptions, name)) {
    console.error(`session-pg: unknown command "${name}" (see session-pg --help)`);
    return 2;
  }
  const command = name as Command;
  if (values.help) {
    console.log(help[command]);
    return 0;
  }
  const stray = Object.keys(values).filter((o) => o !== 'database-url' && !commandOptions[command].includes(o));
  try {
    if (stray.length > 0) throw new Usage(`does not take --${stray.join(', --')}`);
    await run(command, args, values);
    return 0;
  } catch (err) {
    if (err instanceof Usage || (err instanceof SessionError && err.code === 'invalid_argument')) {
      console.error(`session-pg ${command}: ${err.message} (see session-pg ${command} --help)`);
      return 2;
    }
    console.error(errorLine(err, await roleHint(command, err, values)));
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
