import pg from 'pg';
import { connector, pooledSettingValues, type ConnectionOptions } from './connection.js';
import { Deadlines } from './deadline.js';
import { SessionError, toSessionError } from './errors.js';
import { WriteQueue, type WriteCall, type WriteKind, type WriteStatements } from './group-commit.js';
import { PipelineExecutor, poolExecutor, type Executor } from './pipeline.js';
import { GetBatcher, type GetStatements } from './read-batch.js';
import { statements } from './statements.js';

/** The result of {@link SessionStore.get}: the value and its remaining period, or why there is none. */
export type GetResult =
  | { ok: true; value: string; period: number }
  | { ok: false; error: 'not_found' | 'not_set' };

/** One live session of a subject, as {@link SessionStore.list} gives it: never its key. */
export interface SessionInfo {
  /** A random, non-secret name for the session: pass it to {@link SessionStore.revokeHandle}. */
  handle: string;
  createdAt: Date;
  /** When the session was last written (set, touch or put). */
  writtenAt: Date;
  expiresAt: Date;
  label: string | null;
}

/** Options of {@link SessionStore.generate}. */
export interface GenerateOptions {
  /** Seconds from now (default: the default period; ≤ 0: born expired). */
  expiry?: number;
  /** The value; omitted means "not set". */
  value?: string;
  /** Whose session it is, e.g. a user id (at most 256 bytes; omitted: anonymous). */
  subject?: string;
  /** A name for it in {@link SessionStore.list}, e.g. "Firefox on Linux" (at most 256 bytes; kept only with a subject). */
  label?: string;
  /** Seconds after which it ends however often it is extended (default: the configured absolute lifetime, if any). */
  lifetime?: number;
}

/** Options of {@link connect}. */
export interface StoreOptions extends ConnectionOptions {
  /** Reuse this pool instead of opening connections; `close()` then leaves it open. */
  pool?: pg.Pool;
  /**
   * Number of pipelined connections the store opens for reads (default 2); ignored with `pool`.
   * With `pooled`, the number of connections it opens in all (default 1): writes share them.
   */
  connections?: number;
  /**
   * Number of write lanes (default 2): connections the store opens for writes, or with `pool`,
   * how many write statements it sends to the pool at once. Each lane has at most one write in
   * flight; the writes that arrive meanwhile are committed together in one transaction (one call
   * of `session.session_write_batch`), so reads never wait behind a write's flush to disk.
   * With `pooled`, the number of write statements in flight on the store's shared connections.
   */
  writeConnections?: number;
  /** Most calls in one batched write (default 256); a batch also stops at about 1 MiB of keys and values. */
  maxBatchCalls?: number;
  /**
   * Called when an idle connection breaks (e.g. the server restarted). The store reconnects on
   * the next call by itself; the default ignores the event instead of crashing the process.
   */
  onError?: (err: SessionError) => void;
}

/**
 * A session store. Every method calls one `session.session_*` function and rejects only with
 * {@link SessionError}. Writes made while other writes are in flight are committed together (one
 * call of `session.session_write_batch`, one transaction); each still resolves or rejects on its
 * own, after the commit, exactly as its single call would. Periods and expiries are whole seconds.
 */
export interface SessionStore {
  /**
   * Creates a session and returns its key. See {@link GenerateOptions}.
   * Errors: `invalid_argument`, `invalid_parameter` (expiry beyond ±3155760000, lifetime outside
   * 1..3155760000, empty subject), `value_too_large` (value over the limit, subject or label over
   * 256 bytes).
   */
  generate(options?: GenerateOptions): Promise<string>;
  /** The value and remaining period, or `not_found` (unknown, cleared, expired) / `not_set`. */
  get(key: string): Promise<GetResult>;
  /**
   * Replaces the value of a live session and restarts its expiry. Resolves `false` (and creates
   * nothing) when the key is unknown, cleared or expired.
   * Errors: `invalid_argument`, `invalid_parameter`, `value_too_large` (the stored value is kept).
   */
  set(key: string, value: string, options?: { expiry?: number }): Promise<boolean>;
  /**
   * Restarts the expiry of a live session without writing its value: what a request that changed
   * nothing does. Resolves `false` (and creates nothing) when the key is unknown, cleared or expired.
   * Errors: `invalid_argument`, `invalid_parameter` (expiry beyond ±3155760000).
   */
  touch(key: string, options?: { expiry?: number }): Promise<boolean>;
  /**
   * Creates or replaces the session under a key the caller generated — for frameworks such as
   * express-session that make their own ids. The key must be 32–1024 base64url characters (at
   * least 192 random bits). Resolves `false`, storing nothing, if the key belongs to a session
   * that has expired or was cleared (it is never revived). Only for an id just made: for a session
   * that was loaded, use {@link set} or {@link touch}, which never create. Prefer {@link generate} + {@link set} otherwise.
   * Errors: `invalid_argument`, `invalid_parameter` (key shape, expiry), `value_too_large`.
   */
  put(key: string, value: string, options?: { expiry?: number }): Promise<boolean>;
  /** Ends a session; idempotent. */
  clear(key: string): Promise<void>;
  /** The number of live sessions. */
  count(): Promise<number>;
  /** The default period in seconds. */
  defaultPeriod(): Promise<number>;
  /**
   * Changes the default period for sessions written from now on. Needs the admin role
   * (`session_admin` by default); the client role gets `permission_denied`.
   * Errors: `invalid_argument`, `invalid_parameter`, `permission_denied`.
   */
  setDefaultPeriod(period: number): Promise<void>;
  /**
   * Deletes expired sessions, at most about `batchSize` (default 10000) in one short transaction,
   * and resolves how many it deleted; 0 means none are left, or another purge is running.
   * pg_cron normally does this. Needs the admin role (`permission_denied` otherwise).
   */
  purge(options?: { batchSize?: number }): Promise<number>;
  /**
   * Says whose session this is (at login), with an optional label (omitted: kept); `null` makes it
   * anonymous again. Resolves `false`, creating nothing, when the key is unknown, cleared or expired.
   * Errors: `invalid_argument`, `invalid_parameter` (empty subject), `value_too_large` (over 256 bytes).
   */
  setSubject(key: string, subject: string | null, label?: string): Promise<boolean>;
  /**
   * The live sessions of a subject, newest first (at most `max`, default 100), for a "your
   * devices" page. Errors: `invalid_argument`, `invalid_parameter` (max outside 1..10000).
   */
  list(subject: string, options?: { max?: number }): Promise<SessionInfo[]>;
  /**
   * Ends every live session of a subject ("log out everywhere"), except the one of `except` (this
   * device), and resolves how many it ended. Errors: `invalid_argument`.
   */
  revoke(subject: string, options?: { except?: string }): Promise<number>;
  /**
   * Ends one session of a subject by its handle (from {@link list}); a handle of another subject's
   * session ends nothing. Resolves whether a live session was ended. Errors: `invalid_argument`.
   */
  revokeHandle(subject: string, handle: string): Promise<boolean>;
  /**
   * Gives a live session a new key (at login or a privilege change) and resolves it; the old key
   * is not found from then on, and no request in flight can revive it. Resolves `null` when the
   * key is unknown, cleared or expired. Errors: `invalid_argument`.
   */
  rotate(key: string): Promise<string | null>;
  /** The absolute lifetime in seconds given to new sessions, `null` for none. */
  absoluteLifetime(): Promise<number | null>;
  /**
   * Sets the absolute lifetime of sessions created from now on (`null`: none). Needs the admin role.
   * Errors: `invalid_argument`, `invalid_parameter` (outside 1..3155760000), `permission_denied`.
   */
  setAbsoluteLifetime(lifetime: number | null): Promise<void>;
  /** Closes the store's own connections (not a pool passed in). Later calls reject with `closed`. */
  close(): Promise<void>;
}

// int8 arrives as text in pg; parse it here, per query, rather than changing pg's global parsers.
// Every int8 the API returns is bounded well below 2^53.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * pg copies every query config it is given, own property by own property (a slow path in V8), and
 * keeps its prototype. So the constant fields live in one prototype per statement, and each call's
 * config owns only its values: about a quarter less client CPU per call.
 */
const templates = new Map<object, object>();
function queryConfig(statement: { name: string; text: string }, values: unknown[]): pg.QueryArrayConfig {
  let template = templates.get(statement);
  if (template === undefined) {
    template = { ...statement, rowMode: 'array', types };
    templates.set(statement, template);
  }
  const config = Object.create(template) as { values: unknown[] };
  config.values = values;
  return config as pg.QueryArrayConfig;
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string') throw new SessionError('invalid_argument', 'key must be a string');
  return key;
}

// PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate (Buffer would turn
// it into U+FFFD): refuse rather than store something other than what was given.
const checkValue = (value: unknown): string => checkText('value', value);

/** Values, subjects and labels: strings PostgreSQL text can hold (the server checks their length). */
function checkText(name: string, text: unknown): string {
  if (typeof text !== 'string') throw new SessionError('invalid_argument', `${name} must be a string`);
  if (text.includes('\u0000')) throw new SessionError('invalid_argument', `${name} must not contain NUL characters`);
  if (!text.isWellFormed()) throw new SessionError('invalid_argument', `${name} must not contain lone surrogates`);
  return text;
}

function checkInteger(name: string, n: unknown, unit = ''): string {
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw new SessionError('invalid_argument', `${name} must be a safe integer${unit}`);
  }
  return String(n);
}

const checkSeconds = (name: string, n: unknown) => checkInteger(name, n, ' of seconds');

function optionalSeconds(name: string, n: unknown): string | null {
  return n === undefined || n === null ? null : checkSeconds(name, n);
}

/** An options argument must be an object: `generate(3600)` must not silently mean "the default". */
function checkOptions<T extends object>(options: T | undefined): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new SessionError('invalid_argument', 'options must be an object');
  }
  return options;
}

/** session_purge takes an int4: a larger batch size would reach the server as an overflow. */
function checkBatchSize(n: unknown): string {
  const s = checkInteger('batchSize', n);
  if (Math.abs(n as number) > 2147483647) throw new SessionError('invalid_argument', 'batchSize must fit a 32-bit integer');
  return s;
}

/** A key that PostgreSQL could not even receive names no session: answer locally. */
function unsendable(key: string): boolean {
  return key.includes('\u0000') || !key.isWellFormed();
}

/** A batch element's arguments, or (`kind` undefined) the config of a write always sent alone. */
type WriteArgs = Omit<WriteCall, 'resolve' | 'reject'>;

/** The single call each kind of write stands for, with its arguments in the order it takes them. */
const singles: Record<WriteKind, (c: WriteArgs) => pg.QueryArrayConfig> = {
  generate: (c) => queryConfig(statements.generate, [c.expiry, c.value]),
  set: (c) => queryConfig(statements.set, [c.key, c.value, c.expiry]),
  touch: (c) => queryConfig(statements.touch, [c.key, c.expiry]),
  put: (c) => queryConfig(statements.put, [c.key, c.value, c.expiry]),
  clear: (c) => queryConfig(statements.clear, [c.key]),
};

const writeStatements: WriteStatements = {
  single: (c) => (c.kind === undefined ? c.config as pg.QueryArrayConfig : singles[c.kind](c)),
  batch: (calls) => queryConfig(statements.writeBatch, [
    calls.map((c) => c.kind as string),
    calls.map((c) => c.key),
    calls.map((c) => c.value),
    calls.map((c) => c.expiry),
  ]),
};

const getStatements: GetStatements = {
  single: (key) => queryConfig(statements.get, [key]),
  batch: (keys) => queryConfig(statements.getBatch, [keys]),
};

class PgSessionStore implements SessionStore {
  private closed = false;

  private readonly gets: GetBatcher;

  constructor(private readonly executor: Executor, private readonly writes: WriteQueue, private readonly deadlines?: Deadlines) {
    this.gets = new GetBatcher(executor, getStatements);
  }

  /** A write: through the group-commit queue, so that it shares its transaction under load. */
  private write(args: WriteArgs): Promise<unknown> {
    if (this.closed) return Promise.reject(new SessionError('closed', 'the session store is closed'));
    return new Promise<unknown>((resolve, reject) => {
      this.writes.submit({ ...args, resolve, reject: (err) => reject(toSessionError(err)) });
    });
  }

  /**
   * A write that is never batched (admin calls, and the per-subject calls): through the same lanes,
   * alone, so that reads never queue behind it either. Resolves the first column of the first row.
   */
  private adminWrite(config: pg.QueryArrayConfig): Promise<unknown> {
    return this.write({ kind: undefined, key: null, value: null, expiry: null, config });
  }

  private async run(statement: { name: string; text: string }, values: unknown[]): Promise<unknown[][]> {
    return (await this.read(() => this.executor.query(queryConfig(statement, values)))).rows;
  }

  /** A read: refused once the store is closed; its errors as SessionErrors. */
  private async read<T>(send: () => Promise<T>): Promise<T> {
    if (this.closed) throw new SessionError('closed', 'the session store is closed');
    try {
      return await send();
    } catch (err) {
      throw toSessionError(err);
    }
  }

  async generate(opts?: GenerateOptions): Promise<string> {
    const options = checkOptions(opts);
    const expiry = optionalSeconds('expiry', options.expiry);
    const value = options.value === undefined ? null : checkValue(options.value);
    if (options.subject === undefined && options.label === undefined && options.lifetime === undefined) {
      return await this.write({ kind: 'generate', key: null, value, expiry }) as string;
    }
    const subject = options.subject === undefined ? null : checkText('subject', options.subject);
    const label = options.label === undefined ? null : checkText('label', options.label);
    const lifetime = optionalSeconds('lifetime', options.lifetime);
    // With a subject (at login, rarely): alone through the write lanes, never batched.
    return await this.adminWrite(queryConfig(statements.generateFor, [expiry, value, subject, label, lifetime])) as string;
  }

  async get(key: string): Promise<GetResult> {
    if (unsendable(checkKey(key))) return { ok: false, error: 'not_found' };
    const row = await this.read(() => this.gets.get(key));
    if (row === undefined) return { ok: false, error: 'not_found' };
    const [value, period] = row as [string | null, number];
    return value === null ? { ok: false, error: 'not_set' } : { ok: true, value, period };
  }

  async set(key: string, value: string, options?: { expiry?: number }): Promise<boolean> {
    checkKey(key);
    checkValue(value);
    const expiry = optionalSeconds('expiry', checkOptions(options).expiry);
    if (unsendable(key)) return false;
    return await this.write({ kind: 'set', key, value, expiry }) === true;
  }

  async touch(key: string, options?: { expiry?: number }): Promise<boolean> {
    checkKey(key);
    const expiry = optionalSeconds('expiry', checkOptions(options).expiry);
    if (unsendable(key)) return false;
    return await this.write({ kind: 'touch', key, value: null, expiry }) === true;
  }

  async put(key: string, value: string, options?: { expiry?: number }): Promise<boolean> {
    checkKey(key);
    checkValue(value);
    const expiry = optionalSeconds('expiry', checkOptions(options).expiry);
    if (unsendable(key)) throw new SessionError('invalid_argument', 'key must be base64url characters');
    return await this.write({ kind: 'put', key, value, expiry }) === true;
  }

  async count(): Promise<number> {
    return (await this.run(statements.count, []))[0]?.[0] as number;
  }

  async clear(key: string): Promise<void> {
    if (unsendable(checkKey(key))) return;
    await this.write({ kind: 'clear', key, value: null, expiry: null });
  }

  async defaultPeriod(): Promise<number> {
    return (await this.run(statements.defaultPeriod, []))[0]?.[0] as number;
  }

  async setDefaultPeriod(period: number): Promise<void> {
    const config = queryConfig(statements.setDefaultPeriod, [checkSeconds('period', period)]);
    await this.adminWrite(config);
  }

  async purge(opts?: { batchSize?: number }): Promise<number> {
    const { batchSize } = checkOptions(opts);
    const config = batchSize === undefined
      ? queryConfig(statements.purge, [])
      : queryConfig(statements.purgeBatch, [checkBatchSize(batchSize)]);
    return await this.adminWrite(config) as number;
  }

  async setSubject(key: string, subject: string | null, label?: string): Promise<boolean> {
    checkKey(key);
    const s = subject === null ? null : checkText('subject', subject);
    const l = label === undefined ? null : checkText('label', label);
    if (unsendable(key)) return false;
    return await this.adminWrite(queryConfig(statements.setSubject, [key, s, l])) === true;
  }

  async list(subject: string, opts?: { max?: number }): Promise<SessionInfo[]> {
    const { max } = checkOptions(opts);
    const rows = await this.run(statements.list, [checkText('subject', subject), max === undefined ? '100' : checkInteger('max', max)]);
    return rows.map(([handle, createdAt, writtenAt, expiresAt, label]) =>
      ({ handle, createdAt, writtenAt, expiresAt, label }) as SessionInfo);
  }

  async revoke(subject: string, opts?: { except?: string }): Promise<number> {
    const { except } = checkOptions(opts);
    const keep = except === undefined ? null : checkKey(except);
    // A key PostgreSQL cannot receive names no session: nothing to keep.
    return await this.adminWrite(queryConfig(statements.revoke, [checkText('subject', subject), keep !== null && unsendable(keep) ? null : keep])) as number;
  }

  async revokeHandle(subject: string, handle: string): Promise<boolean> {
    checkText('subject', subject);
    if (typeof handle !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(handle)) {
      throw new SessionError('invalid_argument', 'handle must be a handle from list()');
    }
    return await this.adminWrite(queryConfig(statements.revokeHandle, [subject, handle])) === true;
  }

  async rotate(key: string): Promise<string | null> {
    if (unsendable(checkKey(key))) return null;
    return (await this.adminWrite(queryConfig(statements.rotate, [key])) ?? null) as string | null;
  }

  async absoluteLifetime(): Promise<number | null> {
    return ((await this.run(statements.absoluteLifetime, []))[0]?.[0] ?? null) as number | null;
  }

  async setAbsoluteLifetime(lifetime: number | null): Promise<void> {
    await this.adminWrite(queryConfig(statements.setAbsoluteLifetime, [lifetime === null ? null : checkSeconds('lifetime', lifetime)]));
  }

  async close(): Promise<void> {
    this.closed = true;
    // Writes first: with `pooled`, they share the executor's connections.
    await this.writes.close();
    await this.executor.close();
    this.deadlines?.close();
  }
}

/**
 * Opens a store. Connecting is lazy: the first call connects, and a connection failure rejects
 * that call with a `connection` SessionError. Throws `invalid_argument` for a malformed `conninfo`,
 * and with `pooled` for a `statementTimeoutMs` or `lockTimeoutMs` that is not a non-negative integer.
 */
export function connect(options: StoreOptions = {}): SessionStore {
  const size = positive('connections', options.connections, 2);
  const lanes = positive('writeConnections', options.writeConnections, 2);
  const limits = { calls: positive('maxBatchCalls', options.maxBatchCalls, 256), bytes: 1 << 20 };
  const queue = (lane: () => Executor, timed?: boolean) => new WriteQueue(Array.from({ length: lanes }, lane), writeStatements, limits, timed);
  const { pool } = options;
  if (pool !== undefined) return new PgSessionStore(poolExecutor(pool), queue(() => poolExecutor(pool)));
  const onError = options.onError ?? (() => {});
  const hosts = connector(options);
  const report = (err: Error) => onError(toSessionError(err));
  const timeout = options.statementTimeoutMs;
  const deadlines = timeout === undefined ? undefined : new Deadlines(timeout);
  const timed = deadlines !== undefined;
  if (options.pooled === true) {
    // Every connection of a store holds a server connection in session pooling, and while it has
    // statements in flight in transaction pooling: one connection per store unless asked for more.
    const shared = new PipelineExecutor(hosts, positive('connections', options.connections, 1), report, deadlines, pooledSettingValues(options));
    return new PgSessionStore(shared, queue(() => shared, timed), deadlines);
  }
  return new PgSessionStore(new PipelineExecutor(hosts, size, report, deadlines),
    queue(() => new PipelineExecutor(hosts, 1, report, deadlines), timed), deadlines);
}

function positive(name: string, n: number | undefined, otherwise: number): number {
  if (n === undefined) return otherwise;
  if (!Number.isSafeInteger(n) || n < 1) throw new SessionError('invalid_argument', `${name} must be a positive integer`);
  return n;
}
