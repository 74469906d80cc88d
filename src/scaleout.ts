// Scale-out over several PostgreSQL databases with PL/Proxy (docs/scale-out.md): install a proxy
// database over a list of partitions, migrate the partitions, report their state, and move one
// partition to another server. The SQL lives in sql/proxy/ (steps/ built from schema/); this only
// applies and calls it.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { clientConfig, withClient, type ConnectionOptions, type Notice } from './connection.js';
import { SessionError, toSessionError } from './errors.js';
import { migrate, type MigrateOptions } from './migrate.js';
import { stats, type CronJob } from './admin.js';

const proxySqlDir = fileURLToPath(new URL('../../sql/proxy/steps/', import.meta.url));

/** The table (in schema public of the proxy database) recording the applied steps of sql/proxy/steps/. */
export const proxyMigrationsTable = 'session_proxy_migrations';
/** Taken for the whole install, so that two installers never interleave. */
const proxyInstallLock = 7241865325823965;

/** The steps of sql/proxy/steps/, in the order they apply (their names without `.sql`). */
export function proxyMigrations(): string[] {
  return readdirSync(proxySqlDir)
    .filter((f) => /^\d{3}_.*\.sql$/.test(f))
    .map((f) => f.slice(0, -4))
    .sort();
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
export interface PartitionTarget {
  conninfo: string;
  user: string;
  password: string | null;
}

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
  if (u.hostname === '' || dbname === '')
    throw new SessionError('invalid_argument', `partition ${redact(url)}: host and database name are required`);
  if (u.username === '')
    throw new SessionError('invalid_argument', `partition ${redact(url)}: the login the proxy uses is required (user@host)`);
  const parts = [
    `host=${quote(u.hostname.replace(/^\[(.*)\]$/, '$1'))}`,
    `port=${quote(u.port === '' ? '5432' : u.port)}`,
    `dbname=${quote(dbname)}`,
  ];
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

/** The proxy database's default role pair; distinct from the partitions' (`session_client`, `session_admin`). */
export const proxyRoles = { client: 'session_proxy_client', admin: 'session_proxy_admin' } as const;

/** Options of {@link installProxy}. The connection is to the proxy database, as its owner. */
export interface ProxyInstallOptions extends ConnectionOptions {
  /**
   * The partitions' URLs, in partition order (a power of two of them), each with the login the
   * proxy uses there: one login for all (PL/Proxy keeps one user mapping per cluster). It must be
   * a member of the partitions' proxy role (migration 006). The credentials are stored only in the
   * proxy database's catalog (its user mapping), never printed.
   */
  partitions: string[];
  /**
   * The proxy's client and admin roles, set at first install. The defaults,
   * `session_proxy_client` and `session_proxy_admin`, differ from the partitions' defaults, so
   * that the application's logins on the proxy cannot call a partition on the same server.
   */
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
  log === false ? () => {} : (log ?? ((line: string) => console.error(line)));

const noticeLogger = (log: (line: string) => void) => (n: Notice) =>
  log(`${n.severity ?? 'NOTICE'}: ${n.message}${n.hint ? `\n  HINT: ${n.hint}` : ''}`);

function seconds(name: string, v: number | undefined, fallback: number): number {
  const n = v ?? fallback;
  if (!Number.isSafeInteger(n) || n < 0 || n > 86400)
    throw new SessionError('invalid_argument', `${name} must be whole seconds from 0 to 86400`);
  return n;
}

/**
 * Installs or updates a proxy database: applies the pending steps of sql/proxy/steps/ and writes the
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
  if (n < 1 || (n & (n - 1)) !== 0)
    throw new SessionError('invalid_argument', `PL/Proxy needs a power of two partitions (1, 2, 4, 8, 16...), got ${n}`);
  const tcpTimeout = tcpUserTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(tcpTimeout) || tcpTimeout < 0)
    throw new SessionError('invalid_argument', 'tcpUserTimeoutMs must be a whole number of milliseconds >= 0');
  const targets = partitions.map((p) => partitionTarget(p, tcpTimeout));
  const login = targets[0] as PartitionTarget;
  if (targets.some((t) => t.user !== login.user || t.password !== login.password)) {
    throw new SessionError(
      'invalid_argument',
      'every partition URL must carry the same login and password (PL/Proxy has one user mapping per cluster)',
    );
  }
  const queryTimeout = seconds('queryTimeoutSeconds', queryTimeoutSeconds, 10);
  const roles = { client: clientRole ?? proxyRoles.client, admin: adminRole ?? proxyRoles.admin };
  return withClient(
    { applicationName: 'session-postgresql proxy install', ...connection },
    async (c) => {
      await c.query('BEGIN');
      try {
        await c.query(
          `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
                pg_catalog.set_config('session_postgresql.client_role', $1, true),
                pg_catalog.set_config('session_postgresql.admin_role', $2, true)`,
          [roles.client, roles.admin],
        );
        // The user mapping's password is a parameter below: keep it out of the server log.
        const superuser =
          (await c.query<{ s: boolean }>(`SELECT rolsuper AS s FROM pg_catalog.pg_roles WHERE rolname = current_user`)).rows[0]
            ?.s === true;
        if (superuser) {
          await c.query(`SELECT pg_catalog.set_config('log_parameter_max_length', '0', true),
                              pg_catalog.set_config('log_parameter_max_length_on_error', '0', true)`);
        }
        await c.query('SELECT pg_catalog.pg_advisory_xact_lock($1)', [proxyInstallLock]);
        await c.query(`CREATE TABLE IF NOT EXISTS public.${proxyMigrationsTable} (
        id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, run_on timestamp NOT NULL DEFAULT now())`);
        const applied = new Set(
          (await c.query<{ name: string }>(`SELECT name FROM public.${proxyMigrationsTable}`)).rows.map((r) => r.name),
        );
        refuseUnknownProxySteps(applied);
        const ran: string[] = [];
        for (const name of proxyMigrations()) {
          if (applied.has(name)) continue;
          await c.query(readFileSync(`${proxySqlDir}${name}.sql`, 'utf8'));
          await c.query(`INSERT INTO public.${proxyMigrationsTable} (name) VALUES ($1)`, [name]);
          log(`applied sql/proxy/steps/${name}.sql`);
          ran.push(name);
        }
        await c.query('SELECT session_proxy.set_partitions($1::text[], $2)', [targets.map((t) => t.conninfo), queryTimeout]);
        await c.query('SELECT session_proxy.set_credentials($1, $2)', [login.user, login.password]);
        await c.query('COMMIT');
        log(`proxy over ${n} partitions: ${partitions.map(redact).join(' ')}`);
        for (const w of bypassWarnings(await partitionStatusRows(c))) log(`WARNING: ${w}`);
        return ran;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    },
    noticeLogger(log),
  );
}

/** The steps of the pre-releases' proxies, folded into 001_baseline: such a proxy is reinstalled, not upgraded. */
const preReleaseProxySteps = ['001_proxy', '002_api', '003_accounts', '004_get_batch', '005_batch_arrays'];

/** Refuses a proxy database a pre-release or a newer version installed: nothing was changed. */
function refuseUnknownProxySteps(applied: Set<string>): void {
  const shipped = new Set(proxyMigrations());
  const unknown = [...applied].filter((name) => !shipped.has(name));
  if (unknown.length === 0) return;
  if (unknown.some((name) => preReleaseProxySteps.includes(name))) {
    throw new SessionError(
      'prerelease_schema',
      `this proxy database was installed by a pre-release of session-postgresql (${unknown.join(', ')}): ` +
        'nothing was changed. It holds no session: drop it (or its schemas session and session_proxy and the table ' +
        `public.${proxyMigrationsTable}) and install the proxy again`,
      { sqlState: '55000' },
    );
  }
  throw new SessionError(
    'newer_schema',
    `the proxy database has steps newer than this package (${unknown.join(', ')}): ` +
      'nothing was changed; upgrade session-postgresql to install it',
  );
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
  /**
   * The proxy's client and admin roles that may call this partition's functions directly, when it
   * is on the proxy's server: their logins could bypass the proxy. Empty: none; null: not known.
   */
  directCallers: string[] | null;
}

export interface ProxyStatus {
  migrations: { name: string; applied: boolean }[];
  partitions: PartitionStatus[];
}

const numbers = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)),
} as pg.CustomTypesConfig;

/** Which steps of sql/proxy/steps/ the proxy has, and each partition's figures (or why it is missing). */
export async function proxyStatus(options: ConnectionOptions): Promise<ProxyStatus> {
  return withClient({ applicationName: 'session-postgresql proxy status', ...options }, async (c) => {
    const exists = (
      await c.query<{ t: string | null }>('SELECT pg_catalog.to_regclass($1) AS t', [`public.${proxyMigrationsTable}`])
    ).rows[0]?.t;
    const applied = new Set(
      exists ? (await c.query<{ name: string }>(`SELECT name FROM public.${proxyMigrationsTable}`)).rows.map((r) => r.name) : [],
    );
    const migrations = proxyMigrations().map((name) => ({ name, applied: applied.has(name) }));
    if (!exists) return { migrations, partitions: [] };
    return { migrations, partitions: await partitionStatusRows(c) };
  });
}

async function partitionStatusRows(c: pg.Client): Promise<PartitionStatus[]> {
  const rows = (await c.query({ text: 'SELECT * FROM session_proxy.partition_status()', types: numbers })).rows as {
    part: number;
    conninfo: string;
    database: string | null;
    live: number | null;
    expired: number | null;
    table_bytes: number | null;
    default_period: number | null;
    error: string | null;
    direct_callers: string[] | null;
  }[];
  return rows.map((r) => ({
    part: r.part,
    conninfo: r.conninfo,
    database: r.database,
    live: r.live,
    expired: r.expired,
    tableBytes: r.table_bytes,
    defaultPeriod: r.default_period,
    error: r.error,
    directCallers: r.direct_callers,
  }));
}

/** One line per partition whose functions the proxy's own roles may call directly. */
export function bypassWarnings(partitions: PartitionStatus[]): string[] {
  return partitions
    .filter((p) => (p.directCallers ?? []).length > 0)
    .map(
      (p) =>
        `partition ${p.part} (${p.database}) is on the proxy's server and the proxy's role(s) ${(p.directCallers ?? []).join(', ')} may call its functions directly: ` +
        'their logins can bypass the proxy (a session made there may belong to another partition). Give the proxy and the partitions ' +
        "distinct role names, or revoke CONNECT on the partition databases from PUBLIC and grant it to the proxy's login only",
    );
}

/** A partition's pg_cron purge job, as `session-pg stats` on the proxy reports it. */
export interface PartitionPurgeJob {
  part: number;
  database: string;
  /** The job and its latest runs, as {@link stats} on that partition reports them; null if none. */
  cron: CronJob | null;
  /** Why `cron` is null (no job, no pg_cron, or the partition could not be asked). */
  note?: string;
  /** Set when the job's latest runs failed. */
  warning?: string;
}

/** libpq conninfo `key='value'` pairs (as partitionTarget writes them). */
function conninfoValues(conninfo: string): Map<string, string> {
  return new Map(
    [...conninfo.matchAll(/(\w+)='((?:[^'\\]|\\.)*)'/g)].map((m) => [m[1] as string, (m[2] as string).replace(/\\(.)/g, '$1')]),
  );
}

/**
 * On a proxy database: each partition's purge job. Purging runs on the partitions (their own
 * pg_cron jobs); this asks each one, at its host, port and database from the proxy's catalog, with
 * the credentials of `options.connectionString` (the proxy's owner, a superuser in
 * docs/scale-out.md), and pg_cron's database from its server's `cron.database_name`. Resolves
 * null when the database is not a proxy (or the connection is not given as a URL).
 */
export async function partitionPurgeJobs(options: ConnectionOptions): Promise<PartitionPurgeJob[] | null> {
  const url = options.connectionString;
  if (url === undefined || !URL.canParse(url)) return null;
  const parts = await withClient({ applicationName: 'session-pg', ...options }, async (c) => {
    if (
      (await c.query<{ t: string | null }>('SELECT pg_catalog.to_regclass($1) AS t', [`public.${proxyMigrationsTable}`])).rows[0]
        ?.t === null
    )
      return null;
    return (await c.query<{ part: number; conninfo: string }>('SELECT part, conninfo FROM session_proxy.partitions()')).rows;
  }).catch((err: unknown) => {
    if (err instanceof SessionError && err.code === 'permission_denied') return 'denied' as const;
    throw err;
  });
  if (parts === null) return null;
  if (parts === 'denied')
    return [
      {
        part: -1,
        database: '',
        cron: null,
        note: "only the proxy's owner can see the partitions: run stats as the owner for their purge jobs",
      },
    ];
  return Promise.all(
    parts.map(async ({ part, conninfo }) => {
      const v = conninfoValues(conninfo);
      const database = v.get('dbname') ?? '';
      const at = (db: string) => {
        const u = new URL(url);
        const host = v.get('host') ?? '';
        u.hostname = host.includes(':') ? `[${host}]` : host;
        u.port = v.get('port') ?? '';
        u.pathname = `/${encodeURIComponent(db)}`;
        return u.toString();
      };
      try {
        const cronDb = await withClient(
          { connectionString: at(database), applicationName: 'session-pg' },
          async (c) =>
            (await c.query<{ d: string | null }>(`SELECT pg_catalog.current_setting('cron.database_name', true) AS d`)).rows[0]
              ?.d ?? null,
        ).catch(() => null);
        if (cronDb === null)
          return {
            part,
            database,
            cron: null,
            note: 'pg_cron is not loaded on its server (or its cron.database_name is not readable by this login)',
          };
        const s = await stats({
          connectionString: at(database),
          ...(cronDb === database ? {} : { cronDatabaseUrl: at(cronDb) }),
        });
        return {
          part,
          database,
          cron: s.cron,
          ...(s.cronNote === undefined ? {} : { note: s.cronNote }),
          ...(s.cronWarning === undefined ? {} : { warning: s.cronWarning }),
        };
      } catch (err) {
        return { part, database, cron: null, note: `could not ask it: ${(err as Error).message}` };
      }
    }),
  );
}

/**
 * `session-pg migrate` for every partition, one after another (each in its own transaction), with
 * the partitions' owner URLs. `proxyRole` names the role migration 006 grants to (default
 * `session_proxy`, or `<clientRole>_proxy` with a custom client role). Resolves, per partition, the
 * migrations it applied.
 */
export async function migratePartitions(
  urls: string[],
  options: Omit<MigrateOptions, 'connectionString' | 'conninfo'> & { proxyRole?: string } = {},
): Promise<string[][]> {
  const { proxyRole, ...rest } = options;
  const log = lineLogger(rest.log);
  const result: string[][] = [];
  for (const url of urls) {
    const extra = proxyRole === undefined ? {} : { options: `-c session_postgresql.proxy_role=${proxyRole}` };
    if (proxyRole !== undefined && !/^[a-z_][a-z0-9_$]{0,62}$/.test(proxyRole))
      throw new SessionError('invalid_argument', 'proxyRole must be a lower-case identifier');
    const ran = await migrate({ ...rest, ...extra, connectionString: url, log });
    log(`${redact(url)}: ${ran.length === 0 ? 'up to date' : `applied ${ran.join(', ')}`}`);
    result.push(ran);
  }
  return result;
}

/** Options of {@link movePartition}. */
export interface MovePartitionOptions {
  /** Owner URLs of every proxy database that routes to this partition (all are switched at once). */
  proxies: string[];
  /** The partition's number. */
  partition: number;
  /**
   * The partition's current database, as a superuser (it publishes its table, then is closed).
   * Its server needs `wal_level = logical`.
   */
  from: string;
  /**
   * The new database, as a superuser: migrated (`session-pg migrate`), empty, on a server where
   * the proxy's partition login exists with the same password.
   */
  to: string;
  /**
   * How the new server reaches the old one for the subscription (a superuser or a role with
   * REPLICATION and read access). Default: `from`. Its password is stored in the new server's
   * catalog only for the duration of the move, and sent as a bound parameter, never in the text
   * of a statement (so never in either server's log).
   */
  publisherUrl?: string;
  /** A database of the old server from which to close the old one (default `postgres`). */
  maintenanceDatabase?: string;
  /** The proxies' new conninfo is built from `to`'s host, port and database. */
  tcpUserTimeoutMs?: number;
  /** Longest wait for the initial copy, then for the last writes to arrive (default 10 min, 30 s). */
  copyTimeoutMs?: number;
  catchUpTimeoutMs?: number;
  log?: ((line: string) => void) | false;
}

/** What {@link movePartition} measured: rows copied and how long writes to the partition waited. */
export interface MoveResult {
  rows: number;
  pausedMs: number;
  terminated: number;
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new SessionError('statement_timeout', `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Moves one partition to another database (growth: from a crowded server to a new one) while the
 * proxies keep serving, losing no acknowledged write:
 *
 * 1. logical replication copies the partition's sessions to the new database and follows its writes;
 * 2. writes to this partition are paused (its table locked in EXCLUSIVE mode: reads go on), a
 *    marker row written after the lock is awaited on the new side, so every committed write is there;
 * 3. every setting (session.config, locked too) is copied and every proxy's foreign server is
 *    pointed at the new database; their next calls go there;
 * 4. the old database is closed to new connections and the writes that were waiting on the lock are
 *    terminated (their callers get `connection`, and none of them was applied), then the lock goes;
 * 5. the subscription, publication and slot are dropped. The old database is left, closed, for the
 *    DBA to drop once satisfied.
 */
export async function movePartition(options: MovePartitionOptions): Promise<MoveResult> {
  const log = lineLogger(options.log);
  const { partition } = options;
  if (!Number.isSafeInteger(partition) || partition < 0)
    throw new SessionError('invalid_argument', 'partition must be a partition number');
  const name = `session_move_p${partition}`;
  const marker = `public.${name}`;
  const newConninfo = partitionTarget(databaseUrlOnly(options.to), options.tcpUserTimeoutMs ?? 5000).conninfo;
  const publisher = partitionTarget(databaseUrlOnly(options.publisherUrl ?? options.from)).conninfo.replace(
    / application_name=.*$/,
    '',
  );
  const publisherLogin = new URL(options.publisherUrl ?? options.from);
  const publisherConninfo = `${publisher} user=${quote(decodeURIComponent(publisherLogin.username || 'postgres'))}${publisherLogin.password ? ` password=${quote(decodeURIComponent(publisherLogin.password))}` : ''}`;
  const open = async (url: string) => {
    const c = new pg.Client({ ...clientConfig({ connectionString: url, applicationName: 'session-postgresql move' }) });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const from = await open(options.from);
  const to = await open(options.to);
  const proxies = await Promise.all(options.proxies.map(open));
  const locker = await open(options.from);
  try {
    const rows = Number((await to.query<{ n: string }>('SELECT count(*) AS n FROM session.sessions')).rows[0]?.n);
    if (rows !== 0) throw new SessionError('invalid_argument', 'the new partition database must be empty');
    const settings = await sameInstall(from, to);
    for (const c of [from, to]) await c.query(`CREATE TABLE ${marker} (token text PRIMARY KEY)`);
    await from.query(`CREATE PUBLICATION ${name} FOR TABLE session.sessions, ${marker}`);
    await from.query(`SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
    try {
      await subscribe(to, name, publisherConninfo);
    } catch (err) {
      // A slot left behind would hold the old server's WAL forever.
      await from.query('SELECT pg_catalog.pg_drop_replication_slot($1)', [name]).catch(() => {});
      await from.query(`DROP PUBLICATION IF EXISTS ${name}`).catch(() => {});
      for (const c of [from, to]) await c.query(`DROP TABLE IF EXISTS ${marker}`).catch(() => {});
      throw err;
    }
    log(`partition ${partition}: copying to ${redact(options.to)}`);
    await waitFor(
      'the initial copy',
      options.copyTimeoutMs ?? 600_000,
      async () =>
        (
          await to.query(
            `SELECT count(*) AS n FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
                        WHERE s.subname = $1 AND r.srsubstate <> 'r'`,
            [name],
          )
        ).rows[0]?.n === '0',
    );

    // The pause: from here until the lock goes, writes to this partition wait; reads go on.
    await locker.query('BEGIN');
    await locker.query(`SET LOCAL lock_timeout = '10s'`);
    // session.config too: a setting changed during the pause would miss the new database.
    await locker.query('LOCK TABLE session.sessions, session.config IN EXCLUSIVE MODE');
    const paused = performance.now();
    const token = randomBytes(8).toString('hex');
    await from.query(`INSERT INTO ${marker} VALUES ($1)`, [token]);
    await waitFor(
      'the last writes to replicate',
      options.catchUpTimeoutMs ?? 30_000,
      async () => (await to.query(`SELECT 1 FROM ${marker} WHERE token = $1`, [token])).rowCount === 1,
    );
    await to.query(
      `UPDATE session.config c SET (${settings}) = (SELECT ${settings} FROM pg_catalog.jsonb_populate_record(NULL::session.config, $1))`,
      [(await from.query<{ c: unknown }>('SELECT pg_catalog.to_jsonb(c) AS c FROM session.config c')).rows[0]?.c],
    );
    const old = (
      await proxies[0]?.query<{ c: string }>('SELECT conninfo AS c FROM session_proxy.partitions() WHERE part = $1', [partition])
    )?.rows[0]?.c;
    const switched: pg.Client[] = [];
    try {
      for (const p of proxies) {
        await p.query('SELECT session_proxy.set_partition($1, $2)', [partition, newConninfo]);
        switched.push(p);
      }
    } catch (err) {
      // Back to the old database everywhere, and nothing happened.
      for (const p of switched) await p.query('SELECT session_proxy.set_partition($1, $2)', [partition, old]).catch(() => {});
      await locker.query('ROLLBACK');
      throw err;
    }
    // Closed from another database of the server (a database cannot close itself).
    const db = (await from.query<{ d: string }>('SELECT current_database() AS d')).rows[0]?.d as string;
    const maintenance = new URL(options.from);
    maintenance.pathname = `/${options.maintenanceDatabase ?? 'postgres'}`;
    const closer = await open(maintenance.toString());
    try {
      await closer.query(`ALTER DATABASE ${pgIdent(db)} ALLOW_CONNECTIONS false`);
    } finally {
      await closer.end().catch(() => {});
    }
    const terminated =
      (
        await from.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> $1`,
          [(locker as unknown as { processID: number }).processID],
        )
      ).rowCount ?? 0;
    await locker.query('ROLLBACK');
    const pausedMs = performance.now() - paused;
    log(
      `partition ${partition}: switched to ${redact(options.to)}; writes paused ${pausedMs.toFixed(0)} ms, ${terminated} waiting call(s) ended`,
    );

    await to.query(`ALTER SUBSCRIPTION ${name} DISABLE`);
    await to.query(`ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`);
    await to.query(`DROP SUBSCRIPTION ${name}`);
    await waitFor(
      'the replication slot to be released',
      30_000,
      async () => (await from.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [name])).rowCount === 0,
    );
    await from.query('SELECT pg_drop_replication_slot($1)', [name]);
    await from.query(`DROP PUBLICATION ${name}`);
    for (const c of [from, to]) await c.query(`DROP TABLE ${marker}`);
    const copied = Number((await to.query<{ n: string }>('SELECT count(*) AS n FROM session.sessions')).rows[0]?.n);
    return { rows: copied, pausedMs, terminated };
  } catch (err) {
    throw toSessionError(err);
  } finally {
    for (const c of [from, to, locker, ...proxies]) await c.end().catch(() => {});
  }
}

/**
 * Refuses a new database that is not migrated like the old one (the same migrations and role
 * names: the proxy's login must be able to call it the same way). Resolves the columns of
 * session.config to copy: every setting, the role names being equal already.
 */
async function sameInstall(from: pg.Client, to: pg.Client): Promise<string> {
  const describe = async (c: pg.Client) =>
    (
      await c.query<{ m: string; r: string; cols: string[] }>(
        `SELECT (SELECT pg_catalog.string_agg(name, ',' ORDER BY name) FROM public.session_migrations) AS m,
            (SELECT pg_catalog.concat_ws(',', client_role, admin_role, proxy_role) FROM session.config) AS r,
            ARRAY(SELECT pg_catalog.quote_ident(a.attname) FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = 'session.config'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attname NOT IN ('singleton', 'client_role', 'admin_role', 'proxy_role') ORDER BY a.attnum) AS cols`,
      )
    ).rows[0];
  const [old, now] = [await describe(from), await describe(to)];
  if (old?.m !== now?.m)
    throw new SessionError(
      'invalid_argument',
      'the new partition database must have the same migrations as the old one: run session-pg migrate with the same version on it',
    );
  if (old?.r !== now?.r)
    throw new SessionError(
      'invalid_argument',
      `the new partition database must use the same role names as the old one (${old?.r}): migrate it with the same --client-role, --admin-role and --proxy-role`,
    );
  return (now?.cols ?? []).join(', ');
}

/**
 * Subscribes `to` to the publication `name` over the slot of that name, made beforehand (CREATE
 * SUBSCRIPTION may then run inside a function). The conninfo, which may hold the publisher's
 * password, travels as a bound parameter into a function that EXECUTEs the statement, so no
 * statement text the move sends holds it: log_statement and log_min_duration_statement log the
 * call, auto_explain never sees a utility statement, and this session logs no parameter values.
 * The re-raise drops the error context, which would quote the statement.
 */
async function subscribe(to: pg.Client, name: string, conninfo: string): Promise<void> {
  await to.query(`SELECT pg_catalog.set_config('log_parameter_max_length', '0', false),
                         pg_catalog.set_config('log_parameter_max_length_on_error', '0', false),
                         pg_catalog.set_config('log_min_error_statement', 'panic', false),
                         pg_catalog.set_config('auto_explain.log_min_duration', '-1', false)`);
  await to.query(`CREATE FUNCTION pg_temp.session_move_subscribe(name text, conninfo text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
    BEGIN
      EXECUTE format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (create_slot = false, slot_name = %L)',
                     name, conninfo, name, name);
    EXCEPTION WHEN OTHERS THEN
      RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
    END $f$`);
  await to.query('SELECT pg_temp.session_move_subscribe($1, $2)', [name, conninfo]);
}

/** The URL without its credentials: the proxy's conninfo takes host, port and database only. */
function databaseUrlOnly(url: string): string {
  const u = new URL(url);
  u.password = '';
  u.username = 'x';
  return u.toString();
}

const pgIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;
