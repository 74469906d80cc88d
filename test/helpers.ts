// Shared by the test files: each file gets its own database, cloned from the migrated template
// that harness/run.ts prepared, and roles it creates are dropped again.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrationNames } from '../src/migrate.js';
import { databaseUrl } from './harness/urls.js';

export { cli, cliPath, errorCode, sqlState } from './support.js';

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with "npm test"`);
  return v;
}

// pg deprecates a query sent on a client that is still executing one (pg 9 makes it an error):
// the library never does, and a test file that does so fails.
process.on('warning', (w) => {
  if (/already executing a query/.test(w.message))
    throw new Error(`a pg.Client was sent a query while executing another: ${w.stack ?? w.message}`);
});

/** Calls `f` on each item in turn: one pg.Client runs one query at a time. */
export async function inTurn<T, R>(items: readonly T[], f: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const [i, item] of items.entries()) out.push(await f(item, i));
  return out;
}

export const adminUrl = required('TEST_ADMIN_URL');
export const bindir = required('PG_BINDIR');
/** pg_cron's database in the throwaway cluster, or '' when pg_cron is not installed. */
export const cronDatabase = process.env.TEST_CRON_DATABASE ?? '';

export interface TestDatabase {
  name: string;
  /** Superuser (owner) URL. */
  url: string;
  /** Runs SQL as the owner. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * Creates a LOGIN role that is a member of session_client (and of session_admin with
   * `{ admin: true }`, for tests that also purge or change the default period), and returns its URL.
   */
  clientRole(options?: { admin?: boolean }): Promise<string>;
  /** Creates a LOGIN role that is a member of session_admin only, and returns its URL. */
  adminRole(): Promise<string>;
  drop(): Promise<void>;
}

export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values?: unknown[],
  url = adminUrl,
): Promise<pg.QueryResult<R>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query<R>(text, values);
  } finally {
    await c.end();
  }
}

export const uniqueName = (label: string) => `t_${label}_${randomBytes(4).toString('hex')}`;

/** A database cloned from the template (or empty, for migration tests). */
export async function freshDatabase(label: string, opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = uniqueName(label);
  await adminQuery(`CREATE DATABASE ${name}${opts.empty ? '' : ` TEMPLATE ${required('TEST_TEMPLATE')}`}`);
  const url = databaseUrl(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  const roles: string[] = [];
  const loginRole = async (label: string, inRoles: string) => {
    const role = uniqueName(label);
    const password = randomBytes(12).toString('hex');
    await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' IN ROLE ${inRoles}`);
    roles.push(role);
    return databaseUrl(adminUrl, name, { user: role, password });
  };
  return {
    name,
    url,
    query: (text, values) => pool.query(text, values),
    async clientRole(options = {}) {
      return loginRole('app', options.admin ? 'session_client, session_admin' : 'session_client');
    },
    async adminRole() {
      return loginRole('ops', 'session_admin');
    },
    async drop() {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      for (const r of roles) await adminQuery(`DROP ROLE IF EXISTS ${r}`);
    },
  };
}

/**
 * Why a test that runs this client binary (psql, pg_dump, pg_prove's psql) cannot run here, or
 * false: the embedded PostgreSQL of a machine without one has server binaries only.
 */
export function missingTool(binary: string): string | false {
  if (existsSync(join(bindir, binary))) return false;
  return `${binary} is not in ${bindir} (server binaries only, as the embedded ones; for the client tools with the server: Debian's postgresql package, or PG_BINDIR)`;
}

/** Runs psql (or another client binary) and returns its output; throws on a non-zero exit. */
export function pgTool(binary: string, args: string[], input?: string): string {
  const r = spawnSync(join(bindir, binary), args, { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
  if (r.status !== 0) throw new Error(`${binary} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const queryText = fileURLToPath(new URL('./harness/query-text.js', import.meta.url));

/**
 * psql -X -A -t: unaligned tuples only, ON_ERROR_STOP. Plain SQL only: where psql is not
 * installed, harness/query-text.ts prints the same through pg.
 */
export function psql(url: string, sql: string): string {
  if (!missingTool('psql')) return pgTool('psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url], sql).trim();
  const r = spawnSync(process.execPath, [queryText, url], { encoding: 'utf8', input: sql });
  if (r.status !== 0) throw new Error(`psql exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The schema as pg_dump sees it, without the per-dump \restrict key lines. */
export function schemaDump(url: string): string {
  return pgTool('pg_dump', ['--schema-only', '-n', 'session', '-d', url])
    .split('\n')
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .join('\n');
}

/** The migrations this package ships, oldest first, by name: src/migrate.ts's one list. */
export function shippedMigrations(): string[] {
  return migrationNames();
}
