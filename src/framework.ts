// What the express-session, @fastify/session and koa-session stores share beyond the write rules
// (write-rules.ts): the helpers for route handlers, expiry from the cookie, and callbacks.
import type { IncomingMessage } from 'node:http';
import type { SessionData } from './session-json.js';
import type { SessionInfo } from './store.js';
import { FrameworkSessions, type FrameworkStoreOptions } from './write-rules.js';

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

/**
 * Adds to `Base` the helpers a route handler calls for the user's sessions, and `close`: as a
 * class factory, because express-session wants its own Store as the base class of a store.
 */
// biome-ignore lint/suspicious/noExplicitAny: a mixin's constructor must take `any[]` (TypeScript's rule for mixin classes).
export function SessionHelpers<Base extends abstract new (...args: any[]) => object>(base: Base) {
  abstract class WithHelpers extends base {
    /** Set by the subclass's constructor. */
    declare readonly sessions: FrameworkSessions;

    /** See {@link FrameworkSessions.sessionsOf}. */
    sessionsOf(subject: string, options?: { max?: number }): Promise<SessionInfo[]> {
      return this.sessions.sessionsOf(subject, options);
    }

    /** See {@link FrameworkSessions.revokeOthers}. */
    revokeOthers(subject: string, sid: string): Promise<number> {
      return this.sessions.revokeOthers(subject, sid);
    }

    /** See {@link FrameworkSessions.revokeAll}. */
    revokeAll(subject: string): Promise<number> {
      return this.sessions.revokeAll(subject);
    }

    /** See {@link FrameworkSessions.revokeHandle}. */
    revokeHandle(subject: string, handle: string): Promise<boolean> {
      return this.sessions.revokeHandle(subject, handle);
    }

    /** Closes the connections the store opened (not a `store` passed in). */
    close(): Promise<void> {
      return this.sessions.close();
    }
  }
  return WithHelpers;
}

/** The base class of the Fastify and Koa stores: the storage rules and the helpers. */
export class FrameworkStore extends SessionHelpers(Object) {
  override readonly sessions: FrameworkSessions;

  constructor(options: FrameworkStoreOptions = {}) {
    super();
    this.sessions = new FrameworkSessions(options);
  }
}

/** `req` if it looks like a Node request (an object with headers), else undefined. */
export function nodeRequest(req: unknown): IncomingMessage | undefined {
  return typeof req === 'object' && req !== null && 'headers' in req ? (req as IncomingMessage) : undefined;
}

/**
 * Calls back node-style, exactly once, with the result or the store's error. A throw from the
 * callback itself is the framework's own, and is not hidden.
 */
export function callback<T>(p: Promise<T>, cb: ((err: unknown, result?: T) => void) | undefined): void {
  p.then(
    (v) => cb?.(null, v),
    (err: unknown) => cb?.(err),
  );
}
