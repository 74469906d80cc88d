import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { FrameworkStore, nodeRequest, secondsOf } from './framework.js';
import { dataOf } from './session-json.js';
import type { FrameworkStoreOptions, Loaded, Save } from './write-rules.js';

export { cleanLabel, deviceLabel } from './device-label.js';
export type { FrameworkStoreOptions } from './write-rules.js';
export type { SessionInfo } from './store.js';

/** Fields koa-session rewrites on every save: left out when telling whether anything changed. */
const rewritten = ['_expire'] as const;

/**
 * A koa-session external store (`session({ store, genid: store.genid }, app)`); no dependency on
 * koa-session at run time. Values are the session as JSON; koa-session's `maxAge` becomes the
 * expiry (`'session'` cookies get the database's default period).
 *
 * How a request can never undo a logout or revert another request's change:
 * - `get` notes, per request (`ctx`, held weakly), the key and the data it loaded.
 * - `set` of the key this request loaded: changed (koa-session's `changed`, or data that differs
 *   from what was loaded) → `session_merge` of the top-level fields it changed or removed, which
 *   never creates: a session cleared meanwhile stays cleared; unchanged (`rolling`, `renew`) → only its expiry moves (`session_touch`), never its
 *   value, and only once no more than `touchThreshold` (default half) of the period remains.
 *   Two requests that changed different fields both keep their changes; the same field: the
 *   last one to save wins (docs/concurrent-requests.md).
 * - `set` of any other key (koa-session just generated it: new visitor, `regenerate`) →
 *   `session_put`, which may create and never writes over a cleared or expired key.
 * - Without a `ctx` (a caller other than koa-session): update first, create only when no live
 *   session was found.
 * - `get` sets `_expire` from the database's expiry: a touch moves the expiry without rewriting
 *   the stored `_expire`, and koa-session would otherwise take the session for expired.
 *
 * `genid` makes ids of 24 random bytes (base64url), as `session_put` expects (32-1024 base64url
 * characters); koa-session's default, a UUID, is accepted too but has only 122 random bits, and
 * a `prefix` with other characters is refused (`invalid_parameter`).
 *
 * Stored values: keys named like Object.prototype's members (`__proto__`, `constructor`, ...) are
 * dropped at every level; a value that is not a JSON object is refused: `get` rejects with a
 * `SessionError` (code `database`), Koa answers 500 and the stored value is left as it is.
 *
 * Users and devices: with the `subject` option (e.g. `subject: (sess) => sess.userId`), a save
 * that changes the session's subject also writes it (`setSubject`), with the `label` option's
 * name for the device (its `req` is `ctx.req`); route handlers list and end the user's sessions
 * with `sessionsOf`, `revokeOthers(subject, ctx.session.externalKey)`, `revokeHandle` and
 * `revokeAll`. koa-session's `regenerate()` removes the old key and saves the session under a new
 * one from `genid`, so `rotate` cannot be used there: the old session is cleared (a tombstone no
 * request can revive) and the new one gets the subject as it is created.
 */
export class KoaSessionStore extends FrameworkStore {
  private readonly loadedBy = new WeakMap<object, Loaded>();

  constructor(options: FrameworkStoreOptions = {}) {
    super(options);
  }

  /** A new session id: 24 random bytes, base64url. Pass it as koa-session's `genid`. */
  readonly genid = (): string => randomBytes(24).toString('base64url');

  async get(key: string, _maxAge?: unknown, options?: { ctx?: object }): Promise<Record<string, unknown> | null> {
    const r = await this.sessions.load(key, rewritten);
    if (r === null) return null;
    if (typeof options?.ctx === 'object' && options.ctx !== null) this.loadedBy.set(options.ctx, r.loaded);
    r.sess._expire = r.loaded.expiresAt;
    return r.sess;
  }

  async set(
    key: string,
    sess: Record<string, unknown>,
    maxAge?: unknown,
    options?: { changed?: boolean; ctx?: object },
  ): Promise<void> {
    const ctx = typeof options?.ctx === 'object' && options.ctx !== null ? options.ctx : undefined;
    const save: Save = {
      value: JSON.stringify(sess),
      data: dataOf(sess, rewritten),
      changed: options?.changed ?? true,
      expiry: secondsOf(maxAge),
      sess,
      req: requestOf(ctx),
      rewritten,
    };
    if (ctx === undefined) {
      await this.sessions.updateOrCreate(key, save);
      return;
    }
    const loaded = this.loadedBy.get(ctx);
    if (loaded?.sid === key) {
      await this.sessions.update(loaded, { ...save, changed: options?.changed === true || save.data !== loaded.data });
      return;
    }
    const created = await this.sessions.create(key, save);
    if (created !== null) this.loadedBy.set(ctx, created);
  }

  async destroy(key: string): Promise<void> {
    await this.sessions.destroy(key);
  }
}

/** The Node request of koa-session's `ctx`. */
const requestOf = (ctx: object | undefined): IncomingMessage | undefined =>
  nodeRequest((ctx as { req?: unknown } | undefined)?.req);
