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
  /**
   * The role the application's login roles are granted (default `session_client`). Roles are
   * cluster-wide: give each database its own pair so that one database's app role is refused in
   * another. Read by the migrations that grant privileges; set it the first time you migrate.
   */
  clientRole?: string;
  /** The role for the administrative calls (default period, purge, stats); default `session_admin`. */
  adminRole?: string;
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
  const roles = roleSettings(options);
  return withClient({ applicationName: 'session-postgresql migrate', ...options }, async (dbClient) => {
    // The migrations (and node-pg-migrate's own queries) run with a search_path no other role can
    // write to: a function or operator planted in "$user" or public can never be picked instead of
    // pg_catalog's. pg_temp last: its functions are never found without qualification.
    await dbClient.query(
      `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),
              pg_catalog.set_config('session_postgresql.client_role', $1, false),
              pg_catalog.set_config('session_postgresql.admin_role', $2, false)`,
      [roles.client, roles.admin],
    );
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

const roleName = /^[a-z_][a-z0-9_$]{0,62}$/;

/** The role names the migrations grant to; refused unless they are plain lower-case identifiers. */
function roleSettings(options: MigrateOptions): { client: string; admin: string } {
  const client = options.clientRole ?? 'session_client';
  const admin = options.adminRole ?? 'session_admin';
  for (const [name, role] of [['clientRole', client], ['adminRole', admin]] as const) {
    if (typeof role !== 'string' || !roleName.test(role) || role.startsWith('pg_') || role === 'public') {
      throw new SessionError('invalid_argument', `${name} must be a lower-case identifier (a-z, 0-9, _), not public or pg_*`);
    }
  }
  if (client === admin) throw new SessionError('invalid_argument', 'clientRole and adminRole must differ');
  return { client, admin };
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
