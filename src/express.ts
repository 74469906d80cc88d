import type { IncomingMessage } from 'node:http';
import session from 'express-session';
import { SessionError } from './errors.js';
import { callback, expiryOf, nodeRequest, SessionHelpers } from './framework.js';
import { dataOf, type SessionData } from './session-json.js';
import { FrameworkSessions, type FrameworkStoreOptions, type Loaded, type Save } from './write-rules.js';

export { cleanLabel, deviceLabel } from './device-label.js';
export type { FrameworkStoreOptions } from './write-rules.js';
export type { SessionInfo } from './store.js';

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
const Cookie = session.Cookie as unknown as new (
  options: object,
) => { expires: unknown; serialize(name: string, value: string): string };

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
 * - `set` of a marked session: changed → `session_merge` of the top-level fields it changed or
 *   removed (never creates: a session cleared meanwhile stays cleared); unchanged
 *   (`resave: true`) → as `touch`. `set` of an unmarked
 *   session → `session_put`, which may create, and never writes over a cleared or expired key.
 * - `touch` moves only the expiry (`session_touch`), never the value, and only once no more than
 *   `touchThreshold` (default half) of the period remains: an unchanged request usually costs one
 *   read and no write, and never rewrites what another request changed meanwhile.
 * - Two requests that changed different fields both keep their changes; the same field: the
 *   last one to save wins (docs/concurrent-requests.md).
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
 *
 * Users and devices: with the `subject` option (e.g. `subject: (sess) => sess.userId`), a save
 * that changes the session's subject also writes it (`setSubject`), with the `label` option's
 * name for the device (its `req` is the request); route handlers then list and end the user's
 * sessions with `sessionsOf`, `revokeOthers(subject, req.sessionID)`, `revokeHandle` and
 * `revokeAll`. express-session's `regenerate` destroys the old id and makes the new one itself, so
 * the store cannot use `rotate` there: the old session is cleared (a tombstone no request can
 * revive) and the new one, saved with the user's data, gets the subject on its first save. Log
 * out with `req.session.destroy()`: deleting the user field instead leaves that field to the
 * last request that saves it, as for any field.
 */
export class ExpressSessionStore extends SessionHelpers(session.Store) {
  override readonly sessions: FrameworkSessions;

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
  override createSession(
    req: Parameters<session.Store['createSession']>[0],
    sess: session.SessionData,
  ): session.Session & session.SessionData {
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
    const save: Save = {
      value: JSON.stringify(sess),
      data,
      changed: data !== loaded?.data,
      expiry: expiryOf(sess),
      sess,
      req: requestOf(sess),
    };
    if (loaded?.sid === sid) {
      await this.sessions.update(loaded, save);
      return;
    }
    const created = await this.sessions.create(sid, save);
    if (created !== null) mark(sess, created);
  }

  override touch(sid: string, sess: session.SessionData, cb?: Callback): void {
    callback(this.extend(sid, sess as unknown as SessionData), cb);
  }

  private async extend(sid: string, sess: SessionData): Promise<void> {
    const loaded = (sess as Marked)[loadedKey];
    const expiry = expiryOf(sess);
    if (loaded?.sid === sid) await this.sessions.update(loaded, { value: '', data: undefined, changed: false, expiry, sess });
    else await this.sessions.store.touch(sid, expiry === undefined ? {} : { expiry });
  }

  override destroy(sid: string, cb?: Callback): void {
    callback(this.sessions.destroy(sid), cb);
  }

  override length(cb: Callback<number>): void {
    callback(this.sessions.store.count(), cb);
  }
}

/** express-session's Session keeps its request as a non-enumerable `req`. */
const requestOf = (sess: object): IncomingMessage | undefined => nodeRequest((sess as { req?: unknown }).req);
