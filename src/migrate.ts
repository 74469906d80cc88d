import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { runner } from 'node-pg-migrate';
import { withClient, type ConnectionOptions, type Notice } from './connection.js';
import { purgeCommand } from './admin.js';
import { SessionError } from './errors.js';

/** The table (in schema public) recording applied migrations; sql/install.sql writes the same one. */
export const migrationsTable = 'session_migrations';
const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Options of {@link migrate} and {@link migrationStatus}. */
export interface MigrateOptions extends ConnectionOptions {
  /**
   * `up` (default) applies every pending migration, or the first `count`. The migrations are
   * forward-only: `down` is refused (`invalid_argument`); sql/uninstall.sql removes everything.
   */
  direction?: 'up' | 'down';
  count?: number;
  /**
   * Where the database's notices go (what a DBA must do by hand, e.g. schedule the pg_cron job in
   * another database, or create the roles), once the run is over, with only the final instruction
   * where a later migration of the run replaces an earlier one's (002 changes the pg_cron job's
   * command, 003 the roles). Default (or `false`): nothing is logged; `session-pg migrate` passes
   * standard error.
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

const silent = () => {};

// What a notice is about. 002 re-issues 001's advice on the pg_cron job with its new command, and
// 003 001's advice on roles: a later notice of the same topic supersedes an earlier one's hint.
const topic = (n: Notice): string | undefined => {
  const text = `${n.message ?? ''} ${n.hint ?? ''}`;
  if (/purge.job|pg_cron/i.test(text)) return 'schedule';
  // The proxy role (006) is advice of its own; every other roles hint ends in grant_roles(), and
  // the last one lists every role still missing.
  if (/proxy role/i.test(text)) return 'proxy role';
  if (/may not create roles|roles are missing/i.test(text)) return 'roles';
  return undefined;
};

// 001's job command inside a cron.schedule(...) or cron.schedule_in_database(...) call.
const oldJobCommand = /(cron\.schedule(?:_in_database)?\([^;]*?)'SELECT session\.session_purge\(\)'/g;

/**
 * The notices of a run as they are printed. The migration files never change, so when 002 ran
 * after 001 in the same run, 001's schedule calls get 002's command (the one the job must run),
 * and a hint is dropped when a later notice of its topic repeats it, still names 001's command,
 * or (roles) replaces it: only the final instruction is shown. Messages are always kept.
 */
export function noticeLines(notices: Notice[]): string[] {
  const hints = notices.map((n, i) => {
    const upgraded = notices.slice(i + 1).some((later) => /session_purge_job/.test(later.hint ?? ''));
    return upgraded ? n.hint?.replace(oldJobCommand, `$1'${purgeCommand}'`) : n.hint;
  });
  return notices.map((n, i) => {
    const t = topic(n);
    const hint = hints[i];
    const later = notices
      .map((l, j) => ({ t: topic(l), hint: hints[j] }))
      .slice(i + 1)
      .filter((l) => t !== undefined && l.t === t);
    const superseded =
      later.length > 0 && (t === 'roles' || /session\.session_purge\(\)/.test(hint ?? '') || later.some((l) => l.hint === hint));
    const shown =
      hint && !superseded ? `\n  HINT: ${hint}${/cron\.schedule_in_database\(/.test(hint) ? `\n  HINT: ${asOwner}` : ''}` : '';
    return `${n.severity ?? 'NOTICE'}: ${n.message ?? ''}${shown}`;
  });
}

// A job runs as the role that schedules it: the schedule_in_database call printed by the
// migrations must be run by the owner (a managed service's admin user would get a job that fails).
const asOwner =
  'Run it as the owner of schema session (the job runs as the role that schedules it), once a superuser or the ' +
  "platform's admin user granted the owner, in pg_cron's database: GRANT USAGE ON SCHEMA cron TO <owner>; GRANT EXECUTE ON FUNCTION " +
  'cron.schedule_in_database(text, text, text, text, text, boolean) TO <owner>; or, as the owner: session-pg schedule --cron-database-url URL';

/**
 * Applies the pending schema migrations, in one transaction. Concurrent runs are safe: they wait
 * on node-pg-migrate's advisory lock, then find nothing to do. Resolves the names of the
 * migrations it ran. Rejects with a {@link SessionError}: `invalid_argument` for `direction:
 * 'down'` (forward-only), `prerelease_schema` for a database a pre-release installed,
 * `newer_schema` for one a newer version migrated.
 */
export async function migrate(options: MigrateOptions = {}): Promise<string[]> {
  const log = options.log || silent;
  const direction = options.direction ?? 'up';
  if (direction === 'down') throw new SessionError('invalid_argument', downRefused);
  if (direction !== 'up') throw new SessionError('invalid_argument', "direction must be 'up'");
  const count = options.count ?? Infinity;
  const roles = roleSettings(options);
  const notices: Notice[] = [];
  const flush = () => {
    for (const line of noticeLines(notices)) log(line);
  };
  return withClient(
    { applicationName: 'session-postgresql migrate', ...options },
    async (dbClient) => {
      // The migrations (and node-pg-migrate's own queries) run with a search_path no other role can
      // write to: a function or operator planted in "$user" or public can never be picked instead of
      // pg_catalog's. pg_temp last: its functions are never found without qualification.
      await dbClient.query(
        `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),
              pg_catalog.set_config('session_postgresql.client_role', $1, false),
              pg_catalog.set_config('session_postgresql.admin_role', $2, false)`,
        [roles.client, roles.admin],
      );
      await checkDatabase(dbClient, options);
      const ran = await runner({
        dbClient,
        dir: migrationsDir,
        migrationsTable,
        direction,
        count,
        singleTransaction: true,
        advisoryLockMode: 'wait',
        checkOrder: true,
        // Its banner ("> Migrating files", "### MIGRATION ...") and its copies of errors, which we
        // reject with instead, are not for our users.
        logger: { debug: silent, info: silent, warn: silent, error: silent },
      });
      return ran.map((m) => m.name);
    },
    (n) => {
      notices.push(n);
    },
  ).finally(flush);
}

/** The migrations shipped with this package, oldest first: the single list (tests take it from here). */
export const migrationNames = (): string[] =>
  readdirSync(migrationsDir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .sort();
const shippedMigrations = migrationNames;

/** Why `migrate down` is refused. */
export const downRefused =
  'the migrations are forward-only: there is no down step. To remove session-postgresql from a ' +
  'database (every session is lost), run: psql -v ON_ERROR_STOP=1 -d DATABASE -f sql/uninstall.sql';

/**
 * The migrations of the pre-releases (0.1.0 development versions), folded into 001_baseline. A
 * database that lists them has a schema no step upgrades: it is refused, never half-migrated.
 */
export const preReleaseMigrations: readonly string[] = [
  '001_core',
  '002_purge_job',
  '003_security',
  '004_batch',
  '005_accounts',
  '006_partition',
  '007_batch_rows',
  '008_batch_fast',
  '009_get_batch',
  '010_batch_arrays',
];

/** Throws `prerelease_schema` when a pre-release installed the database (sql/install.sql says the same). */
function refusePreRelease(applied: Map<string, Date> | null): void {
  const old = [...(applied?.keys() ?? [])].filter((name) => preReleaseMigrations.includes(name));
  if (old.length === 0) return;
  throw new SessionError(
    'prerelease_schema',
    `this database was installed by a pre-release of session-postgresql (${old.join(', ')}): ` +
      'nothing was changed. Export what you need, remove it with sql/uninstall.sql (every session is lost), then install again',
    { sqlState: '55000' },
  );
}

/** The migrations the database has applied, by name; null when it has no migrations table. */
async function appliedMigrations(client: pg.Client): Promise<Map<string, Date> | null> {
  const exists = await client.query<{ t: string | null }>('SELECT pg_catalog.to_regclass($1) AS t', [
    `public.${migrationsTable}`,
  ]);
  if (!exists.rows[0]?.t) return null;
  const res = await client.query<{ name: string; run_on: Date }>(
    `SELECT name, run_on FROM public.${migrationsTable} ORDER BY run_on, id`,
  );
  return new Map(res.rows.map((r) => [r.name, r.run_on]));
}

/**
 * Refuses, before node-pg-migrate starts, what it would get wrong or report badly: a database that
 * a newer version migrated (it would revert or skip what it does not know), role names other than
 * those the install chose (they would be silently ignored), and a role that may not create the
 * migrations table (node-pg-migrate reports that with a stack trace and no SQLSTATE).
 */
async function checkDatabase(client: pg.Client, options: MigrateOptions): Promise<void> {
  const applied = await appliedMigrations(client);
  refusePreRelease(applied);
  const shipped = new Set(shippedMigrations());
  const newer = [...(applied?.keys() ?? [])].filter((name) => !shipped.has(name));
  if (newer.length > 0) {
    throw new SessionError(
      'newer_schema',
      `the database has migrations newer than this package (${newer.join(', ')}): ` +
        'nothing was changed; upgrade session-postgresql to migrate it',
    );
  }
  if (options.clientRole !== undefined || options.adminRole !== undefined) await checkRoleNames(client, options);
  if (applied !== null) return;
  const r = await client.query<{ user: string; may: boolean }>(
    `SELECT CURRENT_USER AS user, pg_catalog.has_schema_privilege('public', 'CREATE') AS may`,
  );
  const row = r.rows[0];
  if (row !== undefined && !row.may) {
    throw new SessionError(
      'permission_denied',
      `role ${row.user} may not create public.${migrationsTable} (no CREATE on schema public): ` +
        `migrate as the database owner, or have it run GRANT CREATE ON SCHEMA public TO ${row.user}`,
      { sqlState: '42501' },
    );
  }
}

const roleName = /^[a-z_][a-z0-9_$]{0,62}$/;

/** The role names the migrations grant to; refused unless they are plain lower-case identifiers. */
function roleSettings(options: MigrateOptions): { client: string; admin: string } {
  const client = options.clientRole ?? 'session_client';
  const admin = options.adminRole ?? 'session_admin';
  for (const [name, role] of [
    ['clientRole', client],
    ['adminRole', admin],
  ] as const) {
    if (typeof role !== 'string' || !roleName.test(role) || role.startsWith('pg_') || role === 'public') {
      throw new SessionError('invalid_argument', `${name} must be a lower-case identifier (a-z, 0-9, _), not public or pg_*`);
    }
  }
  if (client === admin) throw new SessionError('invalid_argument', 'clientRole and adminRole must differ');
  return { client, admin };
}

/** The role names an install stored in session.config (003) cannot be changed by migrating again. */
async function checkRoleNames(db: pg.Client, options: MigrateOptions): Promise<void> {
  if (!(await db.query(`SELECT pg_catalog.to_regclass('session.config') IS NOT NULL AS x`)).rows[0]?.x) return;
  const config = (
    await db.query<{ c: { client_role?: string; admin_role?: string } }>(
      'SELECT pg_catalog.to_jsonb(c) AS c FROM session.config c',
    )
  ).rows[0]?.c;
  if (config?.client_role === undefined || config.admin_role === undefined) return;
  const { client_role: client, admin_role: admin } = config;
  if ((options.clientRole ?? client) !== client || (options.adminRole ?? admin) !== admin) {
    throw new SessionError(
      'invalid_argument',
      `this database's roles were named when it was installed: ${client} and ${admin}; ` +
        'migrating again cannot rename them (leave the role names out, or pass those)',
    );
  }
}

/** A migration shipped with the package or applied to the database, and whether it is applied. */
export interface MigrationState {
  name: string;
  applied: boolean;
  /** When it was applied (database clock, UTC), if it was. */
  runOn?: Date;
  /**
   * True for a migration the database has but this package does not ship: a newer version applied
   * it. `migrate` refuses such a database (`newer_schema`).
   */
  newer?: boolean;
}

/**
 * The package's migrations and whether the database has applied them, then any newer ones it has.
 * Rejects with `prerelease_schema` for a database a pre-release installed.
 */
export async function migrationStatus(options: MigrateOptions = {}): Promise<MigrationState[]> {
  const names = shippedMigrations();
  return withClient(options, async (client) => {
    const found = await appliedMigrations(client);
    refusePreRelease(found);
    const applied = found ?? new Map<string, Date>();
    const shipped: MigrationState[] = names.map((name) => {
      const runOn = applied.get(name);
      return runOn === undefined ? { name, applied: false } : { name, applied: true, runOn };
    });
    const newer = [...applied]
      .filter(([name]) => !names.includes(name))
      .map(([name, runOn]) => ({ name, applied: true, runOn, newer: true }));
    return [...shipped, ...newer];
  });
}
