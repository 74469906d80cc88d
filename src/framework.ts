// What the express-session, @fastify/session and koa-session stores share: JSON values read
// safely, expiry from the cookie, and the write rules that keep a request from undoing a logout or
// reverting another request's change:
// - a session that was loaded is only ever updated (`set`, `touch`: never create);
// - a session that changed nothing has only its expiry moved (`touch`), throttled;
// - `put` (may create) is for an id the framework has just generated.
import { SessionError } from './errors.js';
import { connect, type SessionStore, type StoreOptions } from './store.js';

/** Options of the framework stores: an existing store, or how to connect one. */
export interface FrameworkStoreOptions extends StoreOptions {
  /** Use this store (its connections are then not closed by `close()`). */
  store?: SessionStore;
  /**
   * A request that changed nothing moves the session's expiry (never its value) only once no
   * more than this share of its period remains (default 0.5, Lucia's rule). 1 touches on every
   * request; 0 never touches an unchanged session before it expires.
   */
  touchThreshold?: number;
  /**
   * FastifySessionStore only: how many loaded session ids to remember (default 10000), to tell a
   * loaded session from a new one. Beyond that the oldest is forgotten and the store falls back
   * to update-first (see FastifySessionStore). The other stores need no memory.
   */
  memoSize?: number;
}

/** The cookie fields the frameworks expose. `maxAge` is in milliseconds, null for browser-session cookies. */
interface CookieLike {
  maxAge?: number | null;
  expires?: Date | string | null;
}

export interface SessionData {
  cookie?: CookieLike;
  [key: string]: unknown;
}

/**
 * What one request loaded: the session's id, its data as JSON (without the fields that change on
 * every save) and when it expires. Kept per request, so that concurrent requests never compare
 * against each other's copies.
 */
export interface Loaded {
  sid: string;
  data: string;
  expiresAt: number;
}

/**
 * Keys dropped at every level of a stored value: the names of Object.prototype's members and
 * `prototype`. An own `__proto__` assigned by a framework's copy loop replaces an object's
 * prototype; an own `valueOf`/`toString` that is not a function makes `new Date(x)` or `x + 1`
 * throw, inside a store callback where nothing catches it.
 */
const unsafeKeys: ReadonlySet<string> = new Set([
  '__proto__', 'constructor', 'prototype', 'toString', 'toLocaleString', 'valueOf', 'hasOwnProperty',
  'isPrototypeOf', 'propertyIsEnumerable', '__defineGetter__', '__defineSetter__', '__lookupGetter__',
  '__lookupSetter__',
]);

function dropUnsafe(key: string, value: unknown): unknown {
  return unsafeKeys.has(key) ? undefined : value;
}

// A JSON key can spell one of those names only literally or through a \u escape: text with
// neither is parsed without the reviver, which costs about four times the parse itself.
const maybeUnsafe = new RegExp([...unsafeKeys, '\\\\u'].join('|'));

/**
 * Parses a stored session value. Keys that could replace a prototype or shadow Object.prototype's
 * methods are dropped at every level (see `unsafeKeys`); the rest is kept.
 * Errors (`SessionError`, code `database`): the value is not JSON, or not a JSON object (an array,
 * a string, a number, null). Nothing is changed in the database: the value stays for inspection.
 */
export function parseSession(text: string): SessionData {
  let value: unknown;
  try {
    value = maybeUnsafe.test(text) ? JSON.parse(text, dropUnsafe) : JSON.parse(text);
  } catch (err) {
    throw new SessionError('database', 'the stored session value is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SessionError('database', 'the stored session value is not a JSON object');
  }
  return value as SessionData;
}

/** Whole seconds from the cookie, or undefined for the store's default period. */
export function expiryOf(sess: SessionData): number | undefined {
  const c = sess.cookie;
  let ms: number | null | undefined = c?.maxAge;
  if ((ms === undefined || ms === null) && c?.expires) ms = new Date(c.expires).getTime() - Date.now();
  return secondsOf(ms);
}

/** Milliseconds to whole seconds; anything else (null, NaN, a string) means the default period. */
export function secondsOf(ms: unknown): number | undefined {
  return typeof ms === 'number' && Number.isFinite(ms) ? Math.ceil(ms / 1000) : undefined;
}

/** The session as JSON without the top-level fields that a save rewrites anyway (the cookie). */
export function dataOf(sess: object, ignored: readonly string[] = ['cookie']): string {
  return JSON.stringify(sess, function (this: unknown, key, val: unknown) {
    return this === sess && ignored.includes(key) ? undefined : val;
  });
}

/**
 * The storage rules the framework stores share (see the module comment); each store decides, in
 * its framework's terms, whether a session was loaded and whether it changed.
 */
export class FrameworkSessions {
  readonly store: SessionStore;
  private readonly owned: boolean;
  private readonly threshold: number;
  readonly memoSize: number;
  /** Writes skipped by the throttle, and done (touch, set or put); for measurements. */
  readonly stats = { skipped: 0, written: 0 };

  constructor(options: FrameworkStoreOptions = {}) {
    const { store, touchThreshold = 0.5, memoSize = 10_000, ...connection } = options;
    if (!(touchThreshold >= 0 && touchThreshold <= 1)) {
      throw new SessionError('invalid_argument', 'touchThreshold must be between 0 and 1');
    }
    if (!Number.isSafeInteger(memoSize) || memoSize < 1) {
      throw new SessionError('invalid_argument', 'memoSize must be a positive integer');
    }
    this.store = store ?? connect(connection);
    this.owned = store === undefined;
    this.threshold = touchThreshold;
    this.memoSize = memoSize;
  }

  /**
   * The session and what this request loaded, or null when there is none (unknown, cleared,
   * expired, never set). `ignored`: fields left out of the comparison (see {@link dataOf}).
   */
  async load(sid: string, ignored?: readonly string[]): Promise<{ sess: SessionData; loaded: Loaded } | null> {
    const r = await this.store.get(sid);
    if (!r.ok) return null;
    const sess = parseSession(r.value);
    return { sess, loaded: { sid, data: dataOf(sess, ignored), expiresAt: Date.now() + r.period * 1000 } };
  }

  // The default period applies to browser-session cookies; cached so the throttle costs no query.
  private period: { value: number; until: number } | undefined;
  private async defaultPeriod(): Promise<number> {
    if (this.period === undefined || this.period.until < Date.now()) {
      this.period = { value: await this.store.defaultPeriod(), until: Date.now() + 60_000 };
    }
    return this.period.value;
  }

  /** After a write: the session now expires `seconds` from now and holds `data`. */
  private restarted(loaded: Loaded, seconds: number, data?: string): void {
    loaded.expiresAt = Date.now() + seconds * 1000;
    if (data !== undefined) loaded.data = data;
  }

  /**
   * Saves a session this request loaded: its changed value with `set`, or else only a move of its
   * expiry with `touch`, and that only once no more than `touchThreshold` of the period remains.
   * Neither ever creates: a session cleared meanwhile stays cleared. Resolves false when the
   * session is gone (cleared or expired); `loaded` then is stale and nothing was written.
   */
  async update(loaded: Loaded, value: string, changed: boolean, expiry: number | undefined, data?: string): Promise<boolean> {
    const period = expiry ?? (await this.defaultPeriod());
    if (!changed) {
      const remaining = (loaded.expiresAt - Date.now()) / 1000;
      if (remaining > 0 && remaining > period * this.threshold) {
        this.stats.skipped += 1;
        return true;
      }
    }
    this.stats.written += 1;
    const options = expiry === undefined ? {} : { expiry };
    const found = changed
      ? await this.store.set(loaded.sid, value, options)
      : await this.store.touch(loaded.sid, options);
    if (found) this.restarted(loaded, period, data);
    return found;
  }

  /**
   * Creates a session under an id the framework has just generated. `session_put` never writes
   * over a cleared or expired session, so even a wrong call cannot bring back a logged-out one:
   * it then resolves null and stores nothing.
   */
  async create(sid: string, value: string, expiry: number | undefined, data: string): Promise<Loaded | null> {
    this.stats.written += 1;
    const stored = await this.store.put(sid, value, expiry === undefined ? {} : { expiry });
    return stored ? this.written(sid, data, expiry) : null;
  }

  /**
   * For a session whose origin is unknown (loaded, or just generated): update first, and create
   * only when that found no live session. Since `put` never writes over a cleared or expired row,
   * this creates only under an id that has no row at all.
   */
  async updateOrCreate(sid: string, value: string, changed: boolean, expiry: number | undefined, data: string): Promise<Loaded | null> {
    const options = expiry === undefined ? {} : { expiry };
    this.stats.written += 1;
    const found = changed ? await this.store.set(sid, value, options) : await this.store.touch(sid, options);
    return found ? this.written(sid, data, expiry) : this.create(sid, value, expiry, data);
  }

  private async written(sid: string, data: string, expiry: number | undefined): Promise<Loaded> {
    return { sid, data, expiresAt: Date.now() + (expiry ?? (await this.defaultPeriod())) * 1000 };
  }

  async destroy(sid: string): Promise<void> {
    await this.store.clear(sid);
  }

  async close(): Promise<void> {
    if (this.owned) await this.store.close();
  }
}

/**
 * Calls back node-style, exactly once, with the result or the store's error. A throw from the
 * callback itself is the framework's own, and is not hidden.
 */
export function callback<T>(p: Promise<T>, cb: ((err: unknown, result?: T) => void) | undefined): void {
  p.then((v) => cb?.(null, v), (err: unknown) => cb?.(err));
}
