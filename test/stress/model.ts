// An in-memory model of ocaml-session's semantics (plus session_put, count and purge), and the
// fast-check commands that drive the same random sequences through any implementation of `Api`:
// the TypeScript client, or the SQL functions called directly.
//
// Real time passes while a sequence runs, and the database's clock decides expiry. The model keeps,
// for every session, the earliest and latest instants (on this process's monotonic clock) at which
// it can expire, derived from when the writing call started and ended. A call whose own start/end
// bracket lies entirely before or after that window has one right answer; inside it, both answers
// are accepted, and the answer narrows the window. Periods are checked against the same brackets.
import assert from 'node:assert/strict';
import fc from 'fast-check';

/** The store's API, as the model sees it. Errors are thrown as `{ code }` (SessionError codes). */
export interface Api {
  generate(expiry: number | undefined, value: string | undefined): Promise<string>;
  get(key: string): Promise<{ ok: true; value: string; period: number } | { ok: false; error: 'not_found' | 'not_set' }>;
  set(key: string, value: string, expiry: number | undefined): Promise<boolean>;
  put(key: string, value: string, expiry: number | undefined): Promise<boolean>;
  clear(key: string): Promise<void>;
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
}

export class Model {
  /** Keys handed out by generate, in order; commands refer to them by index. */
  readonly keys: string[] = [];
  /** Rows in the table (expired or not), by key: what clear and purge remove. */
  readonly rows = new Map<string, Entry>();
  defaultPeriod = 604800;
  calls = 0;
  /** Reads and writes that met a session which had expired by the database clock. */
  expiredHits = 0;
  /** Calls made while a session was within the clock tolerance of its expiry (either answer accepted). */
  ambiguous = 0;
}

type Status = 'live' | 'expired' | 'unknown';
function status(e: Entry, t0: number, t1: number): Status {
  if (e.hi <= t0) return 'expired';
  if (e.lo > t1) return 'live';
  return 'unknown';
}

/** The expiry window of a write made during [t0, t1] with `expiry` seconds (or the default). */
function window(m: Model, expiry: number | undefined, t0: number, t1: number): { lo: number; hi: number } {
  const s = expiry ?? m.defaultPeriod;
  // Born expired: every later call starts after this one's transaction, on a later clock reading.
  if (s <= 0) return { lo: -Infinity, hi: -Infinity };
  return { lo: t0 + s * 1000 - SLACK_MS, hi: t1 + s * 1000 + SLACK_MS };
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

const show = (v: string | undefined) => (v === undefined ? 'undefined' : v.length > 24 ? `<${v.length} chars>` : JSON.stringify(v));

type KeyRef = { kind: 'generated'; i: number } | { kind: 'fixed'; key: string };
function resolve(m: Model, ref: KeyRef): string {
  if (ref.kind === 'fixed') return ref.key;
  return m.keys.length === 0 ? 'no-key-generated-yet' : (m.keys[ref.i % m.keys.length] as string);
}
const showRef = (ref: KeyRef) => (ref.kind === 'fixed' ? show(ref.key) : `key#${ref.i}`);

abstract class Cmd implements fc.AsyncCommand<Model, Real, false> {
  check(): boolean {
    return true;
  }
  abstract run(m: Model, r: Real): Promise<void>;
  abstract toString(): string;
}

class Generate extends Cmd {
  constructor(readonly expiry: number | undefined, readonly value: string | undefined) { super(); }
  async run(m: Model, real: Real) {
    const { r, t0, t1 } = await timed(m, () => real.api.generate(this.expiry, this.value));
    const error = writeError(this.value, this.expiry);
    if (error !== undefined) return expectError(r, error, this.toString());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    assert.match(r.v, /^[A-Za-z0-9_-]{64}$/);
    assert.ok(!m.rows.has(r.v) && !m.keys.includes(r.v), 'a key was handed out twice');
    m.keys.push(r.v);
    m.rows.set(r.v, { value: this.value ?? null, ...window(m, this.expiry, t0, t1) });
  }
  toString() { return `generate(${this.expiry}, ${show(this.value)})`; }
}

class Get extends Cmd {
  constructor(readonly ref: KeyRef) { super(); }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r, t0, t1 } = await timed(m, () => real.api.get(key));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const e = m.rows.get(key);
    const st = e === undefined ? 'expired' : status(e, t0, t1);
    if (e !== undefined && st !== 'live') m[st === 'expired' ? 'expiredHits' : 'ambiguous'] += 1;
    if (e === undefined || st === 'expired' || (st === 'unknown' && !r.v.ok && r.v.error === 'not_found')) {
      assert.deepEqual(r.v, { ok: false, error: 'not_found' }, `${this}: ${st}`);
      if (e !== undefined) e.hi = Math.min(e.hi, t1);
      return;
    }
    e.lo = Math.max(e.lo, t0);
    if (e.value === null) return assert.deepEqual(r.v, { ok: false, error: 'not_set' }, this.toString());
    assert.ok(r.v.ok, `${this}: expected the value, got ${JSON.stringify(r.v)}`);
    assert.ok(r.v.value === e.value, `${this}: wrong value ${show(r.v.value)}, expected ${show(e.value)}`);
    const min = Math.max(0, Math.floor((e.lo - t1) / 1000));
    const max = Math.floor((e.hi - t0) / 1000);
    assert.ok(Number.isInteger(r.v.period) && r.v.period >= min && r.v.period <= max, `${this}: period ${r.v.period} not in [${min}, ${max}]`);
  }
  toString() { return `get(${showRef(this.ref)})`; }
}

class Write extends Cmd {
  constructor(readonly fn: 'set' | 'put', readonly ref: KeyRef, readonly value: string, readonly expiry: number | undefined) { super(); }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r, t0, t1 } = await timed(m, () => real.api[this.fn](key, this.value, this.expiry));
    if (this.fn === 'put' && !putKeyOk(key)) return expectError(r, 'invalid_parameter', this.toString());
    const error = writeError(this.value, this.expiry);
    if (error !== undefined) return expectError(r, error, this.toString());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    const e = m.rows.get(key);
    // set: only a live session is updated. put: also creates when there is no row at all.
    const st = e === undefined ? (this.fn === 'put' ? 'live' : 'expired') : status(e, t0, t1);
    if (e !== undefined && st !== 'live') m[st === 'expired' ? 'expiredHits' : 'ambiguous'] += 1;
    if (st !== 'unknown') assert.equal(r.v, st === 'live', `${this}: ${st}`);
    if (r.v) m.rows.set(key, { value: this.value, ...window(m, this.expiry, t0, t1) });
    else if (e !== undefined) e.hi = Math.min(e.hi, t1);
  }
  toString() { return `${this.fn}(${showRef(this.ref)}, ${show(this.value)}, ${this.expiry})`; }
}

class Clear extends Cmd {
  constructor(readonly ref: KeyRef) { super(); }
  async run(m: Model, real: Real) {
    const key = resolve(m, this.ref);
    const { r } = await timed(m, () => real.api.clear(key));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    m.rows.delete(key);
  }
  toString() { return `clear(${showRef(this.ref)})`; }
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
  toString() { return 'count()'; }
}

class DefaultPeriod extends Cmd {
  async run(m: Model, real: Real) {
    const { r } = await timed(m, () => real.api.defaultPeriod());
    assert.deepEqual(r, { ok: true, v: m.defaultPeriod }, this.toString());
  }
  toString() { return 'defaultPeriod()'; }
}

class SetDefaultPeriod extends Cmd {
  constructor(readonly period: number) { super(); }
  async run(m: Model, real: Real) {
    const { r } = await timed(m, () => real.api.setDefaultPeriod(this.period));
    if (this.period < 1 || this.period > MAX_EXPIRY) return expectError(r, 'invalid_parameter', this.toString());
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    m.defaultPeriod = this.period;
  }
  toString() { return `setDefaultPeriod(${this.period})`; }
}

class Purge extends Cmd {
  constructor(readonly batchSize: number | undefined) { super(); }
  async run(m: Model, real: Real) {
    const { r, t0, t1 } = await timed(m, () => real.api.purge(this.batchSize));
    assert.ok(r.ok, `${this}: ${JSON.stringify(r)}`);
    // The model's tables are tiny (one block range), so one call sweeps them whole, whatever the batch.
    const expired = [...m.rows].filter(([, e]) => status(e, t0, t1) === 'expired').map(([k]) => k);
    const unknown = [...m.rows].filter(([, e]) => status(e, t0, t1) === 'unknown').map(([k]) => k);
    assert.ok(r.v >= expired.length && r.v <= expired.length + unknown.length,
      `purge deleted ${r.v}, expected [${expired.length}, ${expired.length + unknown.length}]`);
    for (const k of expired) m.rows.delete(k);
    if (unknown.length > 0) {
      const left = await real.present(unknown);
      for (const k of unknown) if (!left.has(k)) m.rows.delete(k);
      assert.equal(unknown.length - left.size, r.v - expired.length, 'purge count and rows left disagree');
    }
  }
  toString() { return `purge(${this.batchSize})`; }
}

class Wait extends Cmd {
  constructor(readonly ms: number) { super(); }
  async run() { await new Promise((resolve) => setTimeout(resolve, this.ms)); }
  toString() { return `wait(${this.ms}ms)`; }
}

// ---- arbitraries ----
const IDS = ['I'.repeat(32), 'framework-id_0123456789abcdefghij', 'A'.repeat(64)];
const expiryArb = fc.constantFrom(undefined, undefined, -MAX_EXPIRY, -1, 0, 1, 1, 2, 60, 3600, 604800, MAX_EXPIRY, MAX_EXPIRY + 1, -MAX_EXPIRY - 1);
const big = {
  at: 'x'.repeat(MAX_VALUE_BYTES),
  over: 'x'.repeat(MAX_VALUE_BYTES + 1),
  atTwoByte: 'é'.repeat(MAX_VALUE_BYTES / 2),
  overTwoByte: 'é'.repeat(MAX_VALUE_BYTES / 2 + 1),
  medium: '😀'.repeat(25_000),
};
const valueArb = fc.oneof(
  { weight: 12, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }).filter((s) => !s.includes('\u0000')) },
  { weight: 3, arbitrary: fc.constantFrom('', 'v', 'é€😀\u{10FFFF}', "'; --", '%_\\') },
  { weight: 1, arbitrary: fc.constantFrom(big.at, big.over, big.atTwoByte, big.overTwoByte, big.medium) },
);
const keyArb: fc.Arbitrary<KeyRef> = fc.oneof(
  { weight: 8, arbitrary: fc.nat(20).map((i): KeyRef => ({ kind: 'generated', i })) },
  { weight: 3, arbitrary: fc.constantFrom(...IDS).map((key): KeyRef => ({ kind: 'fixed', key })) },
  { weight: 1, arbitrary: fc.constantFrom('', 'garbage', 'no such key'.padEnd(64, '_')).map((key): KeyRef => ({ kind: 'fixed', key })) },
);

/** One weighted arbitrary over all commands (fc.commands would pick them uniformly). */
export const commandArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(expiryArb, fc.option(valueArb, { nil: undefined })).map(([e, v]) => new Generate(e, v)) },
  { weight: 8, arbitrary: keyArb.map((k) => new Get(k)) },
  { weight: 5, arbitrary: fc.tuple(keyArb, valueArb, expiryArb).map(([k, v, e]) => new Write('set', k, v, e)) },
  { weight: 3, arbitrary: fc.tuple(keyArb, valueArb, expiryArb).map(([k, v, e]) => new Write('put', k, v, e)) },
  { weight: 2, arbitrary: keyArb.map((k) => new Clear(k)) },
  { weight: 1, arbitrary: fc.constant(new Count()) },
  { weight: 1, arbitrary: fc.constant(new DefaultPeriod()) },
  { weight: 1, arbitrary: fc.constantFrom(1, 2, 60, 86400, 604800, MAX_EXPIRY, 0, -1, MAX_EXPIRY + 1).map((p) => new SetDefaultPeriod(p)) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, 1, 1000).map((b) => new Purge(b)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1100 }).map((ms) => new Wait(ms)) },
);

export { Cmd };
