import session from 'express-session';
import { SessionError } from './errors.js';
import {
  callback, dataOf, expiryOf, FrameworkSessions, type FrameworkStoreOptions, type Loaded, type SessionData,
} from './framework.js';

export type { FrameworkStoreOptions } from './framework.js';

type Callback<T = void> = (err: unknown, result?: T) => void;

/** Where a session object keeps what its request loaded; not enumerable, so never stored. */
const loadedKey = Symbol('session-postgresql loaded');
type Marked = { [loadedKey]?: Loaded };

function mark(target: object, loaded: Loaded): void {
  Object.defineProperty(target, loadedKey, { value: loaded, configurable: true, enumerable: false, writable: true });
}

/**
 * express-session reads `cookie` without a check while it builds the session, in places where a
 * throw would escape every handler: so the stored cookie must pass express-session's own Cookie
 * and serializer here, or the value is refused.
 */
// What express-session's Cookie is at run time (its typings declare neither).
const Cookie = session.Cookie as unknown as new (options: object) => { expires: unknown; serialize(name: string, value: string): string };

function checkCookie(sess: SessionData): void {
  const c: unknown = sess.cookie;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) {
    throw new SessionError('database', 'the stored session value has no cookie object');
  }
  try {
    const cookie = new Cookie(c);
    const expires = (c as { expires?: unknown }).expires;
    if (typeof expires === 'string') cookie.expires = new Date(expires);
    cookie.serialize('connect.sid', 'x');
  } catch (err) {
    throw new SessionError('database', 'the stored session cookie is invalid', { cause: err });
  }
}

/**
 * An express-session store. Values are the session as JSON; the cookie's maxAge/expires becomes
 * the expiry (a browser-session cookie gets the database's default period).
 *
 * How a request can never undo a logout or revert another request's change:
 * - A session is loaded through `get` and express-session's `createSession`, which this store
 *   extends to mark the session object (a non-enumerable symbol holding the id and the data as
 *   loaded). A session express-session generated (new visitor, `regenerate`) carries no mark.
 * - `set` of a marked session: changed → `session_set` (never creates: a session cleared
 *   meanwhile stays cleared); unchanged (`resave: true`) → as `touch`. `set` of an unmarked
 *   session → `session_put`, which may create, and never writes over a cleared or expired key.
 * - `touch` moves only the expiry (`session_touch`), never the value, and only once no more than
 *   `touchThreshold` (default half) of the period remains: an unchanged request usually costs one
 *   read and no write, and never rewrites what another request changed meanwhile.
 * - Two requests that both changed the session: the last one to save wins.
 * The mark lives on the request's own session object, so this holds whatever the number of
 * processes or sessions, with no memory in the store.
 *
 * Stored values: keys named like Object.prototype's members (`__proto__`, `constructor`, ...) are
 * dropped at every level; a value that is not a JSON object, or whose `cookie` express-session
 * could not use, is refused: `get` calls back with a `SessionError` (code `database`), the request
 * fails (500) and the stored value is left as it is.
 *
 * `length` counts live sessions. `all` and `clear` are not implemented: keys are stored only as
 * digests, so they cannot be listed, and the application role may not wipe every session.
 */
export class ExpressSessionStore extends session.Store {
  readonly sessions: FrameworkSessions;

  constructor(options: FrameworkStoreOptions = {}) {
    super();
    this.sessions = new FrameworkSessions(options);
  }

  override get(sid: string, cb: Callback<session.SessionData | null>): void {
    callback(this.read(sid), cb);
  }

  private async read(sid: string): Promise<session.SessionData | null> {
    const r = await this.sessions.load(sid);
    if (r === null) return null;
    checkCookie(r.sess);
    mark(r.sess, r.loaded);
    return r.sess as unknown as session.SessionData;
  }

  /** express-session builds every loaded session here: carry the mark over to it. */
  override createSession(req: Parameters<session.Store['createSession']>[0], sess: session.SessionData): session.Session & session.SessionData {
    const loaded = (sess as Marked)[loadedKey];
    const made = super.createSession(req, sess);
    if (loaded !== undefined) mark(made, loaded);
    return made;
  }

  override set(sid: string, sess: session.SessionData, cb?: Callback): void {
    callback(this.save(sid, sess as unknown as SessionData), cb);
  }

  private async save(sid: string, sess: SessionData): Promise<void> {
    const loaded = (sess as Marked)[loadedKey];
    const data = dataOf(sess);
    if (loaded?.sid === sid) {
      await this.sessions.update(loaded, JSON.stringify(sess), data !== loaded.data, expiryOf(sess), data);
      return;
    }
    const created = await this.sessions.create(sid, JSON.stringify(sess), expiryOf(sess), data);
    if (created !== null) mark(sess, created);
  }

  override touch(sid: string, sess: session.SessionData, cb?: Callback): void {
    callback(this.extend(sid, sess as unknown as SessionData), cb);
  }

  private async extend(sid: string, sess: SessionData): Promise<void> {
    const loaded = (sess as Marked)[loadedKey];
    const expiry = expiryOf(sess);
    if (loaded?.sid === sid) await this.sessions.update(loaded, '', false, expiry);
    else await this.sessions.store.touch(sid, expiry === undefined ? {} : { expiry });
  }

  override destroy(sid: string, cb?: Callback): void {
    callback(this.sessions.destroy(sid), cb);
  }

  override length(cb: Callback<number>): void {
    callback(this.sessions.store.count(), cb);
  }

  /** Closes the connections the store opened (not a `store` passed in). */
  close(): Promise<void> {
    return this.sessions.close();
  }
}
