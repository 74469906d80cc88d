#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { migrate, migrationStatus } from './migrate.js';
import { SessionError } from './errors.js';

const usage = {
  main: `Usage: session-pg <command> [options]

Commands:
  migrate            apply pending migrations (session-pg migrate --help)
  migrate down       revert the last migration
  status             list migrations and whether they are applied

Options:
  --database-url URL   database to use (default: $DATABASE_URL, then the PG* variables)
  -h, --help           show help

Exit codes: 0 success, 1 the database refused or failed, 2 wrong usage.`,
  migrate: `Usage: session-pg migrate [down] [--count N] [--database-url URL]

Applies every pending migration in one transaction (or with "down", reverts the last N, default 1).
Concurrent runs wait for each other. Notices from the database (e.g. how to schedule the pg_cron
job when this is not pg_cron's database) are printed to standard error.`,
  status: `Usage: session-pg status [--database-url URL]

Prints each migration shipped with this version and whether the database has applied it.`,
} as const;

function fail(message: string, code: number): never {
  console.error(message);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'database-url': { type: 'string' },
        count: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${usage.main}`, 2);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (command === undefined || (command !== 'migrate' && command !== 'status')) {
    if (values.help) return console.log(usage.main);
    fail(command === undefined ? usage.main : `Unknown command "${command}".\n\n${usage.main}`, 2);
  }
  if (values.help) return console.log(usage[command]);
  const connectionString = values['database-url'] ?? process.env.DATABASE_URL;
  const conn = connectionString === undefined ? {} : { connectionString };

  if (command === 'status') {
    if (rest.length > 0) fail(usage.status, 2);
    for (const m of await migrationStatus(conn)) {
      console.log(`${m.applied ? 'applied' : 'pending'}  ${m.name}${m.runOn ? `  ${m.runOn.toISOString()}` : ''}`);
    }
    return;
  }
  if (rest.length > 1 || (rest[0] !== undefined && rest[0] !== 'down' && rest[0] !== 'up')) fail(usage.migrate, 2);
  const direction = rest[0] === 'down' ? 'down' : 'up';
  const count = values.count === undefined ? undefined : Number(values.count);
  if (count !== undefined && !(Number.isSafeInteger(count) && count > 0)) fail('--count must be a positive integer', 2);
  const ran = await migrate({ ...conn, direction, ...(count === undefined ? {} : { count }), log: (l) => console.error(l) });
  console.log(ran.length === 0 ? 'Nothing to do: the database is up to date.' : `${direction === 'up' ? 'Applied' : 'Reverted'}: ${ran.join(', ')}`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = err instanceof SessionError ? err.code : 'error';
  fail(`session-pg: ${code}: ${(err as Error).message}`, 1);
});
