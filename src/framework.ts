// What the express-session and @fastify/session stores share: JSON values, expiry from the
// cookie, and the throttle that keeps read-only requests from writing.
import { SessionError } from './errors.js';
import { connect, type SessionStore, type StoreOptions } from './store.js';

/** Options of the framework stores: an existing store, or how to connect one. */
export interface FrameworkStoreOptions extends StoreOptions {
  /** Use this store (its connections are then not closed by `close()`). */
  store?: SessionStore;
  /**
   * A request that changed nothing rewrites the session only when less than this share of its
   * period remains (default 0.5, Lucia's rule). 1 rewrites on every request; 0 never rewrites an
   * unchanged session before it expires.
   */
  touchThreshold?: number;
  /** How many loaded sessions to remember for the throttle (default 10000). */
  memoSize?: number;
}

/** The cookie fields both frameworks expose. `maxAge` is in milliseconds, null for browser-session cookies. */
interface CookieLike {
  maxAge?: number | null;
  expires?: Date | string | null;
}

export interface SessionData {
  cookie?: CookieLike;
  [key: string]: unknown;
}

/** Whole seconds from the cookie, or undefined for the store's default period. */
function expiryOf(sess: SessionData): number | undefined {
  const c = sess.cookie;
  let ms: number | null | undefined = c?.maxAge;
  if ((ms === undefined || ms === null) && c?.expires) ms = new Date(c.expires).getTime() - Date.now();
  return typeof ms === 'number' && Number.isFinite(ms) ? Math.ceil(ms / 1000) : undefined;
}

/** The session without its cookie: what decides whether anything changed. */
function dataOf(sess: SessionData): string {
  return JSON.stringify(sess, function (this: unknown, key, val: unknown) {
    return this === sess && key === 'cookie' ? undefined : val;
  });
}

interface Loaded {
  data: string;
  expiresAt: number;
}

export class FrameworkSessions {
  readonly store: SessionStore;
  private readonly owned: boolean;
  private readonly threshold: number;
  private readonly memoSize: number;
  // sid → what get() returned. Lets the save at the end of the same request see whether the data
  // changed and how much of the period is left, without another round trip.
  private readonly loaded = new Map<string, Loaded>();
  /** Writes skipped by the throttle, and done; for measurements. */
  readonly stats = { skipped: 0, written: 0 };

  constructor(options: FrameworkStoreOptions = {}) {
    const { store, touchThreshold = 0.5, memoSize = 10_000, ...connection } = options;
    if (!(touchThreshold >= 0 && touchThreshold <= 1)) {
      throw new SessionError('invalid_argument', 'touchThreshold must be between 0 and 1');
    }
    this.store = store ?? connect(connection);
    this.owned = store === undefined;
    this.threshold = touchThreshold;
    this.memoSize = memoSize;
  }

  async load(sid: string): Promise<SessionData | null> {
    const r = await this.store.get(sid);
    if (!r.ok) {
      this.loaded.delete(sid);
      return null;
    }
    let sess: SessionData;
    try {
      sess = JSON.parse(r.value) as SessionData;
    } catch (err) {
      throw new SessionError('database', 'the stored session value is not JSON', { cause: err });
    }
    this.remember(sid, { data: dataOf(sess), expiresAt: Date.now() + r.period * 1000 });
    return sess;
  }

  private remember(sid: string, entry: Loaded): void {
    this.loaded.delete(sid);
    this.loaded.set(sid, entry);
    if (this.loaded.size > this.memoSize) {
      const oldest = this.loaded.keys().next().value;
      if (oldest !== undefined) this.loaded.delete(oldest);
    }
  }

  /** True when the session is unchanged since load and enough of its period remains. */
  private fresh(sid: string, sess: SessionData, period: number): boolean {
    const prev = this.loaded.get(sid);
    if (prev === undefined || prev.data !== dataOf(sess)) return false;
    const remaining = (prev.expiresAt - Date.now()) / 1000;
    return remaining > 0 && remaining >= period * this.threshold;
  }

  // The default period applies to browser-session cookies; cached so the throttle costs no query.
  private period: { value: number; until: number } | undefined;
  private async defaultPeriod(): Promise<number> {
    if (this.period === undefined || this.period.until < Date.now()) {
      this.period = { value: await this.store.defaultPeriod(), until: Date.now() + 60_000 };
    }
    return this.period.value;
  }

  /**
   * Writes a session at the end of a request, unless it is unchanged since it was loaded and
   * enough of its period remains. `create`: the framework made or changed it (`put`, may create);
   * otherwise it is a touch (`set`, never creates).
   */
  async write(sid: string, sess: SessionData, create: boolean): Promise<void> {
    const expiry = expiryOf(sess);
    if (this.loaded.has(sid) && this.fresh(sid, sess, expiry ?? (await this.defaultPeriod()))) {
      this.stats.skipped += 1;
      return;
    }
    this.loaded.delete(sid);
    this.stats.written += 1;
    const options = expiry === undefined ? {} : { expiry };
    if (create) await this.store.put(sid, JSON.stringify(sess), options);
    else await this.store.set(sid, JSON.stringify(sess), options);
  }

  async destroy(sid: string): Promise<void> {
    this.loaded.delete(sid);
    await this.store.clear(sid);
  }

  async close(): Promise<void> {
    this.loaded.clear();
    if (this.owned) await this.store.close();
  }
}

/** Calls back node-style, never twice, never throwing into the framework. */
export function callback<T>(p: Promise<T>, cb: ((err: unknown, result?: T) => void) | undefined): void {
  p.then((v) => cb?.(null, v), (err: unknown) => cb?.(err));
}
