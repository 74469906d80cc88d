import type pg from 'pg';
import type { ConnectionOptions } from './connection.js';
import { SessionError } from './errors.js';
import {
  checkInteger,
  checkKey,
  checkOptions,
  checkText,
  checkValue,
  optionalSeconds,
  setFieldsJson,
  unsendable,
  unsetFields,
  writeOptions,
} from './checks.js';
import { openStore, queryConfig, StoreBase } from './store-base.js';
import { statements } from './statements.js';

/**
 * The result of {@link SessionStore.get}: the value, its remaining period and its version, or why
 * there is none. The version changes on every write of the value (set, put, merge; not touch):
 * pass it as `ifVersion` to write only if nothing else wrote the session since it was read.
 */
export type GetResult =
  | { ok: true; value: string; period: number; version: number }
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

/** Options of {@link SessionStore.set}, {@link SessionStore.put} and {@link SessionStore.merge}. */
export interface WriteOptions {
  /** Seconds from now (default: the default period; ≤ 0: the session expires). */
  expiry?: number;
  /**
   * Write only if the session is still at this version (from {@link GetResult}); otherwise reject
   * with `conflict` and write nothing. Omitted: unconditional.
   */
  ifVersion?: number;
}

/** The top-level fields a {@link SessionStore.merge} changes. */
export interface MergeFields {
  /** Fields to set, as JSON (values `JSON.stringify` leaves out, such as `undefined`, are not set). */
  set?: Record<string, unknown>;
  /** Names of fields to remove (a field also in `set` is set). */
  unset?: string[];
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
   * nothing) when the key is unknown, cleared or expired. With `ifVersion`, writes only if the
   * session is still at that version.
   * Errors: `invalid_argument`, `invalid_parameter`, `value_too_large` (the stored value is kept),
   * `conflict` (the version has moved; nothing written).
   */
  set(key: string, value: string, options?: WriteOptions): Promise<boolean>;
  /**
   * Changes top-level fields of the JSON object a live session holds, in one statement on the
   * database: removes `fields.unset`, then sets `fields.set`, and restarts the expiry as
   * {@link set} does. Requests that change different fields of one session in parallel all keep
   * their changes; for one field, the last merge wins. Nested objects are replaced whole. The
   * value is stored as PostgreSQL's jsonb prints it (keys reordered, one space after `:` and `,`).
   * Resolves `false`, creating nothing, when the key is unknown, cleared or expired.
   * Errors: `invalid_argument` (fields not JSON, or holding NUL or lone surrogates),
   * `invalid_parameter`, `value_too_large` (the merged value; nothing written), `conflict`,
   * `not_object` (the session is not set or its value is not a JSON object; nothing written).
   */
  merge(key: string, fields: MergeFields, options?: WriteOptions): Promise<boolean>;
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
   * With `ifVersion`, replaces only a live session still at that version and never creates one
   * (`false` when there is none).
   * Errors: `invalid_argument`, `invalid_parameter` (key shape, expiry), `value_too_large`, `conflict`.
   */
  put(key: string, value: string, options?: WriteOptions): Promise<boolean>;
  /** Ends a session; idempotent. */
  clear(key: string): Promise<void>;
  /** The number of live sessions. */
  count(): Promise<number>;
  /** The default period in seconds. */
  defaultPeriod(): Promise<number>;
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
  /** Closes the store's own connections (not a pool passed in). Later calls reject with `closed`. */
  close(): Promise<void>;
}

class PgSessionStore extends StoreBase implements SessionStore {
  async generate(opts?: GenerateOptions): Promise<string> {
    const options = checkOptions(opts);
    const expiry = optionalSeconds('expiry', options.expiry);
    const value = options.value === undefined ? null : checkValue(options.value);
    if (options.subject === undefined && options.label === undefined && options.lifetime === undefined) {
      return (await this.write({ kind: 'generate', key: null, value, expiry })) as string;
    }
    const subject = options.subject === undefined ? null : checkText('subject', options.subject);
    const label = options.label === undefined ? null : checkText('label', options.label);
    const lifetime = optionalSeconds('lifetime', options.lifetime);
    // With a subject (at login, rarely): alone through the write lanes, never batched.
    return (await this.writeAlone(queryConfig(statements.generateFor, [expiry, value, subject, label, lifetime]))) as string;
  }

  async get(key: string): Promise<GetResult> {
    if (unsendable(checkKey(key))) return { ok: false, error: 'not_found' };
    const row = await this.read(() => this.gets.get(key));
    if (row === undefined) return { ok: false, error: 'not_found' };
    const [value, period, , version] = row as [string | null, number, number | null, number];
    return value === null ? { ok: false, error: 'not_set' } : { ok: true, value, period, version };
  }

  async set(key: string, value: string, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    checkValue(value);
    const { expiry, ifVersion } = writeOptions(options);
    if (unsendable(key)) return false;
    return (await this.write({ kind: 'set', key, value, expiry, ifVersion })) === true;
  }

  async merge(key: string, fields: MergeFields, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      throw new SessionError('invalid_argument', 'fields must be an object: { set?, unset? }');
    }
    const value = setFieldsJson(fields.set);
    const unset = unsetFields(fields.unset);
    const { expiry, ifVersion } = writeOptions(options);
    if (unsendable(key)) return false;
    return (await this.write({ kind: 'merge', key, value, expiry, ifVersion, unset })) === true;
  }

  async touch(key: string, options?: { expiry?: number }): Promise<boolean> {
    checkKey(key);
    const expiry = optionalSeconds('expiry', checkOptions(options).expiry);
    if (unsendable(key)) return false;
    return (await this.write({ kind: 'touch', key, value: null, expiry })) === true;
  }

  async put(key: string, value: string, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    checkValue(value);
    const { expiry, ifVersion } = writeOptions(options);
    if (unsendable(key)) throw new SessionError('invalid_argument', 'key must be base64url characters');
    return (await this.write({ kind: 'put', key, value, expiry, ifVersion })) === true;
  }

  async clear(key: string): Promise<void> {
    if (unsendable(checkKey(key))) return;
    await this.write({ kind: 'clear', key, value: null, expiry: null });
  }

  async setSubject(key: string, subject: string | null, label?: string): Promise<boolean> {
    checkKey(key);
    const s = subject === null ? null : checkText('subject', subject);
    const l = label === undefined ? null : checkText('label', label);
    if (unsendable(key)) return false;
    return (await this.writeAlone(queryConfig(statements.setSubject, [key, s, l]))) === true;
  }

  async list(subject: string, opts?: { max?: number }): Promise<SessionInfo[]> {
    const { max } = checkOptions(opts);
    const rows = await this.run(statements.list, [
      checkText('subject', subject),
      max === undefined ? '100' : checkInteger('max', max),
    ]);
    return rows.map(
      ([handle, createdAt, writtenAt, expiresAt, label]) => ({ handle, createdAt, writtenAt, expiresAt, label }) as SessionInfo,
    );
  }

  async revoke(subject: string, opts?: { except?: string }): Promise<number> {
    const { except } = checkOptions(opts);
    const keep = except === undefined ? null : checkKey(except);
    // A key PostgreSQL cannot receive names no session: nothing to keep.
    return (await this.writeAlone(
      queryConfig(statements.revoke, [checkText('subject', subject), keep !== null && unsendable(keep) ? null : keep]),
    )) as number;
  }

  async revokeHandle(subject: string, handle: string): Promise<boolean> {
    checkText('subject', subject);
    if (typeof handle !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(handle)) {
      throw new SessionError('invalid_argument', 'handle must be a handle from list()');
    }
    return (await this.writeAlone(queryConfig(statements.revokeHandle, [subject, handle]))) === true;
  }

  async rotate(key: string): Promise<string | null> {
    if (unsendable(checkKey(key))) return null;
    return ((await this.writeAlone(queryConfig(statements.rotate, [key]))) ?? null) as string | null;
  }
}

/**
 * Opens a store. Connecting is lazy: the first call connects, and a connection failure rejects
 * that call with a `connection` SessionError. Throws `invalid_argument` for a malformed `conninfo`,
 * and with `pooled` for a `statementTimeoutMs` or `lockTimeoutMs` that is not a non-negative integer.
 */
export function connect(options: StoreOptions = {}): SessionStore {
  return openStore(PgSessionStore, options);
}
