import session from 'express-session';
import { callback, FrameworkSessions, type FrameworkStoreOptions, type SessionData } from './framework.js';

export type { FrameworkStoreOptions } from './framework.js';

type Callback<T = void> = (err: unknown, result?: T) => void;

/**
 * An express-session store. Values are the session as JSON; the cookie's maxAge/expires becomes
 * the expiry (a browser-session cookie gets the database's default period).
 *
 * - `set` creates or replaces (express-session makes its own 24-byte ids) via `session_put`,
 *   which never revives an expired session.
 * - `touch` never creates, and writes only when less than `touchThreshold` (default half) of the
 *   period remains: an unchanged request usually costs one read and no write.
 * - `length` counts live sessions. `all` and `clear` are not implemented: keys are stored only as
 *   digests, so they cannot be listed, and the application role may not wipe every session.
 */
export class ExpressSessionStore extends session.Store {
  readonly sessions: FrameworkSessions;

  constructor(options: FrameworkStoreOptions = {}) {
    super();
    this.sessions = new FrameworkSessions(options);
  }

  override get(sid: string, cb: Callback<session.SessionData | null>): void {
    callback(this.sessions.load(sid) as Promise<session.SessionData | null>, cb);
  }

  override set(sid: string, sess: session.SessionData, cb?: Callback): void {
    callback(this.sessions.write(sid, sess as unknown as SessionData, true), cb);
  }

  override touch(sid: string, sess: session.SessionData, cb?: Callback): void {
    callback(this.sessions.write(sid, sess as unknown as SessionData, false), cb);
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
