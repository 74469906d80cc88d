import { callback, FrameworkSessions, type FrameworkStoreOptions, type SessionData } from './framework.js';

export type { FrameworkStoreOptions } from './framework.js';

type Callback<T = void> = (err?: unknown, result?: T) => void;

/**
 * A @fastify/session store (no dependency on it at run time). Same storage and rules as
 * `ExpressSessionStore`: JSON values, expiry from the cookie, `session_put` for saves. Because
 * @fastify/session saves on every request by default (`rolling: true`), an unchanged session is
 * written only when less than `touchThreshold` (default half) of its period remains.
 */
export class FastifySessionStore {
  readonly sessions: FrameworkSessions;

  constructor(options: FrameworkStoreOptions = {}) {
    this.sessions = new FrameworkSessions(options);
  }

  get(sessionId: string, cb: Callback<SessionData | null>): void {
    callback(this.sessions.load(sessionId), cb);
  }

  set(sessionId: string, session: SessionData, cb: Callback): void {
    callback(this.sessions.write(sessionId, session, true), cb);
  }

  destroy(sessionId: string, cb: Callback): void {
    callback(this.sessions.destroy(sessionId), cb);
  }

  /** Closes the connections the store opened (not a `store` passed in). */
  close(): Promise<void> {
    return this.sessions.close();
  }
}
