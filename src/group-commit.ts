import type pg from 'pg';
import { SinglesForAWhile } from './batch-fallback.js';
import { closedError, type Executor } from './pipeline.js';

/** The writes a {@link WriteQueue} can batch: one element kind of `session.session_write_batch`. */
export type WriteKind = 'generate' | 'set' | 'touch' | 'put' | 'merge' | 'clear';

/** One write call: its arguments as sent to SQL, and its caller's promise. */
export interface WriteCall {
  /** Undefined for a write that is never batched (an admin call): `config` is sent as is. */
  kind: WriteKind | undefined;
  config?: pg.QueryArrayConfig | undefined;
  key: string | null;
  value: string | null;
  expiry: string | null;
  /** The version a set, put or merge requires (NULL or absent: unconditional). */
  ifVersion?: string | null;
  /** A merge's fields to remove; its fields to set are `value`, a JSON object. */
  unset?: string[];
  /** When the call was made (performance.now()), set by a queue with deadlines. */
  since?: number;
  /** Resolved with the first column of the single call's row (generate: the key; set/touch/put: the boolean). */
  resolve: (result: unknown) => void;
  reject: (err: unknown) => void;
}

/** How a {@link WriteQueue} turns calls into statements; the SQL text lives in statements.ts. */
export interface WriteStatements {
  single(call: WriteCall): pg.QueryArrayConfig;
  /** The batch call; its rows are `[ord, sqlstate, message, ok, key]`, one per element. */
  batch(calls: WriteCall[]): pg.QueryArrayConfig;
}

/** A per-element failure reported by the batch function, shaped like a driver error for toSessionError. */
class ElementError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Group commit. Each commit waits for its WAL flush, and a connection commits its statements one
 * after another; so every lane (a write connection, or a pool) has at most one write statement in
 * flight, and the calls that arrive meanwhile go together, as one call of
 * `session.session_write_batch`: one transaction and one flush for all of them. When nothing is in
 * flight a call is sent at once as its own single call, so an idle store is as fast as before, and
 * batches grow with the load by themselves. Every caller gets its own result or error; an error of
 * the whole statement (connection lost, timeout) rejects each caller of that batch, and nothing is
 * ever sent again on its behalf: a generate whose commit is in doubt must not create a second key.
 */
export class WriteQueue {
  private readonly pending: WriteCall[] = [];
  private readonly idle: Executor[];
  private readonly running = new Set<Promise<void>>();
  private scheduled = false;
  private closed = false;
  /** Writes go one by one for a while after the batch function could not be called. */
  private readonly singles = new SinglesForAWhile();

  constructor(
    private readonly lanes: Executor[],
    private readonly statements: WriteStatements,
    private readonly limits: { calls: number; bytes: number },
    /** Whether the lanes have deadlines, which count from when each call was made. */
    private readonly timed = false,
  ) {
    this.idle = [...lanes];
  }

  /** Queues a call; `call.resolve`/`call.reject` settle it after its transaction ended. */
  submit(call: WriteCall): void {
    if (this.closed) {
      call.reject(closedError());
      return;
    }
    if (this.timed) call.since = performance.now();
    this.pending.push(call);
    // A microtask, not a later tick: calls made in the same turn share a batch, and none waits for I/O.
    if (!this.scheduled && this.idle.length > 0) {
      this.scheduled = true;
      queueMicrotask(this.pump);
    }
  }

  private readonly pump = () => {
    this.scheduled = false;
    while (this.pending.length > 0 && this.idle.length > 0) {
      const calls = this.take();
      // Pipelining: with a second lane idle, a big batch goes in two halves. The halves' commits
      // flush one after the other, so from then on one half executes while the other's commit is
      // flushed, and the lanes stay out of step. A batch too small to take as long to execute as a
      // flush gains nothing from it and pays a second flush.
      const parts = this.idle.length > 1 && calls.length >= SPLIT_AT ? halves(calls) : [calls];
      for (const part of parts.filter((p) => p.length > 0)) {
        const run = this.run(this.idle.pop() as Executor, part);
        this.running.add(run);
        void run.finally(() => this.running.delete(run));
      }
    }
  };

  /** The next batch: at least one call, at most `limits.calls` calls and about `limits.bytes` of text. */
  private take(): WriteCall[] {
    return this.pending.splice(0, this.singles.active() ? 1 : batchLength(this.pending, this.limits));
  }

  private async run(lane: Executor, calls: WriteCall[]): Promise<void> {
    try {
      if (calls.length === 1) {
        const call = calls[0] as WriteCall;
        try {
          call.resolve((await lane.query(this.statements.single(call), call.since)).rows[0]?.[0]);
        } catch (err) {
          call.reject(err);
        }
      } else {
        await this.runBatch(lane, calls);
      }
    } finally {
      this.idle.push(lane);
      // The callers just settled make their next calls in the coming microtasks: waiting for them
      // (setImmediate runs once those have run) keeps them in one batch, rather than sending a
      // call queued earlier alone and theirs after the next commit.
      if (this.pending.length > 0 && !this.scheduled) {
        this.scheduled = true;
        setImmediate(this.pump);
      }
    }
  }

  private async runBatch(lane: Executor, calls: WriteCall[]): Promise<void> {
    let rows: unknown[][];
    try {
      rows = (await lane.query(this.statements.batch(calls), calls[0]?.since)).rows;
    } catch (err) {
      // No session_write_batch (a database not migrated to 004 yet) or no right to call it: the
      // statement failed before running, so nothing was written and sending the calls again is
      // safe. They go one by one as single calls, as before 004, and batches are tried again later.
      if (!this.closed && this.singles.trip(err)) {
        this.pending.unshift(...calls);
        return;
      }
      for (const call of calls) call.reject(err);
      return;
    }
    if (rows.length !== calls.length) {
      const err = new Error(`session_write_batch returned ${rows.length} rows for ${calls.length} calls`);
      for (const call of calls) call.reject(err);
      return;
    }
    const busy: WriteCall[] = [];
    for (const row of rows) {
      const [ord, sqlstate, message, ok, key] = row as [number, string | null, string | null, boolean | null, string | null];
      const call = calls[ord - 1] as WriteCall;
      if (sqlstate === null) call.resolve(call.kind === 'generate' ? key : ok);
      // Another transaction holds the row: nothing was written; send it again, ahead of newer calls.
      else if (sqlstate === '55P03' && !this.closed) busy.push(call);
      else call.reject(new ElementError(sqlstate, message ?? 'session write failed'));
    }
    this.pending.unshift(...busy);
  }

  /** Rejects the calls not sent yet, waits for those in flight, then closes the lanes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const call of this.pending.splice(0)) call.reject(closedError());
    await Promise.all([...this.running]);
    await Promise.all(this.lanes.map((lane) => lane.close()));
  }
}

/** The smallest batch that two idle lanes share (see the pump). */
const SPLIT_AT = 24;

/**
 * A batch in two halves by position, except that every call of a key goes with its key's first
 * call: calls of one key stay in call order within one transaction.
 */
export function halves(calls: WriteCall[]): [WriteCall[], WriteCall[]] {
  const first: WriteCall[] = [];
  const second: WriteCall[] = [];
  const inFirst = new Map<string, boolean>();
  calls.forEach((call, i) => {
    let toFirst = i < calls.length / 2;
    if (call.key !== null) {
      toFirst = inFirst.get(call.key) ?? toFirst;
      inFirst.set(call.key, toFirst);
    }
    (toFirst ? first : second).push(call);
  });
  return [first, second];
}

/** The text a call puts on the wire, in UTF-16 units: close enough to bound a batch's size. */
const size = (call: WriteCall) =>
  (call.key?.length ?? 0) + (call.value?.length ?? 0) + (call.unset?.reduce((n, field) => n + field.length + 3, 0) ?? 0);

/**
 * How many of the queued calls (at least one) go in the next batch: at most `limits.calls`, and
 * about `limits.bytes` of text. A call that is never batched (`kind` undefined) goes alone.
 */
export function batchLength(pending: readonly WriteCall[], limits: { calls: number; bytes: number }): number {
  const first = pending[0];
  if (first === undefined || first.kind === undefined) return 1;
  let n = 1;
  let bytes = size(first);
  for (; n < pending.length && n < limits.calls; n += 1) {
    const next = pending[n] as WriteCall;
    bytes += size(next);
    if (next.kind === undefined || bytes > limits.bytes) break;
  }
  return n;
}
