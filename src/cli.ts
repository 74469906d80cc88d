#!/usr/bin/env node
// session-pg: the DBA's tool. Exit codes: 0 success, 1 the database failed or refused, 2 usage.
import { parseArgs } from 'node:util';
import { defaultPurgePause, installScript, validPurgePause, purgeAll, schedulePurge, stats, unschedulePurge, type PurgeProgress } from './admin.js';
import { SessionError } from './errors.js';
import { importArguments, importCommand } from './import.js';
import { migrate, migrationStatus } from './migrate.js';
import { connect } from './store.js';

const common = `Options:
  --database-url URL   the database (default: $DATABASE_URL, then the PG* variables)
  -h, --help           show help`;

const help = {
  main: `Usage: session-pg <command> [options]

Commands:
  migrate [down]          apply pending migrations, or revert the last one
  status                  list migrations and whether they are applied
  purge                   delete every expired session, in short batches, with progress
  stats                   live and expired sessions, sizes, settings, the pg_cron job
  default-period [secs]   show or change the default session period
  schedule / unschedule   add or remove the pg_cron purge job by hand
  sql                     print the psql install script (for DBAs who apply SQL themselves)
  import connect-pg-simple  copy the live sessions of a connect-pg-simple table into this store

Run "session-pg <command> --help" for details.
${common}

Exit codes: 0 success, 1 the database failed or refused, 2 wrong usage.`,
  migrate: `Usage: session-pg migrate [down] [--count N] [--database-url URL]

Applies every pending migration in one transaction (with "down": reverts the last N, default 1).
Concurrent runs wait for each other. The database's notices (e.g. how to schedule the pg_cron job
when this is not pg_cron's database) are printed to standard error.
${common}`,
  status: `Usage: session-pg status [--database-url URL]

Prints each migration shipped with this version and whether the database has applied it.
${common}`,
  purge: `Usage: session-pg purge [--batch-size N] [--pause FACTOR] [--database-url URL]

Calls session.session_purge() until it returns 0. Each call is one short transaction deleting about
N rows (default 10000). After each call it rests FACTOR times as long as the call took (default
${defaultPurgePause}), so that a large backlog does not crowd out the application's queries; --pause 0 runs
the calls back to back. Shows a progress line on a terminal, plain lines otherwise.
${common}`,
  stats: `Usage: session-pg stats [--json] [--cron-database-url URL] [--database-url URL]

Live and expired (not yet purged) sessions, table and index sizes, default period, value limit, and
the pg_cron purge job with its last runs. Needs the owner's role (session_stats is not granted to
session_client). --cron-database-url: pg_cron's database, if it is not this one.
${common}`,
  'default-period': `Usage: session-pg default-period [SECONDS] [--database-url URL]

Without SECONDS, prints the default period. With SECONDS (1..3155760000), changes it for sessions
written from now on.
${common}`,
  schedule: `Usage: session-pg schedule [--every "CRON"] [--cron-database-url URL] [--database-url URL]

Schedules (or updates) the pg_cron job, every minute by default. It runs
CALL session.session_purge_job(): session_purge() until nothing is left, paced, for at most 30 s.
If pg_cron lives in another database, pass its URL with --cron-database-url: the job is then named
session-purge-<database> and uses cron.schedule_in_database.
${common}`,
  unschedule: `Usage: session-pg unschedule [--cron-database-url URL] [--database-url URL]

Removes the purge job; says so if there was none.
${common}`,
  sql: `Usage: session-pg sql

Prints sql/install.sql with every migration file inlined, e.g.
  session-pg sql | psql -v ON_ERROR_STOP=1 -d mydb
It applies only what is missing, under the same lock and bookkeeping as "session-pg migrate".
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
the connection's TimeZone, as connect-pg-simple did, or in --time-zone ZONE.
Needs the owner's role of schema session (it writes session.sessions directly).
${common}`,
} as const;
type Command = keyof typeof help;

class Usage extends Error {}

const number = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Usage(`${name} must be a whole number`);
  return n;
};

function bar(p: PurgeProgress): string {
  const secs = p.elapsedMs / 1000;
  const rate = secs > 0 ? Math.round(p.deleted / secs) : 0;
  return `purged ${p.deleted} rows in ${p.batches} batches, ${rate} rows/s, ${secs.toFixed(1)} s`;
}

async function run(command: Command, args: string[], values: Record<string, string | boolean | undefined>): Promise<void> {
  const url = (values['database-url'] as string | undefined) ?? process.env.DATABASE_URL;
  const conn = url ? { connectionString: url } : {};
  const cronUrl = values['cron-database-url'] as string | undefined;
  const cron = cronUrl === undefined ? {} : { cronDatabaseUrl: cronUrl };
  const maxArgs = command === 'migrate' || command === 'default-period' || command === 'import' ? 1 : 0;
  if (args.length > maxArgs) throw new Usage(help[command]);
  switch (command) {
    case 'migrate': {
      if (args[0] !== undefined && args[0] !== 'down' && args[0] !== 'up') throw new Usage(help.migrate);
      const direction = args[0] === 'down' ? 'down' : 'up';
      const count = number('--count', values.count as string | undefined);
      if (count !== undefined && count < 1) throw new Usage('--count must be positive');
      const ran = await migrate({ ...conn, direction, ...(count === undefined ? {} : { count }), log: (l) => console.error(l) });
      console.log(ran.length === 0 ? 'Nothing to do: the database is up to date.' : `${direction === 'up' ? 'Applied' : 'Reverted'}: ${ran.join(', ')}`);
      return;
    }
    case 'status':
      for (const m of await migrationStatus(conn)) {
        console.log(`${m.applied ? 'applied' : 'pending'}  ${m.name}${m.runOn ? `  ${m.runOn.toISOString()}` : ''}`);
      }
      return;
    case 'purge': {
      const batchSize = number('--batch-size', values['batch-size'] as string | undefined);
      const pauseText = values.pause as string | undefined;
      const pause = pauseText === undefined ? undefined : pauseText === '' ? NaN : Number(pauseText);
      if (pause !== undefined && !validPurgePause(pause)) throw new Usage('--pause must be a number from 0 to 1000');
      const tty = process.stderr.isTTY;
      const done = await purgeAll({ ...conn, ...(batchSize === undefined ? {} : { batchSize }), ...(pause === undefined ? {} : { pause }) }, (p) => {
        if (tty) process.stderr.write(`\r${bar(p)}\x1b[K`);
        else console.error(bar(p));
      });
      if (tty) process.stderr.write('\n');
      console.log(`Done: ${done.deleted} expired sessions deleted.`);
      return;
    }
    case 'stats': {
      const s = await stats({ ...conn, ...cron });
      if (values.json) {
        console.log(JSON.stringify(s, null, 2));
        return;
      }
      console.log(`live sessions      ${s.live}`);
      console.log(`expired, unpurged  ${s.expired}`);
      console.log(`table size         ${s.tableBytes} bytes`);
      console.log(`index size         ${s.indexBytes} bytes`);
      console.log(`default period     ${s.defaultPeriod} s`);
      console.log(`max value size     ${s.maxValueBytes} bytes`);
      if (s.cron === null) console.log(`purge job          none: ${s.cronNote ?? ''}`);
      else {
        console.log(`purge job          "${s.cron.schedule}" ${s.cron.command} in ${s.cron.database}${s.cron.active ? '' : ' (inactive)'}`);
        for (const r of s.cron.lastRuns) console.log(`  ${r.start?.toISOString() ?? '-'}  ${r.status}  ${r.message ?? ''}`);
      }
      return;
    }
    case 'default-period': {
      const store = connect({ ...conn, connections: 1, applicationName: 'session-pg' });
      try {
        const period = number('SECONDS', args[0]);
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
      const options = importArguments(args, values);
      if (typeof options === 'string') throw new Usage(`${options}\n\n${help.import}`);
      await importCommand({ ...conn, ...options });
      return;
    }
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'database-url': { type: 'string' },
        'cron-database-url': { type: 'string' },
        count: { type: 'string' },
        'batch-size': { type: 'string' },
        pause: { type: 'string' },
        every: { type: 'string' },
        schema: { type: 'string' },
        table: { type: 'string' },
        'time-zone': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${help.main}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [name, ...args] = positionals;
  if (name === undefined || !(name in help) || name === 'main') {
    if (name === undefined && values.help) {
      console.log(help.main);
      return 0;
    }
    console.error(name === undefined ? help.main : `Unknown command "${name}".\n\n${help.main}`);
    return 2;
  }
  const command = name as Command;
  if (values.help) {
    console.log(help[command]);
    return 0;
  }
  try {
    await run(command, args, values);
    return 0;
  } catch (err) {
    if (err instanceof Usage) {
      console.error(err.message);
      return 2;
    }
    const code = err instanceof SessionError ? err.code : 'error';
    console.error(`session-pg: ${code}: ${(err as Error).message}`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
