import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { withClient, type ConnectionOptions, type Notice } from './connection.js';
import { SessionError } from './errors.js';

/** The table (in schema public) recording applied migrations; sql/install.sql writes the same one. */
export const migrationsTable = 'session_migrations';
const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Options of {@link migrate} and {@link migrationStatus}. */
export interface MigrateOptions extends ConnectionOptions {
  /** `up` (default) applies every pending migration; `down` reverts the last `count` (default 1). */
  direction?: 'up' | 'down';
  count?: number;
  /**
   * Where progress and the database's notices go (what a DBA must do by hand, e.g. schedule the
   * pg_cron job in another database). Default: standard error. `false` silences it.
   */
  log?: ((line: string) => void) | false;
}

function logger(log: MigrateOptions['log']): (line: string) => void {
  if (log === false) return () => {};
  return log ?? ((line) => console.error(line));
}

const noticeLogger = (log: (line: string) => void) => (n: Notice) =>
  log(`${n.severity ?? 'NOTICE'}: ${n.message}${n.hint ? `\n  HINT: ${n.hint}` : ''}`);

/**
 * Applies (or with `direction: 'down'` reverts) the schema migrations, in one transaction.
 * Concurrent runs are safe: they wait on node-pg-migrate's advisory lock, then find nothing to do.
 * Resolves the names of the migrations it ran. Rejects with a {@link SessionError}.
 */
export async function migrate(options: MigrateOptions = {}): Promise<string[]> {
  const log = logger(options.log);
  const direction = options.direction ?? 'up';
  if (direction !== 'up' && direction !== 'down') {
    throw new SessionError('invalid_argument', "direction must be 'up' or 'down'");
  }
  const count = options.count ?? (direction === 'up' ? Infinity : 1);
  return withClient({ applicationName: 'session-postgresql migrate', ...options }, async (dbClient) => {
    const ran = await runner({
      dbClient,
      dir: migrationsDir,
      migrationsTable,
      direction,
      count,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      checkOrder: true,
      logger: { debug: () => {}, info: log, warn: log, error: log },
    });
    return ran.map((m) => m.name);
  }, noticeLogger(log));
}

/** One migration shipped with the package, and whether this database has it. */
export interface MigrationState {
  name: string;
  applied: boolean;
  /** When it was applied (database clock, UTC), if it was. */
  runOn?: Date;
}

/** Which of the package's migrations the database has applied. */
export async function migrationStatus(options: MigrateOptions = {}): Promise<MigrationState[]> {
  const names = readdirSync(migrationsDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
  return withClient(options, async (client) => {
    const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`public.${migrationsTable}`]);
    const applied = new Map<string, Date>();
    if (exists.rows[0]?.t) {
      const res = await client.query<{ name: string; run_on: Date }>(`SELECT name, run_on FROM public.${migrationsTable}`);
      for (const r of res.rows) applied.set(r.name, r.run_on);
    }
    return names.map((name) => {
      const runOn = applied.get(name);
      return runOn === undefined ? { name, applied: false } : { name, applied: true, runOn };
    });
  });
}
