import type pg from 'pg';
import { SessionError, toSessionError } from './errors.js';
import { Connector, hostPlan, type TargetSessionAttrs } from './hosts.js';

/**
 * How to reach the database. The libpq-style names (`host`, `hostaddr`, `port`, `dbname`, `user`,
 * `password`, `options`, `requiressl`, `conninfo`) are those of ocaml-session's `connect`.
 * `connectionString` (a `postgresql://` URL) and the `PG*` environment variables work as in `pg`.
 */
export interface ConnectionOptions {
  /** A `postgresql://user:pass@host:port/db` URL. */
  connectionString?: string;
  /** A libpq connection string: `host=... port=... dbname=...` (or a URL). */
  conninfo?: string;
  /** A host, or several separated by commas, tried in order as libpq does (see `targetSessionAttrs`). */
  host?: string;
  /** Numeric address; used as the host when `host` is not given. */
  hostaddr?: string;
  /** A port, or (as text) one per host separated by commas. */
  port?: number | string;
  dbname?: string;
  user?: string;
  password?: string;
  /** Server options, e.g. `-c statement_timeout=5000`. */
  options?: string;
  /**
   * Encrypt the connection, like libpq's `sslmode=require`: the server's certificate is NOT
   * verified. To verify it, pass `ssl` (as in `pg`) instead.
   */
  requiressl?: boolean;
  /** Passed to `pg` as is; wins over `requiressl`. */
  ssl?: pg.ClientConfig['ssl'];
  /** Give up connecting after this many milliseconds (default 10000). */
  connectTimeoutMs?: number;
  /**
   * Server-side statement_timeout for the store's connections, in ms (default: the server's). For
   * a store, also a deadline for every call: this plus max(250 ms, a tenth), after which the call
   * rejects with `timeout` and its connection is dropped (see docs/typescript.md, "Deadlines").
   */
  statementTimeoutMs?: number;
  /** Server-side lock_timeout for the store's connections, in ms (default: the server's). */
  lockTimeoutMs?: number;
  /** application_name shown in pg_stat_activity (default `session-postgresql`). */
  applicationName?: string;
  /**
   * The connections go through a pooler such as PgBouncer, in transaction or session pooling
   * (default false). The client then sends no server settings when it connects (PgBouncer refuses
   * them) and no named prepared statements (the next transaction may run on another server
   * connection): every statement carries its settings, in its own transaction. A store then opens
   * one connection (see `connections`). See docs/pgbouncer.md.
   */
  pooled?: boolean;
  /**
   * Which of several hosts to use, as libpq's `target_session_attrs` (also read from the URL's
   * `?target_session_attrs=` and from `conninfo`); default `any`. Writes need `read-write` or `primary`.
   */
  targetSessionAttrs?: TargetSessionAttrs;
}

const conninfoKeys: Record<string, (o: ConnectionOptions, v: string) => void> = {
  host: (o, v) => {
    o.host = v;
  },
  hostaddr: (o, v) => {
    o.hostaddr = v;
  },
  port: (o, v) => {
    o.port = v.includes(',') ? v : Number(v);
  },
  dbname: (o, v) => {
    o.dbname = v;
  },
  user: (o, v) => {
    o.user = v;
  },
  password: (o, v) => {
    o.password = v;
  },
  options: (o, v) => {
    o.options = v;
  },
  requiressl: (o, v) => {
    o.requiressl = v === '1';
  },
  sslmode: (o, v) => {
    if (v === 'require') o.requiressl = true;
    else if (v !== 'disable' && v !== 'prefer' && v !== 'allow') o.ssl = true;
  },
  connect_timeout: (o, v) => {
    o.connectTimeoutMs = Number(v) * 1000;
  },
  application_name: (o, v) => {
    o.applicationName = v;
  },
  target_session_attrs: (o, v) => {
    o.targetSessionAttrs = v as TargetSessionAttrs;
  },
};

/** Parses libpq's `key=value key='quoted \' value'` syntax. Unknown keys are refused. */
export function parseConninfo(conninfo: string): ConnectionOptions {
  if (/^postgres(ql)?:\/\//.test(conninfo)) return { connectionString: conninfo };
  const out: ConnectionOptions = {};
  const re = /\s*([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(conninfo)) !== null) {
    const [, key = '', quoted, bare] = m;
    const apply = conninfoKeys[key];
    if (apply === undefined) {
      throw new SessionError('invalid_argument', `conninfo: unsupported keyword "${key}"`);
    }
    apply(out, quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (bare ?? ''));
    end = re.lastIndex;
  }
  if (conninfo.slice(end).trim() !== '') {
    throw new SessionError('invalid_argument', 'conninfo: expected keyword=value pairs');
  }
  return out;
}

/**
 * Server settings of every connection the package opens, ahead of the caller's own `options`.
 * - log_parameter_max_length_on_error = 0: any role may raise it, and the server would then log the
 *   parameters of a failing call (a session key) and send them back in the error's `where` field.
 * - plan_cache_mode = force_generic_plan: a custom plan has the key folded in as a literal, which
 *   auto_explain (log_verbose) would log; the generic plan shows `$1`. Our statements are single
 *   function calls, whose generic plans are the custom ones.
 */
const serverSettings = '-c log_parameter_max_length_on_error=0 -c plan_cache_mode=force_generic_plan';

/** `options` wins over our settings where the two set the same parameter (the server takes the last). */
function withServerSettings(options: string | undefined): string {
  return options === undefined || options.trim() === '' ? serverSettings : `${serverSettings} ${options}`;
}

/** Turns our options into a `pg` client configuration. */
export function clientConfig(options: ConnectionOptions): pg.ClientConfig {
  const o = options.conninfo === undefined ? options : { ...parseConninfo(options.conninfo), ...options };
  const config: pg.ClientConfig = {
    application_name: o.applicationName ?? 'session-postgresql',
    connectionTimeoutMillis: o.connectTimeoutMs ?? 10_000,
  };
  let urlOptions: string | undefined;
  if (o.connectionString !== undefined) {
    // pg lets a URL's ?options= override the config's: fold ours into the URL's instead.
    const url = URL.canParse(o.connectionString) ? new URL(o.connectionString) : undefined;
    urlOptions = url?.searchParams.get('options') ?? undefined;
    if (url !== undefined && urlOptions !== undefined && o.pooled !== true) {
      url.searchParams.set('options', withServerSettings(urlOptions));
      config.connectionString = url.toString();
    } else {
      config.connectionString = o.connectionString;
    }
  }
  const host = o.host ?? o.hostaddr;
  if (host !== undefined) config.host = host;
  if (o.port !== undefined) config.port = Number(o.port);
  if (o.dbname !== undefined) config.database = o.dbname;
  if (o.user !== undefined) config.user = o.user;
  if (o.password !== undefined) config.password = o.password;
  if (o.ssl !== undefined) config.ssl = o.ssl;
  else if (o.requiressl === true) config.ssl = { rejectUnauthorized: false };
  // Through a pooler, the settings travel with every statement instead (see pooledSettings).
  if (o.pooled === true) {
    if (o.options !== undefined) config.options = o.options;
    return config;
  }
  if (urlOptions === undefined) config.options = withServerSettings(o.options);
  if (o.statementTimeoutMs !== undefined) config.statement_timeout = o.statementTimeoutMs;
  if (o.lockTimeoutMs !== undefined) config.lock_timeout = o.lockTimeoutMs;
  return config;
}

/** The parameters of pooledSettings: statement_timeout and lock_timeout in ms, or null for the server's. */
export function pooledSettingValues(options: ConnectionOptions): (string | null)[] {
  const ms = (name: string, n: number | undefined) => {
    if (n === undefined) return null;
    if (!Number.isSafeInteger(n) || n < 0) throw new SessionError('invalid_argument', `${name} must be a non-negative integer`);
    return String(n);
  };
  return [ms('statementTimeoutMs', options.statementTimeoutMs), ms('lockTimeoutMs', options.lockTimeoutMs)];
}

/** The fields of a server notice we print (e.g. what a DBA must run). */
export interface Notice {
  severity?: string | undefined;
  message?: string | undefined;
  hint?: string | undefined;
}

/** One short-lived connection for administrative work; errors become SessionErrors. */
export async function withClient<T>(
  options: ConnectionOptions,
  fn: (c: pg.Client) => Promise<T>,
  onNotice?: (n: Notice) => void,
): Promise<T> {
  let client: pg.Client | undefined;
  try {
    client = await connector(options).connect({});
    if (onNotice) client.on('notice', onNotice);
    return await fn(client);
  } catch (err) {
    throw toSessionError(err);
  } finally {
    await client?.end().catch(() => {});
  }
}

/** Opens connections to the first of the options' hosts that fits their `targetSessionAttrs`. */
export function connector(options: ConnectionOptions): Connector {
  const plan = hostPlan(options);
  return new Connector(plan.hosts.map(clientConfig), plan.attrs);
}
