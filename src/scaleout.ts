// Scale-out over several PostgreSQL databases with PL/Proxy (docs/scale-out.md): install a proxy
// database over a list of partitions, migrate the partitions, report their state, and move one
// partition to another server. The SQL lives in sql/proxy/; this only applies and calls it.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { clientConfig, withClient, type ConnectionOptions, type Notice } from './connection.js';
import { SessionError, toSessionError } from './errors.js';
import { migrate, type MigrateOptions } from './migrate.js';

const proxySqlDir = fileURLToPath(new URL('../../sql/proxy/', import.meta.url));

/** The table (in schema public of the proxy database) recording the applied files of sql/proxy/. */
export const proxyMigrationsTable = 'session_proxy_migrations';
/** Taken for the whole install, so that two installers never interleave. */
const proxyInstallLock = 7241865325823965;

/** The files of sql/proxy/, in the order they apply (their names without `.sql`). */
export function proxyMigrations(): string[] {
  return readdirSync(proxySqlDir).filter((f) => /^\d{3}_.*\.sql$/.test(f)).map((f) => f.slice(0, -4)).sort();
}

/**
 * A URL with its password (and any `password` parameter) replaced by `***`, for output. Anything
 * that is not a URL is shown as `(not a URL)`: a conninfo string could hold a password anywhere.
 */
export function redact(url: string): string {
  if (!URL.canParse(url)) return '(not a URL)';
  const u = new URL(url);
  if (u.password !== '') u.password = '***';
  if (u.searchParams.has('password')) u.searchParams.set('password', '***');
  return u.toString();
}

/** libpq's quoting of a conninfo value. */
const quote = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * Server settings of the proxy's connections to the partitions, for the same reasons as the
 * client's own (src/connection.ts): no parameter (a key) in error logs, and generic plans, so that
 * auto_explain never shows a key folded into a plan.
 */
const partitionServerOptions = '-c log_parameter_max_length_on_error=0 -c plan_cache_mode=force_generic_plan';

/** A partition as the proxy stores it: a conninfo without credentials, and the credentials. */
export interface PartitionTarget { conninfo: string; user: string; password: string | null }

/**
 * Splits a partition URL (`postgresql://login:password@host:port/dbname?sslmode=...`) into the
 * conninfo the proxy's foreign server holds (no credentials) and the login for its user mapping.
 */
export function partitionTarget(url: string, tcpUserTimeoutMs = 5000): PartitionTarget {
  if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) {
    throw new SessionError('invalid_argument', 'a partition must be given as a postgresql:// URL');
  }
  const u = new URL(url);
  const dbname = decodeURIComponent(u.pathname.slice(1));
  if (u.hostname === '' || dbname === '') throw new SessionError('invalid_argument', `partition ${redact(url)}: host and database name are required`);
  if (u.username === '') throw new SessionError('invalid_argument', `partition ${redact(url)}: the login the proxy uses is required (user@host)`);
  const parts = [`host=${quote(u.hostname.replace(/^\[(.*)\]$/, '$1'))}`, `port=${quote(u.port === '' ? '5432' : u.port)}`, `dbname=${quote(dbname)}`];
  for (const [key, value] of u.searchParams) {
    if (key === 'user' || key === 'password' || key === 'options' || !/^[a-z_]+$/.test(key)) {
      throw new SessionError('invalid_argument', `partition ${redact(url)}: parameter "${key}" is not accepted`);
    }
    parts.push(`${key}=${quote(value)}`);
  }
  if (!u.searchParams.has('tcp_user_timeout')) parts.push(`tcp_user_timeout=${quote(String(tcpUserTimeoutMs))}`);
  parts.push(`application_name='session-postgresql proxy'`, `options=${quote(partitionServerOptions)}`);
  const password = u.password === '' ? null : decodeURIComponent(u.password);
  return { conninfo: parts.join(' '), user: decodeURIComponent(u.username), password };
}

/** Options of {@link installProxy}. The connection is to the proxy database, as its owner. */
export interface ProxyInstallOptions extends ConnectionOptions {
  /**
   * The partitions' URLs, in partition order (a power of two of them), each with the login the
   * proxy uses there: one login for all (PL/Proxy keeps one user mapping per cluster). It must be
   * a member of the partitions' proxy role (migration 006). The credentials are stored only in the
   * proxy database's catalog (its user mapping), never printed.
   */
  partitions: string[];
  /** The proxy's client and admin roles (defaults `session_client`, `session_admin`), set at first install. */
  clientRole?: string;
  adminRole?: string;
  /**
   * Give up on a partition that does not acknowledge what was sent (a host that is gone, a cut
   * network) after this many milliseconds: libpq's `tcp_user_timeout` (default 5000). PL/Proxy
   * connects asynchronously, where libpq's `connect_timeout` does not apply.
   */
  tcpUserTimeoutMs?: number;
  /** Give up on a partition's answer after this many seconds: PL/Proxy's `query_timeout` (default 10; 0 = never). */
  queryTimeoutSeconds?: number;
  /** Progress lines (never credentials). Default: standard error; `false` silences it. */
  log?: ((line: string) => void) | false;
}

const lineLogger = (log: ((line: string) => void) | false | undefined) =>
  log === false ? () => {} : log ?? ((line: string) => console.error(line));

const noticeLogger = (log: (line: string) => void) => (n: Notice) =>
  log(`${n.severity ?? 'NOTICE'}: ${n.message}${n.hint ? `\n  HINT: ${n.hint}` : ''}`);

function seconds(name: string, v: number | undefined, fallback: number): number {
  const n = v ?? fallback;
  if (!Number.isSafeInteger(n) || n < 0 || n > 86400) throw new SessionError('invalid_argument', `${name} must be whole seconds from 0 to 86400`);
  return n;
}

/**
 * Installs or updates a proxy database: applies the pending files of sql/proxy/ and writes the
 * cluster (partitions, timeouts, user mapping), all in one transaction. Re-running it with the same
 * partitions changes nothing; with other URLs it re-points the partitions (their count is fixed).
 * Resolves the names of the files it applied. Needs a superuser (CREATE EXTENSION plproxy) the
 * first time.
 */
export async function installProxy(options: ProxyInstallOptions): Promise<string[]> {
  const { partitions, clientRole, adminRole, tcpUserTimeoutMs, queryTimeoutSeconds, log: logOption, ...connection } = options;
  const log = lineLogger(logOption);
  if (!Array.isArray(partitions) || partitions.some((p) => typeof p !== 'string')) {
    throw new SessionError('invalid_argument', 'partitions must be an array of postgresql:// URLs');
  }
  const n = partitions.length;
  if (n < 1 || (n & (n - 1)) !== 0) throw new SessionError('invalid_argument', `PL/Proxy needs a power of two partitions (1, 2, 4, 8, 16...), got ${n}`);
  const tcpTimeout = tcpUserTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(tcpTimeout) || tcpTimeout < 0) throw new SessionError('invalid_argument', 'tcpUserTimeoutMs must be a whole number of milliseconds >= 0');
  const targets = partitions.map((p) => partitionTarget(p, tcpTimeout));
  const login = targets[0] as PartitionTarget;
  if (targets.some((t) => t.user !== login.user || t.password !== login.password)) {
    throw new SessionError('invalid_argument', 'every partition URL must carry the same login and password (PL/Proxy has one user mapping per cluster)');
  }
  const queryTimeout = seconds('queryTimeoutSeconds', queryTimeoutSeconds, 10);
  const roles = { client: clientRole ?? 'session_client', admin: adminRole ?? 'session_admin' };
  return withClient({ applicationName: 'session-postgresql proxy install', ...connection }, async (c) => {
    await c.query('BEGIN');
    try {
      await c.query(
        `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
                pg_catalog.set_config('session_postgresql.client_role', $1, true),
                pg_catalog.set_config('session_postgresql.admin_role', $2, true)`, [roles.client, roles.admin]);
      // The user mapping's password is a parameter below: keep it out of the server log.
      const superuser = (await c.query<{ s: boolean }>(`SELECT rolsuper AS s FROM pg_catalog.pg_roles WHERE rolname = current_user`)).rows[0]?.s === true;
      if (superuser) {
        await c.query(`SELECT pg_catalog.set_config('log_parameter_max_length', '0', true),
                              pg_catalog.set_config('log_parameter_max_length_on_error', '0', true)`);
      }
      await c.query('SELECT pg_catalog.pg_advisory_xact_lock($1)', [proxyInstallLock]);
      await c.query(`CREATE TABLE IF NOT EXISTS public.${proxyMigrationsTable} (
        id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, run_on timestamp NOT NULL DEFAULT now())`);
      const applied = new Set((await c.query<{ name: string }>(`SELECT name FROM public.${proxyMigrationsTable}`)).rows.map((r) => r.name));
      const ran: string[] = [];
      for (const name of proxyMigrations()) {
        if (applied.has(name)) continue;
        await c.query(readFileSync(`${proxySqlDir}${name}.sql`, 'utf8'));
        await c.query(`INSERT INTO public.${proxyMigrationsTable} (name) VALUES ($1)`, [name]);
        log(`applied sql/proxy/${name}.sql`);
        ran.push(name);
      }
      await c.query('SELECT session_proxy.set_partitions($1::text[], $2)', [targets.map((t) => t.conninfo), queryTimeout]);
      await c.query('SELECT session_proxy.set_credentials($1, $2)', [login.user, login.password]);
      await c.query('COMMIT');
      log(`proxy over ${n} partitions: ${partitions.map(redact).join(' ')}`);
      return ran;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }, noticeLogger(log));
}

/** One partition's state, as the proxy sees it. */
export interface PartitionStatus {
  part: number;
  /** host, port and database (the foreign server's option; it holds no credentials). */
  conninfo: string;
  database: string | null;
  live: number | null;
  expired: number | null;
  tableBytes: number | null;
  defaultPeriod: number | null;
  /** SQLSTATE and message when the partition could not answer. */
  error: string | null;
}

export interface ProxyStatus {
  migrations: { name: string; applied: boolean }[];
  partitions: PartitionStatus[];
}

const numbers = { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) } as pg.CustomTypesConfig;

/** Which files of sql/proxy/ the proxy has, and each partition's figures (or why it is missing). */
export async function proxyStatus(options: ConnectionOptions): Promise<ProxyStatus> {
  return withClient({ applicationName: 'session-postgresql proxy status', ...options }, async (c) => {
    const exists = (await c.query<{ t: string | null }>('SELECT pg_catalog.to_regclass($1) AS t', [`public.${proxyMigrationsTable}`])).rows[0]?.t;
    const applied = new Set(exists ? (await c.query<{ name: string }>(`SELECT name FROM public.${proxyMigrationsTable}`)).rows.map((r) => r.name) : []);
    const migrations = proxyMigrations().map((name) => ({ name, applied: applied.has(name) }));
    if (!exists) return { migrations, partitions: [] };
    const rows = (await c.query({ text: 'SELECT * FROM session_proxy.partition_status()', types: numbers })).rows as {
      part: number; conninfo: string; database: string | null; live: number | null; expired: number | null;
      table_bytes: number | null; default_period: number | null; error: string | null }[];
    return {
      migrations,
      partitions: rows.map((r) => ({ part: r.part, conninfo: r.conninfo, database: r.database, live: r.live, expired: r.expired,
        tableBytes: r.table_bytes, defaultPeriod: r.default_period, error: r.error })),
    };
  });
}

/**
 * `session-pg migrate` for every partition, one after another (each in its own transaction), with
 * the partitions' owner URLs. `proxyRole` names the role migration 006 grants to (default
 * `session_proxy`, or `<clientRole>_proxy` with a custom client role). Resolves, per partition, the
 * migrations it applied.
 */
export async function migratePartitions(urls: string[], options: Omit<MigrateOptions, 'connectionString' | 'conninfo'> & { proxyRole?: string } = {}): Promise<string[][]> {
  const { proxyRole, ...rest } = options;
  const log = lineLogger(rest.log);
  const result: string[][] = [];
  for (const url of urls) {
    const extra = proxyRole === undefined ? {} : { options: `-c session_postgresql.proxy_role=${proxyRole}` };
    if (proxyRole !== undefined && !/^[a-z_][a-z0-9_$]{0,62}$/.test(proxyRole)) throw new SessionError('invalid_argument', 'proxyRole must be a lower-case identifier');
    const ran = await migrate({ ...rest, ...extra, connectionString: url, log });
    log(`${redact(url)}: ${ran.length === 0 ? 'up to date' : `applied ${ran.join(', ')}`}`);
    result.push(ran);
  }
  return result;
}
