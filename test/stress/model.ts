// An in-memory model of ocaml-session's semantics (plus session_put, touch, count, purge, the
// per-subject calls: subjects, list, revoke, rotate, absolute lifetime, and versions, conditional
// writes and merges), and the
// fast-check commands that drive the same random sequences through any implementation of `Api`:
// the TypeScript client, or the SQL functions called directly.
//
// Real time passes while a sequence runs, and the database's clock decides expiry. The model keeps,
// for every session, the earliest and latest instants (on this process's monotonic clock) at which
// it can expire, derived from when the writing call started and ended. A call whose own start/end
// bracket lies entirely before or after that window has one right answer; inside it, both answers
// are accepted, and the answer narrows the window. Periods are checked against the same brackets.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import type pg from 'pg';
import type { SessionStore } from '../../src/index.js';
import type { SessionAdmin } from '../../src/admin-index.js';

/** The store's API, as the model sees it. Errors are thrown as `{ code }` (SessionError codes). */
export interface Api {
  generate(expiry: number | undefined, value: string | undefined, subject?: string, lifetime?: number): Promise<string>;
  get(
    key: string,
  ): Promise<{ ok: true; value: string; period: number; version: number } | { ok: false; error: 'not_found' | 'not_set' }>;
  set(key: string, value: string, expiry: number | undefined, ifVersion?: number): Promise<boolean>;
  put(key: string, value: string, expiry: number | undefined, ifVersion?: number): Promise<boolean>;
  merge(
    key: string,
    set: Record<string, unknown>,
    unset: string[],
    expiry: number | undefined,
    ifVersion?: number,
  ): Promise<boolean>;
  touch(key: string, expiry: number | undefined): Promise<boolean>;
  clear(key: string): Promise<void>;
  setSubject(key: string, subject: string | null): Promise<boolean>;
  /** How many live sessions list(subject) shows. */
  list(subject: string): Promise<number>;
  revoke(subject: string, except: string | undefined): Promise<number>;
  rotate(key: string): Promise<string | null>;
  count(): Promise<number>;
  defaultPeriod(): Promise<number>;
  setDefaultPeriod(period: number): Promise<void>;
  purge(batchSize: number | undefined): Promise<number>;
}

/** What the test needs besides the API: a way to see whether rows are still in the table. */
export interface Real {
  api: Api;
  /** Which of these keys still have a row (expired or not), read as the owner. */
  present(keys: string[]): Promise<Set<string>>;
}

export const MAX_VALUE_BYTES = 1024 * 1024;
const MAX_EXPIRY = 3155760000;
/** Slack between this process's clock and the database's, in ms. */
const SLACK_MS = 30;

interface Entry {
  value: string | null;
  /** The session expires somewhere in (lo, hi] (ms, performance.now clock). */
  lo: number;
  hi: number;
  /** Cleared or revoked: a tombstone until it expires; no call finds or writes it. */
  cleared: boolean;
  subject: string | null;
  /** Its absolute end lies in (capLo, capHi]; Infinity without one. */
  capLo: number;
  capHi: number;
  /** After a merge: the JSON object the value holds (stored as jsonb prints it, compared as JSON). */
  json?: Record<string, unknown>;
  /** How many writes of the value it had; the version a get returned, and after how many writes. */
  writes: number;
  seen?: { version: number; writes: number };
}

export class Model {
  /** Keys handed out by generate, in order; commands refer to them by index. */
  readonly keys: string[] = [];
  /** Rows in the table (expired, cleared or not), by key: what purge removes. */
  readonly rows = new Map<string, Entry>();
  defaultPeriod = 604800;
  calls = 0;
  /** Reads and writes that met a session which had expired by the database clock. */
  expiredHits = 0;
  /** Calls made while a session was within the clock tolerance of its expiry (either answer accepted). */
  ambiguous = 0;
  /** Merges that wrote, and conditional writes refused because the version had moved. */
  merged = 0;
  conflicts = 0;
}

type Status = 'live' | 'expired' | 'unknown';
/** Whether a row has expired for a call made during [t0, t1] (what purge goes by). */
function rowStatus(e: Entry, t0: number, t1: number): Status {
  if (e.hi <= t0) return 'expired';
  if (e.lo > t1) return 'live';
  return 'unknown';
}
/** Whether a session is live for a call made during [t0, t1]: a tombstone never is. */
const status = (e: Entry, t0: number, t1: number): Status => (e.cleared ? 'expired' : rowStatus(e, t0, t1));

/** The expiry window of a write made during [t0, t1] with `expiry` seconds (or the default). */
function window(m: Model, expiry: number | undefined, t0: number, t1: number, cap?: Entry): { lo: number; hi: number } {
  const s = expiry ?? m.defaultPeriod;
  // Born expired: every later call starts after this one's transaction, on a later clock reading.
  const w = s <= 0 ? { lo: -Infinity, hi: -Infinity } : { lo: t0 + s * 1000 - SLACK_MS, hi: t1 + s * 1000 + SLACK_MS };
  // The expiry never passes the absolute end: the earlier of the two windows.
  return cap === undefined ? w : { lo: Math.min(w.lo, cap.capLo), hi: Math.min(w.hi, cap.capHi) };
}

/** A call saw the session not live at t1: it had expired by then (a tombstone tells nothing). */
function expiredBy(e: Entry, t1: number): void {
  if (!e.cleared) e.hi = Math.min(e.hi, t1);
}

/** A new row: no subject, no cap unless a lifetime is given. */
function entry(value: string | null, w: { lo: number; hi: number }, extra: Partial<Entry> = {}): Entry {
  return { value, ...w, cleared: false, subject: null, capLo: Infinity, capHi: Infinity, writes: 0, ...extra };
}

const bytes = (v: string) => Buffer.byteLength(v, 'utf8');
const putKeyOk = (k: string) => bytes(k) <= 1024 && /^[A-Za-z0-9_-]{32,}$/.test(k);

/** The error a write is refused with, checked in the SQL functions' order; undefined if none. */
function writeError(value: string | undefined, expiry: number | undefined): string | undefined {
  if (value !== undefined && bytes(value) > MAX_VALUE_BYTES) return 'value_too_large';
  if (expiry !== undefined && Math.abs(expiry) > MAX_EXPIRY) return 'invalid_parameter';
  return undefined;
}

async function outcome<T>(p: Promise<T>): Promise<{ ok: true; v: T } | { ok: false; code: string }> {
  try {
    return { ok: true, v: await p };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string') throw err;
    return { ok: false, code };
  }
}

async function timed<T>(m: Model, f: () => Promise<T>) {
  const t0 = performance.now();
  const r = await outcome(f());
  m.calls += 1;
  return { r, t0, t1: performance.now() };
}

function expectError(r: { ok: boolean; code?: string }, code: string, what: string): void {
  assert.deepEqual(r, { ok: false, code }, what);
}

const show = (v: string | undefined) =>
  v === undefined ? 'undefined' : v.length > 24 ? `<${v.length} chars>` : JSON.stringify(v);

// A generated key is named by its place counted back from the newest key: removing an earlier
// command then leaves what a later one names unchanged (counted from the oldest, every later
// reference shifted), so a failing sequence shrinks to the few commands that matter.
// A merge mostly names a key whose session the model holds to be a JSON object, counted back too.
type KeyRef = { kind: 'generated'; i: number } | { kind: 'fixed'; key: string } | { kind: 'object'; i: number };
function resolve(m: Model, ref: KeyRef): string {
  if (ref.kind === 'fixed') return ref.key;
  if (ref.kind === 'object') {
    const objects = m.keys.filter((k) => {
      const e = m.rows.get(k);
      return e !== undefined && !e.cleared && objectOf(e) !== undefined;
    });
    return objects.length === 0 ? 'no-object-session-yet' : (objects[objects.length - 1 - (ref.i % objects.length)] as string);
  }
  return m.keys.length === 0 ? 'no-key-generated-yet' : (m.keys[m.keys.length - 1 - (ref.i % m.keys.length)] as string);
}
const showRef = (ref: KeyRef) =>
  ref.kind === 'fixed' ? show(ref.key) : ref.kind === 'object' ? `object[-${ref.i + 1}]` : `key[-${ref.i + 1}]`;

abstract class Cmd implements fc.AsyncCommand<Model, Real, false> {
  check(): boolean {
    return true;
  }
  abstract run(m: Model, r: Real): Promise<void>;
  abstract toString(): string;
}

class Generate extends Cmd {
  constructor(
    readonly expiry: number | undefined,
    readonly value: string | undefined,
    readonly subject?: string,
    readonly lifetime?: number,
  ) {
    super();
  }
  async run(m: Model, real: Real) {
    const { r, t0, t1 } = await timed(m, () => real.api.generate(this.expiry, this.value, this.subject, this.lifetime));
    const error =
      writeError(this.value, this.expiry) ??
      (this.lifetime !== undefined && (this.lifetime < 1 || this.lifetime > MAX_EXPIRY) ? 'invalid_parameter' : undefined);
    if (error !== undefined) return expectError(r, error, this.toString());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    assert.match(r.v, /^[A-Za-z0-9_-]{64}$/);
    assert.ok(!m.rows.has(r.v) && !m.keys.includes(r.v), 'a key was handed out twice');
    m.keys.push(r.v);
    const cap =
      this.lifetime === undefined
        ? {}
        : { capLo: t0 + this.lifetime * 1000 - SLACK_MS, capHi: t1 + this.lifetime * 1000 + SLACK_MS };
    const e = entry(this.value ?? null, { lo: 0, hi: 0 }, { subject: this.subject ?? null, ...cap });
    m.rows.set(r.v, { ...e, ...window(m, this.expiry, t0, t1, e) });
  }
  toString() {
    const extra = this.subject === undefined && this.lifetime === undefined ? '' : `, ${show(this.subject)}, ${this.lifetime}`;
    return `generate(${this.expiry}, ${show(this.value)}${extra})`;
  }
}

class Get extends Cmd {
  constructor(readonly ref: KeyRef) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r, t0, t1 } = await timed(m, () => real.api.get(key));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const e = m.rows.get(key);
    const st = e === undefined ? 'expired' : status(e, t0, t1);
    if (e !== undefined && st !== 'live') m[st === 'expired' ? 'expiredHits' : 'ambiguous'] += 1;
    if (e === undefined || st === 'expired' || (st === 'unknown' && !r.v.ok && r.v.error === 'not_found')) {
      assert.deepEqual(r.v, { ok: false, error: 'not_found' }, `${this}: ${st}`);
      if (e !== undefined) expiredBy(e, t1);
      return;
    }
    e.lo = Math.max(e.lo, t0);
    if (e.value === null) return assert.deepEqual(r.v, { ok: false, error: 'not_set' }, this.toString());
    assert.ok(r.v.ok, `${this}: expected the value, got ${JSON.stringify(r.v)}`);
    if (e.json === undefined)
      assert.ok(r.v.value === e.value, `${this}: wrong value ${show(r.v.value)}, expected ${show(e.value)}`);
    else assert.deepEqual(JSON.parse(r.v.value), e.json, `${this}: wrong merged value ${show(r.v.value)}`);
    // The version stays while nothing writes the value, and moves with every write.
    assert.ok(Number.isSafeInteger(r.v.version), `${this}: version ${r.v.version}`);
    if (e.seen !== undefined && e.seen.writes === e.writes)
      assert.equal(r.v.version, e.seen.version, `${this}: the version moved without a write`);
    if (e.seen !== undefined && e.seen.writes !== e.writes)
      assert.ok(r.v.version > e.seen.version, `${this}: the version did not move with a write`);
    e.seen = { version: r.v.version, writes: e.writes };
    const min = Math.max(0, Math.floor((e.lo - t1) / 1000));
    const max = Math.floor((e.hi - t0) / 1000);
    assert.ok(
      Number.isInteger(r.v.period) && r.v.period >= min && r.v.period <= max,
      `${this}: period ${r.v.period} not in [${min}, ${max}]`,
    );
  }
  toString() {
    return `get(${showRef(this.ref)})`;
  }
}

/** Which version a conditional write gives: none, the last one a get saw of the key, or a stale one. */
type IfVersion = 'none' | 'seen' | 'stale';
/** The version to send, and whether it is the session's current one. */
function ifVersionOf(e: Entry | undefined, choice: IfVersion): { version: number | undefined; current: boolean } {
  if (choice === 'none') return { version: undefined, current: true };
  if (choice === 'seen' && e?.seen !== undefined) return { version: e.seen.version, current: e.seen.writes === e.writes };
  // Versions start at the microsecond a session was made: 1 is never a live session's.
  return { version: 1, current: false };
}

/**
 * The outcome of a write that finds a live session: a conflict when its version is not the
 * current one, or `check()`'s error, or written. A session that may have expired (unknown) also
 * accepts false. Returns whether it wrote.
 */
function conditional(
  m: Model,
  r: { ok: true; v: boolean } | { ok: false; code: string },
  st: Status,
  current: boolean,
  check: string | undefined,
  what: string,
): boolean {
  if (st === 'expired') {
    assert.deepEqual(r, { ok: true, v: false }, `${what}: expired`);
    return false;
  }
  if (st === 'unknown' && r.ok && !r.v) return false;
  const expected = !current ? 'conflict' : check;
  if (expected !== undefined) {
    expectError(r, expected, `${what}: ${st}`);
    if (expected === 'conflict') m.conflicts += 1;
    return false;
  }
  assert.deepEqual(r, { ok: true, v: true }, `${what}: ${st}`);
  return true;
}

class Write extends Cmd {
  constructor(
    readonly fn: 'set' | 'put',
    readonly ref: KeyRef,
    readonly value: string,
    readonly expiry: number | undefined,
    readonly ifVersion: IfVersion = 'none',
  ) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const e = m.rows.get(key);
    const { version, current } = ifVersionOf(e, this.ifVersion);
    const { r, t0, t1 } = await timed(m, () => real.api[this.fn](key, this.value, this.expiry, version));
    if (this.fn === 'put' && !putKeyOk(key)) return expectError(r, 'invalid_parameter', this.toString());
    const error = writeError(this.value, this.expiry);
    if (error !== undefined) return expectError(r, error, this.toString());
    // set: only a live session is updated. put: also creates when there is no row at all, unless
    // it is conditional.
    const st = e === undefined ? (this.fn === 'put' && version === undefined ? 'live' : 'expired') : status(e, t0, t1);
    if (e !== undefined && st !== 'live') m[st === 'expired' ? 'expiredHits' : 'ambiguous'] += 1;
    if (conditional(m, r as { ok: true; v: boolean } | { ok: false; code: string }, st, current, undefined, this.toString())) {
      // A put that created the row starts it afresh; otherwise the row keeps its subject and cap.
      const { json: _, ...kept } = e ?? entry(null, { lo: 0, hi: 0 });
      m.rows.set(
        key,
        e === undefined
          ? entry(this.value, window(m, this.expiry, t0, t1))
          : { ...kept, value: this.value, writes: kept.writes + 1, ...window(m, this.expiry, t0, t1, e) },
      );
    } else if (e !== undefined && r.ok) {
      expiredBy(e, t1);
    }
  }
  toString() {
    return `${this.fn}(${showRef(this.ref)}, ${show(this.value)}, ${this.expiry}${this.ifVersion === 'none' ? '' : `, ${this.ifVersion}`})`;
  }
}

/** The JSON object a stored value holds, or undefined (not set, not JSON, not an object). */
function objectOf(e: Entry): Record<string, unknown> | undefined {
  if (e.json !== undefined) return e.json;
  if (e.value === null) return undefined;
  try {
    const v = JSON.parse(e.value) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** merge: top-level fields removed then set, on a live session holding a JSON object. */
class Merge extends Cmd {
  constructor(
    readonly ref: KeyRef,
    readonly set: Record<string, unknown>,
    readonly unset: string[],
    readonly expiry: number | undefined,
    readonly ifVersion: IfVersion,
  ) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const e = m.rows.get(key);
    const { version, current } = ifVersionOf(e, this.ifVersion);
    const { r, t0, t1 } = await timed(m, () => real.api.merge(key, this.set, this.unset, this.expiry, version));
    if (this.expiry !== undefined && Math.abs(this.expiry) > MAX_EXPIRY)
      return expectError(r, 'invalid_parameter', this.toString());
    const st = e === undefined ? 'expired' : status(e, t0, t1);
    if (e !== undefined && st !== 'live') m[st === 'expired' ? 'expiredHits' : 'ambiguous'] += 1;
    const base = e === undefined ? undefined : objectOf(e);
    const wrote = conditional(
      m,
      r as { ok: true; v: boolean } | { ok: false; code: string },
      st,
      current,
      base === undefined ? 'not_object' : undefined,
      this.toString(),
    );
    if (e === undefined) return;
    if (wrote) {
      m.merged += 1;
      const json = { ...base };
      for (const f of this.unset) delete json[f];
      Object.assign(json, this.set);
      Object.assign(e, { json, value: JSON.stringify(json), writes: e.writes + 1, ...window(m, this.expiry, t0, t1, e) });
    } else if (r.ok) {
      expiredBy(e, t1);
    }
  }
  toString() {
    return `merge(${showRef(this.ref)}, ${JSON.stringify(this.set)}, ${JSON.stringify(this.unset)}, ${this.expiry}, ${this.ifVersion})`;
  }
}

/** touch: like set, but the value stays as it is. */
class Touch extends Cmd {
  constructor(
    readonly ref: KeyRef,
    readonly expiry: number | undefined,
  ) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r, t0, t1 } = await timed(m, () => real.api.touch(key, this.expiry));
    if (this.expiry !== undefined && Math.abs(this.expiry) > MAX_EXPIRY)
      return expectError(r, 'invalid_parameter', this.toString());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const e = m.rows.get(key);
    const st = e === undefined ? 'expired' : status(e, t0, t1);
    if (st !== 'unknown') assert.equal(r.v, st === 'live', `${this}: ${st}`);
    if (e === undefined) return;
    if (r.v) Object.assign(e, window(m, this.expiry, t0, t1, e));
    else expiredBy(e, t1);
  }
  toString() {
    return `touch(${showRef(this.ref)}, ${this.expiry})`;
  }
}

class SetSubject extends Cmd {
  constructor(
    readonly ref: KeyRef,
    readonly subject: string | null,
  ) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r, t0, t1 } = await timed(m, () => real.api.setSubject(key, this.subject));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const e = m.rows.get(key);
    const st = e === undefined ? 'expired' : status(e, t0, t1);
    if (st !== 'unknown') assert.equal(r.v, st === 'live', `${this}: ${st}`);
    if (e !== undefined && r.v) e.subject = this.subject;
  }
  toString() {
    return `setSubject(${showRef(this.ref)}, ${show(this.subject ?? undefined)})`;
  }
}

/** The sessions of a subject that are live, and those within the clock tolerance of expiring. */
function ofSubject(m: Model, subject: string, t0: number, t1: number, except?: string) {
  const mine = [...m.rows].filter(([k, e]) => e.subject === subject && k !== except);
  return {
    live: mine.filter(([, e]) => status(e, t0, t1) === 'live'),
    unknown: mine.filter(([, e]) => status(e, t0, t1) === 'unknown'),
  };
}

class List extends Cmd {
  constructor(readonly subject: string) {
    super();
  }
  async run(m: Model, real: Real) {
    const { r, t0, t1 } = await timed(m, () => real.api.list(this.subject));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const { live, unknown } = ofSubject(m, this.subject, t0, t1);
    assert.ok(
      r.v >= live.length && r.v <= live.length + unknown.length,
      `${this}: ${r.v} not in [${live.length}, ${live.length + unknown.length}]`,
    );
  }
  toString() {
    return `list(${show(this.subject)})`;
  }
}

class Revoke extends Cmd {
  constructor(
    readonly subject: string,
    readonly except: KeyRef | undefined,
  ) {
    super();
  }
  async run(m: Model, real: Real) {
    const except = this.except === undefined ? undefined : resolve(m, this.except);
    const { r, t0, t1 } = await timed(m, () => real.api.revoke(this.subject, except));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const { live, unknown } = ofSubject(m, this.subject, t0, t1, except);
    assert.ok(
      r.v >= live.length && r.v <= live.length + unknown.length,
      `${this}: ${r.v} not in [${live.length}, ${live.length + unknown.length}]`,
    );
    // Live or expired at that moment: either way, no call finds or writes it again.
    for (const [, e] of [...live, ...unknown]) e.cleared = true;
  }
  toString() {
    return `revoke(${show(this.subject)}, ${this.except === undefined ? 'all' : `except ${showRef(this.except)}`})`;
  }
}

class Rotate extends Cmd {
  constructor(readonly ref: KeyRef) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r, t0, t1 } = await timed(m, () => real.api.rotate(key));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const e = m.rows.get(key);
    const st = e === undefined ? 'expired' : status(e, t0, t1);
    if (st !== 'unknown') assert.equal(r.v !== null, st === 'live', `${this}: ${st}`);
    if (r.v === null) {
      if (e !== undefined) expiredBy(e, t1);
      return;
    }
    assert.ok(e !== undefined && r.v !== key && !m.rows.has(r.v), `${this}: ${r.v}`);
    assert.match(r.v, /^[A-Za-z0-9_-]{64}$/);
    // The same session under a new key (same expiry); the old key is a tombstone.
    m.keys.push(r.v);
    // Under its new key the session has a new version: the model has seen none of it yet.
    const { seen: _, ...moved } = e;
    m.rows.set(r.v, { ...moved, lo: Math.max(e.lo, t0 - SLACK_MS) });
    e.cleared = true;
  }
  toString() {
    return `rotate(${showRef(this.ref)})`;
  }
}

class Clear extends Cmd {
  constructor(readonly ref: KeyRef) {
    super();
  }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r } = await timed(m, () => real.api.clear(key));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    // The row stays as a tombstone until it expires (at most a day: longer than any sequence).
    const e = m.rows.get(key);
    if (e !== undefined) e.cleared = true;
  }
  toString() {
    return `clear(${showRef(this.ref)})`;
  }
}

class Count extends Cmd {
  async run(m: Model, real: Real) {
    const { r, t0, t1 } = await timed(m, () => real.api.count());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const st = [...m.rows.values()].map((e) => status(e, t0, t1));
    const live = st.filter((s) => s === 'live').length;
    const unknown = st.filter((s) => s === 'unknown').length;
    assert.ok(r.v >= live && r.v <= live + unknown, `count ${r.v} not in [${live}, ${live + unknown}]`);
  }
  toString() {
    return 'count()';
  }
}

class DefaultPeriod extends Cmd {
  async run(m: Model, real: Real) {
    const { r } = await timed(m, () => real.api.defaultPeriod());
    assert.deepEqual(r, { ok: true, v: m.defaultPeriod }, this.toString());
  }
  toString() {
    return 'defaultPeriod()';
  }
}

class SetDefaultPeriod extends Cmd {
  constructor(readonly period: number) {
    super();
  }
  async run(m: Model, real: Real) {
    const { r } = await timed(m, () => real.api.setDefaultPeriod(this.period));
    if (this.period < 1 || this.period > MAX_EXPIRY) return expectError(r, 'invalid_parameter', this.toString());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    m.defaultPeriod = this.period;
  }
  toString() {
    return `setDefaultPeriod(${this.period})`;
  }
}

class Purge extends Cmd {
  constructor(readonly batchSize: number | undefined) {
    super();
  }
  async run(m: Model, real: Real) {
    const { r, t0, t1 } = await timed(m, () => real.api.purge(this.batchSize));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    // The model's tables are tiny (one block range), so one call sweeps them whole, whatever the batch.
    const expired = [...m.rows].filter(([, e]) => rowStatus(e, t0, t1) === 'expired').map(([k]) => k);
    const unknown = [...m.rows].filter(([, e]) => rowStatus(e, t0, t1) === 'unknown').map(([k]) => k);
    assert.ok(
      r.v >= expired.length && r.v <= expired.length + unknown.length,
      `purge deleted ${r.v}, expected [${expired.length}, ${expired.length + unknown.length}]`,
    );
    for (const k of expired) m.rows.delete(k);
    if (unknown.length > 0) {
      const left = await real.present(unknown);
      for (const k of unknown) if (!left.has(k)) m.rows.delete(k);
      assert.equal(unknown.length - left.size, r.v - expired.length, 'purge count and rows left disagree');
    }
  }
  toString() {
    return `purge(${this.batchSize})`;
  }
}

class Wait extends Cmd {
  constructor(readonly ms: number) {
    super();
  }
  async run() {
    await sleep(this.ms);
  }
  toString() {
    return `wait(${this.ms}ms)`;
  }
}

// ---- arbitraries ----
const IDS = ['I'.repeat(32), 'framework-id_0123456789abcdefghij', 'A'.repeat(64)];
const expiryArb = fc.constantFrom(
  undefined,
  undefined,
  -MAX_EXPIRY,
  -1,
  0,
  1,
  1,
  2,
  60,
  3600,
  604800,
  MAX_EXPIRY,
  MAX_EXPIRY + 1,
  -MAX_EXPIRY - 1,
);
const big = {
  at: 'x'.repeat(MAX_VALUE_BYTES),
  over: 'x'.repeat(MAX_VALUE_BYTES + 1),
  atTwoByte: 'é'.repeat(MAX_VALUE_BYTES / 2),
  overTwoByte: 'é'.repeat(MAX_VALUE_BYTES / 2 + 1),
  medium: '😀'.repeat(25_000),
};
const FIELDS = ['a', 'b', 'c', 'é😀'];
/** Values that hold JSON objects of those fields, for merges to work on. */
const jsonValueArb = fc
  .dictionary(fc.constantFrom(...FIELDS), fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null)), { maxKeys: 3 })
  .map((o) => JSON.stringify(o));
const ifVersionArb = fc.constantFrom<IfVersion>('none', 'none', 'none', 'seen', 'stale');
const valueArb = fc.oneof(
  { weight: 10, arbitrary: jsonValueArb },
  { weight: 12, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }).filter((s) => !s.includes('\u0000')) },
  { weight: 3, arbitrary: fc.constantFrom('', 'v', 'é€😀\u{10FFFF}', "'; --", '%_\\') },
  { weight: 1, arbitrary: fc.constantFrom(big.at, big.over, big.atTwoByte, big.overTwoByte, big.medium) },
);
const keyArb: fc.Arbitrary<KeyRef> = fc.oneof(
  { weight: 8, arbitrary: fc.nat(20).map((i): KeyRef => ({ kind: 'generated', i })) },
  { weight: 3, arbitrary: fc.constantFrom(...IDS).map((key): KeyRef => ({ kind: 'fixed', key })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', 'garbage', 'no such key'.padEnd(64, '_')).map((key): KeyRef => ({ kind: 'fixed', key })),
  },
);

/** Merges go mostly to the newest sessions holding JSON objects. */
const mergeKeyArb: fc.Arbitrary<KeyRef> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(2).map((i): KeyRef => ({ kind: 'object', i })) },
  { weight: 1, arbitrary: keyArb },
);

const SUBJECTS = ['alice', 'bob'] as const;
const subjectArb = fc.constantFrom(...SUBJECTS);
const lifetimeArb = fc.constantFrom(undefined, 1, 2, 3600, 0, MAX_EXPIRY + 1);

/** One weighted arbitrary over all commands (fc.commands would pick them uniformly). */
export const commandArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(expiryArb, fc.option(valueArb, { nil: undefined })).map(([e, v]) => new Generate(e, v)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(expiryArb, fc.option(valueArb, { nil: undefined }), subjectArb, lifetimeArb)
      .map(([e, v, s, l]) => new Generate(e, v, s, l)),
  },
  { weight: 2, arbitrary: fc.tuple(keyArb, expiryArb).map(([k, e]) => new Touch(k, e)) },
  { weight: 1, arbitrary: fc.tuple(keyArb, fc.option(subjectArb, { nil: null })).map(([k, s]) => new SetSubject(k, s)) },
  { weight: 1, arbitrary: subjectArb.map((s) => new List(s)) },
  { weight: 1, arbitrary: fc.tuple(subjectArb, fc.option(keyArb, { nil: undefined })).map(([s, k]) => new Revoke(s, k)) },
  { weight: 2, arbitrary: keyArb.map((k) => new Rotate(k)) },
  { weight: 8, arbitrary: keyArb.map((k) => new Get(k)) },
  {
    weight: 5,
    arbitrary: fc.tuple(keyArb, valueArb, expiryArb, ifVersionArb).map(([k, v, e, i]) => new Write('set', k, v, e, i)),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(keyArb, valueArb, expiryArb, ifVersionArb).map(([k, v, e, i]) => new Write('put', k, v, e, i)),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        mergeKeyArb,
        fc.dictionary(fc.constantFrom(...FIELDS), fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null)), {
          maxKeys: 2,
        }),
        fc.subarray(FIELDS, { maxLength: 2 }),
        expiryArb,
        ifVersionArb,
      )
      .map(([k, set, unset, e, i]) => new Merge(k, set, unset, e, i)),
  },
  { weight: 2, arbitrary: keyArb.map((k) => new Clear(k)) },
  { weight: 1, arbitrary: fc.constant(new Count()) },
  { weight: 1, arbitrary: fc.constant(new DefaultPeriod()) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(1, 2, 60, 86400, 604800, MAX_EXPIRY, 0, -1, MAX_EXPIRY + 1).map((p) => new SetDefaultPeriod(p)),
  },
  { weight: 1, arbitrary: fc.constantFrom(undefined, 1, 1000).map((b) => new Purge(b)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1100 }).map((ms) => new Wait(ms)) },
);

export { Cmd };

/** The TypeScript client as the model's `Api`: `s` for the client calls, `a` for the admin calls. */
export function clientApi(s: SessionStore, a: SessionAdmin): Api {
  return {
    generate: (expiry, value, subject, lifetime) =>
      s.generate({
        ...(expiry === undefined ? {} : { expiry }),
        ...(value === undefined ? {} : { value }),
        ...(subject === undefined ? {} : { subject }),
        ...(lifetime === undefined ? {} : { lifetime }),
      }),
    get: (key) => s.get(key),
    set: (key, value, expiry, ifVersion) =>
      s.set(key, value, { ...(expiry === undefined ? {} : { expiry }), ...(ifVersion === undefined ? {} : { ifVersion }) }),
    put: (key, value, expiry, ifVersion) =>
      s.put(key, value, { ...(expiry === undefined ? {} : { expiry }), ...(ifVersion === undefined ? {} : { ifVersion }) }),
    merge: (key, set, unset, expiry, ifVersion) =>
      s.merge(
        key,
        { set, unset },
        { ...(expiry === undefined ? {} : { expiry }), ...(ifVersion === undefined ? {} : { ifVersion }) },
      ),
    touch: (key, expiry) => s.touch(key, expiry === undefined ? {} : { expiry }),
    clear: (key) => s.clear(key),
    setSubject: (key, subject) => s.setSubject(key, subject),
    list: async (subject) => (await s.list(subject)).length,
    revoke: (subject, except) => s.revoke(subject, except === undefined ? {} : { except }),
    rotate: (key) => s.rotate(key),
    count: () => s.count(),
    defaultPeriod: () => s.defaultPeriod(),
    setDefaultPeriod: (p) => a.setDefaultPeriod(p),
    purge: (batchSize) => a.purge(batchSize === undefined ? {} : { batchSize }),
  };
}

/** The SQL functions over the wire, with the documented SQLSTATEs named as the client names them. */
export function sqlApi(c: pg.Client): Api {
  const names: Record<string, string> = {
    '22023': 'invalid_parameter',
    '22001': 'value_too_large',
    '22004': 'null_value',
    SP001: 'conflict',
    SP002: 'not_object',
  };
  const q = async (text: string, values: unknown[] = []) => {
    try {
      return (await c.query({ text, values, rowMode: 'array' })).rows;
    } catch (err) {
      const state = String((err as { code?: unknown }).code);
      if (names[state] === undefined) throw err;
      throw Object.assign(new Error(`SQLSTATE ${state}`), { code: names[state] });
    }
  };
  const one = async (text: string, values: unknown[] = []) => (await q(text, values))[0]?.[0];
  return {
    generate: async (expiry, value, subject, lifetime) =>
      String(
        await one('SELECT session.session_generate($1, $2, $3, NULL, $4)', [
          expiry ?? null,
          value ?? null,
          subject ?? null,
          lifetime ?? null,
        ]),
      ),
    get: async (key) => {
      const row = (await q('SELECT value, period, version FROM session.session_get($1)', [key]))[0];
      if (row === undefined) return { ok: false, error: 'not_found' };
      return row[0] === null
        ? { ok: false, error: 'not_set' }
        : { ok: true, value: String(row[0]), period: Number(row[1]), version: Number(row[2]) };
    },
    set: async (key, value, expiry, v) =>
      (await one('SELECT session.session_set($1, $2, $3, $4)', [key, value, expiry ?? null, v ?? null])) === true,
    put: async (key, value, expiry, v) =>
      (await one('SELECT session.session_put($1, $2, $3, $4)', [key, value, expiry ?? null, v ?? null])) === true,
    merge: async (key, set, unset, expiry, v) =>
      (await one('SELECT session.session_merge($1, $2::jsonb, $3::text[], $4, $5)', [
        key,
        JSON.stringify(set),
        unset,
        expiry ?? null,
        v ?? null,
      ])) === true,
    touch: async (key, expiry) => (await one('SELECT session.session_touch($1, $2)', [key, expiry ?? null])) === true,
    clear: async (key) => {
      await q('SELECT session.session_clear($1)', [key]);
    },
    setSubject: async (key, subject) => (await one('SELECT session.session_set_subject($1, $2)', [key, subject])) === true,
    list: async (subject) => (await q('SELECT handle FROM session.session_list($1)', [subject])).length,
    revoke: async (subject, except) => Number(await one('SELECT session.session_revoke($1, $2)', [subject, except ?? null])),
    rotate: async (key) => ((await one('SELECT session.session_rotate($1)', [key])) ?? null) as string | null,
    count: async () => Number(await one('SELECT session.session_count()')),
    defaultPeriod: async () => Number(await one('SELECT session.session_default_period()')),
    setDefaultPeriod: async (p) => {
      await q('SELECT session.session_set_default_period($1)', [p]);
    },
    purge: async (b) =>
      Number(
        await one(
          b === undefined ? 'SELECT session.session_purge()' : 'SELECT session.session_purge($1)',
          b === undefined ? [] : [b],
        ),
      ),
  };
}
