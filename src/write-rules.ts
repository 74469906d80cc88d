// The write rules the express-session, @fastify/session and koa-session stores share, which keep a
// request from undoing a logout or reverting another request's change:
// - a session that was loaded is only ever updated (`merge`, `touch`: never create), and a change
//   writes only the top-level fields this request changed, so parallel requests keep each other's;
// - a session that changed nothing has only its expiry moved (`touch`), throttled;
// - `put` (may create) is for an id the framework has just generated.
//
// With the `subject` option, a session also says whose it is: after a write whose mapped subject
// differs from the one the session had when loaded (or a new session with a subject), the store
// calls `setSubject`. An unchanged subject costs nothing extra.
import type { IncomingMessage } from 'node:http';
import { maxSubjectBytes, cleanLabel } from './device-label.js';
import { SessionError } from './errors.js';
import {
  changesOf,
  dataOf,
  droppedKeys,
  parseSession,
  rewrittenByDefault,
  type FieldChanges,
  type SessionData,
} from './session-json.js';
import { connect, type SessionInfo, type SessionStore, type StoreOptions } from './store.js';

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
  /**
   * Whose session it is, from its data (e.g. `(sess) => sess.userId`); null or undefined:
   * anonymous. Written with the session (`setSubject`) whenever a save changes it, so that the
   * user's sessions can be listed and revoked (see `sessionsOf`, `revokeOthers`, `revokeHandle`).
   * Must return a non-empty string of at most 256 bytes (UTF-8): anything else makes the save
   * fail with `invalid_argument` before anything is written. If writing the subject fails after
   * the session was written (e.g. the connection broke), the session is cleared and the save
   * fails: a session is never left logged in under no subject or the previous one.
   */
  subject?: (sess: SessionData) => string | null | undefined;
  /**
   * A name for the session in lists, taken when it gets its subject (at login), e.g.
   * `(sess, req) => deviceLabel(req?.headers['user-agent'])`. `req` is the Node request when the
   * framework lets the store find it (express-session, @fastify/session and koa-session all do),
   * undefined otherwise. Cut to 256 bytes, control characters removed; undefined or empty: no label.
   */
  label?: (sess: SessionData, req: IncomingMessage | undefined) => string | undefined;
}

/**
 * What one request loaded: the session's id, its data as JSON (without the fields that change on
 * every save) and when it expires. Kept per request, so that concurrent requests never compare
 * against each other's copies.
 */
export interface Loaded {
  sid: string;
  data: string;
  /**
   * The stored value as this request loaded or last wrote it: a change is then written as a merge
   * of the fields that differ from it. Undefined when the copy may be another request's: the
   * change is then written whole.
   */
  value?: string | undefined;
  /**
   * The session's version when it held `value` (from `get`, or counted after this request's own
   * conditional write); undefined when unknown. While the session is still at it, a change is
   * written whole (a conditional `set`), which costs less than a merge and stores the same.
   */
  version?: number | undefined;
  expiresAt: number;
  /** The subject the session has in the database, as far as this store knows (undefined: unknown). */
  subject?: string | null | undefined;
}

/** One save of a session, in the adapters' terms. */
export interface Save {
  /** The session as stored (JSON). */
  value: string;
  /** The session without the fields every save rewrites (see {@link dataOf}); undefined: unchanged. */
  data: string | undefined;
  changed: boolean;
  /** Seconds, or undefined for the default period. */
  expiry: number | undefined;
  /** The session object, for the `subject` and `label` options. */
  sess: SessionData;
  /** The request, when the framework gives the store a way to it: for the `label` option. */
  req?: IncomingMessage | undefined;
  /** The fields the framework rewrites on every save (see {@link dataOf}; default: the cookie). */
  rewritten?: readonly string[];
}

/**
 * Whether a request that changed nothing moves the session's expiry: once no more than `threshold`
 * of its `period` (seconds) remains before `expiresAt`, or when it has passed (times in ms).
 */
export function touchDue(expiresAt: number, now: number, period: number, threshold: number): boolean {
  const remaining = (expiresAt - now) / 1000;
  return !(remaining > 0 && remaining > period * threshold);
}

/**
 * What the `subject` option returned, as the subject to write: null for none.
 * Errors: `invalid_argument` (not a non-empty string of at most 256 bytes, null or undefined).
 */
export function checkedSubject(s: unknown): string | null {
  if (s === undefined || s === null) return null;
  if (typeof s !== 'string' || s === '' || Buffer.byteLength(s) > maxSubjectBytes || s.includes('\u0000') || !s.isWellFormed()) {
    throw new SessionError(
      'invalid_argument',
      'the subject option must return a non-empty string of at most 256 bytes (UTF-8), null or undefined',
    );
  }
  return s;
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
  private readonly mapSubject: ((sess: SessionData) => string | null | undefined) | undefined;
  private readonly mapLabel: ((sess: SessionData, req: IncomingMessage | undefined) => string | undefined) | undefined;
  /** Writes skipped by the throttle, and done (touch, set or put); for measurements. */
  readonly stats = { skipped: 0, written: 0 };

  constructor(options: FrameworkStoreOptions = {}) {
    const { store, touchThreshold = 0.5, memoSize = 10_000, subject, label, ...connection } = options;
    if (!(touchThreshold >= 0 && touchThreshold <= 1)) {
      throw new SessionError('invalid_argument', 'touchThreshold must be between 0 and 1');
    }
    if (!Number.isSafeInteger(memoSize) || memoSize < 1) {
      throw new SessionError('invalid_argument', 'memoSize must be a positive integer');
    }
    for (const [name, f] of [
      ['subject', subject],
      ['label', label],
    ] as const) {
      if (f !== undefined && typeof f !== 'function') throw new SessionError('invalid_argument', `${name} must be a function`);
    }
    this.store = store ?? connect(connection);
    this.owned = store === undefined;
    this.threshold = touchThreshold;
    this.memoSize = memoSize;
    this.mapSubject = subject;
    this.mapLabel = label;
  }

  /**
   * The session and what this request loaded, or null when there is none (unknown, cleared,
   * expired, never set). `ignored`: fields left out of the comparison (see {@link dataOf}).
   */
  async load(sid: string, ignored?: readonly string[]): Promise<{ sess: SessionData; loaded: Loaded } | null> {
    const r = await this.store.get(sid);
    if (!r.ok) return null;
    const sess = parseSession(r.value);
    // Keys parseSession dropped stay stored until a whole write: a changed session is written whole.
    const value = droppedKeys(r.value, sess) ? undefined : r.value;
    const loaded: Loaded = {
      sid,
      data: dataOf(sess, ignored),
      value,
      version: r.version,
      expiresAt: Date.now() + r.period * 1000,
    };
    if (this.mapSubject !== undefined) loaded.subject = this.loadedSubject(sess);
    return { sess, loaded };
  }

  /**
   * The subject the stored data maps to. Nothing is checked here: a stored value the mapping
   * cannot read makes the subject unknown, so that the next change writes it, rather than fail
   * every request that reads the session.
   */
  private loadedSubject(sess: SessionData): string | null | undefined {
    try {
      const s = this.mapSubject?.(sess);
      return typeof s === 'string' ? s : null;
    } catch {
      return undefined;
    }
  }

  /**
   * The subject a save writes, checked before anything is written; undefined without the option.
   * Errors: `invalid_argument` (not a non-empty string of at most 256 bytes, null or undefined).
   */
  private subjectOf(sess: SessionData): string | null | undefined {
    return this.mapSubject === undefined ? undefined : checkedSubject(this.mapSubject(sess));
  }

  /**
   * After a write of the session: gives it its new subject (and label) if that changed. If that
   * fails, the session is cleared and the error passed on, so that it never stays logged in under
   * no subject or the previous one (where "log out everywhere" would miss it).
   */
  private async attribute(loaded: Loaded, subject: string | null | undefined, save: Save): Promise<void> {
    if (subject === undefined || subject === loaded.subject) return;
    const label = subject === null ? undefined : this.labelOf(save);
    try {
      await this.store.setSubject(loaded.sid, subject, label);
    } catch (err) {
      await this.store.clear(loaded.sid).catch(() => {});
      throw err;
    }
    loaded.subject = subject;
  }

  private labelOf(save: Save): string | undefined {
    const label = this.mapLabel?.(save.sess, save.req);
    return typeof label === 'string' ? cleanLabel(label) : undefined;
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
   * After a write: the session now expires `seconds` from now and, as this request sees it, holds
   * `save`, at `version` (undefined: unknown).
   */
  private restarted(loaded: Loaded, seconds: number, save: Save, version: number | undefined): void {
    loaded.expiresAt = Date.now() + seconds * 1000;
    if (save.data !== undefined) loaded.data = save.data;
    if (loaded.value !== undefined) loaded.value = save.value;
    loaded.version = version;
  }

  /**
   * Saves a session this request loaded: a change is written whole if the session is still at
   * the version this request loaded (a `set` with `ifVersion`), else as one `merge` of the
   * top-level fields it changed or removed (the whole value with a plain `set` when
   * `loaded.value` is unknown); no change only moves the expiry with `touch`, and that only once
   * no more than `touchThreshold` of the period remains. None ever creates: a session cleared
   * meanwhile stays cleared. Merging only this request's changes keeps those of requests that
   * saved meanwhile. Resolves false when the session is gone (cleared or expired); `loaded` then
   * is stale and nothing was written.
   */
  async update(loaded: Loaded, save: Save): Promise<boolean> {
    const { expiry } = save;
    const changes = save.changed && loaded.value !== undefined ? changesOf(loaded.value, save.value) : undefined;
    // Only key order or the fields every save rewrites moved: nothing to write, as for no change.
    const rewritten = save.rewritten ?? rewrittenByDefault;
    const changed =
      save.changed &&
      changes !== null &&
      (changes === undefined || [...Object.keys(changes.set), ...changes.unset].some((k) => !rewritten.includes(k)));
    const subject = changed ? this.subjectOf(save.sess) : undefined;
    const period = expiry ?? (await this.defaultPeriod());
    if (!changed && !touchDue(loaded.expiresAt, Date.now(), period, this.threshold)) {
      this.stats.skipped += 1;
      return true;
    }
    this.stats.written += 1;
    const options = expiry === undefined ? {} : { expiry };
    let version = changed ? undefined : loaded.version;
    let found: boolean;
    if (!changed) found = await this.store.touch(loaded.sid, options);
    else if (changes === undefined || changes === null) found = await this.store.set(loaded.sid, save.value, options);
    else {
      const written = await this.whole(loaded, save.value, options);
      if (written === 'conflict') found = await this.merge(loaded.sid, changes, save.value, options);
      else {
        found = written;
        if (found) version = (loaded.version as number) + 1;
      }
    }
    if (!found) return false;
    this.restarted(loaded, period, save, version);
    await this.attribute(loaded, subject, save);
    return true;
  }

  /**
   * Writes the changed session whole if nothing wrote it since this request's copy (a `set` with
   * `ifVersion`): the stored value then is `loaded.value`, so the merge of the changes would store
   * the same, at more cost. 'conflict' when the version moved (nothing written) or is unknown.
   */
  private async whole(loaded: Loaded, value: string, options: { expiry?: number }): Promise<boolean | 'conflict'> {
    if (loaded.version === undefined) return 'conflict';
    try {
      return await this.store.set(loaded.sid, value, { ...options, ifVersion: loaded.version });
    } catch (err) {
      if (err instanceof SessionError && err.code === 'conflict') return 'conflict';
      throw err;
    }
  }

  /**
   * Writes `changes` as one merge. JSON that PostgreSQL's jsonb cannot hold (a NUL character or a
   * lone surrogate, escaped, in the changes or in the stored value) makes the merge fail before
   * anything is written: such a session is then written whole, as a store without merges does.
   */
  private async merge(sid: string, changes: FieldChanges, value: string, options: { expiry?: number }): Promise<boolean> {
    try {
      return await this.store.merge(sid, changes, options);
    } catch (err) {
      if (!(err instanceof SessionError && (err.code === 'invalid_argument' || err.code === 'not_object'))) throw err;
      return this.store.set(sid, value, options);
    }
  }

  /**
   * Creates a session under an id the framework has just generated. `session_put` never writes
   * over a cleared or expired session, so even a wrong call cannot bring back a logged-out one:
   * it then resolves null and stores nothing.
   */
  async create(sid: string, save: Save): Promise<Loaded | null> {
    const subject = this.subjectOf(save.sess);
    this.stats.written += 1;
    const stored = await this.store.put(sid, save.value, save.expiry === undefined ? {} : { expiry: save.expiry });
    if (!stored) return null;
    // A new row has no subject.
    const loaded = await this.written(sid, save, null);
    await this.attribute(loaded, subject, save);
    return loaded;
  }

  /**
   * For a session whose origin is unknown (loaded, or just generated): update first, and create
   * only when that found no live session. Since `put` never writes over a cleared or expired row,
   * this creates only under an id that has no row at all.
   */
  async updateOrCreate(sid: string, save: Save): Promise<Loaded | null> {
    const { changed, expiry } = save;
    const subject = changed ? this.subjectOf(save.sess) : undefined;
    const options = expiry === undefined ? {} : { expiry };
    this.stats.written += 1;
    const found = changed ? await this.store.set(sid, save.value, options) : await this.store.touch(sid, options);
    if (!found) return this.create(sid, save);
    // Its subject in the database is unknown here: a change writes it.
    const loaded = await this.written(sid, save, undefined);
    await this.attribute(loaded, subject, save);
    return loaded;
  }

  private async written(sid: string, save: Save, subject: string | null | undefined): Promise<Loaded> {
    const expiresAt = Date.now() + (save.expiry ?? (await this.defaultPeriod())) * 1000;
    return { sid, data: save.data ?? '', value: save.value, expiresAt, subject };
  }

  async destroy(sid: string): Promise<void> {
    await this.store.clear(sid);
  }

  /**
   * The live sessions of a subject, newest first (at most `max`, default 100), each with a
   * handle, its label and when it was created, last written and expires: for a "your devices"
   * page. Last written moves with every change and, for requests that change nothing, at most
   * once per `touchThreshold` of the period. Errors: `invalid_argument`, `invalid_parameter`.
   */
  sessionsOf(subject: string, options?: { max?: number }): Promise<SessionInfo[]> {
    return this.store.list(subject, options);
  }

  /**
   * Ends every session of the subject but the one with id `sid` (this request's: "log out other
   * devices"), and resolves how many it ended. Errors: `invalid_argument`.
   */
  revokeOthers(subject: string, sid: string): Promise<number> {
    return this.store.revoke(subject, { except: sid });
  }

  /** Ends every session of the subject ("log out everywhere"); resolves how many. Errors: `invalid_argument`. */
  revokeAll(subject: string): Promise<number> {
    return this.store.revoke(subject);
  }

  /**
   * Ends the session with this handle (from {@link sessionsOf}) if it belongs to the subject; a
   * handle of another subject's session ends nothing. Errors: `invalid_argument` (not a handle).
   */
  revokeHandle(subject: string, handle: string): Promise<boolean> {
    return this.store.revokeHandle(subject, handle);
  }

  async close(): Promise<void> {
    if (this.owned) await this.store.close();
  }
}
