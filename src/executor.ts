import pg from 'pg';
import type { Deadlines, Watch } from './deadline.js';
import { SessionError, toSessionError } from './errors.js';
import { queryWithSettings } from './pooled.js';
import { socketOf, type Connector } from './hosts.js';

const closedError = () => new SessionError('closed', 'the session store is closed');

/** Sends one single-statement query and returns its rows as arrays. */
export interface Executor {
  /** `since`: when the oldest caller behind this query made its call (performance.now()), for the deadline. */
  query(config: pg.QueryArrayConfig, since?: number): Promise<pg.QueryArrayResult>;
  close(): Promise<void>;
}

/** A pool the caller owns: we only borrow it and never end it. */
export function poolExecutor(pool: pg.Pool): Executor {
  return {
    query: (config) => pool.query(config),
    close: async () => {},
  };
}

/**
 * A few connections in `pg`'s pipeline mode. Every call of the store is one autocommit statement
 * with its own Sync, so calls can share a connection without waiting for each other's round trips;
 * that is what makes the client fast (see the README's performance section). The calls made in one
 * tick of the event loop (typically every request whose result just arrived) go to the same
 * connection, in order and in one write; the next tick's go to the next connection, round-robin.
 * Until every connection is open, calls are spread over all of them, one by one.
 * A broken connection is dropped and reopened on the next call, so the store survives restarts
 * and, with several hosts, follows a failover (see hosts.ts). With `deadlines`, a connection
 * whose oldest call is late is dropped, and its calls reject with `timeout`.
 * With `settings` (a connection through a pooler), every statement goes with pooledSettings.
 */
export class PipelineExecutor implements Executor {
  private readonly slots: (Promise<pg.Client> | undefined)[];
  /** The connected clients, so that a call on an open connection waits for nothing. */
  private readonly ready: (pg.Client | undefined)[];
  /** The calls in flight on each ready connection, when there are deadlines. */
  private readonly watches: (Watch | undefined)[];
  /** Whether the slot's socket is corked until the end of the current tick. */
  private readonly corked: boolean[];
  private next = 0;
  /** The connection of the current tick's calls, or -1 before the tick's first call. */
  private current = -1;
  private closed = false;

  constructor(
    private readonly connector: Connector,
    size: number,
    private readonly onError: (err: Error) => void,
    private readonly deadlines?: Deadlines,
    private readonly settings?: (string | null)[],
  ) {
    this.slots = new Array<Promise<pg.Client> | undefined>(size).fill(undefined);
    this.ready = new Array<pg.Client | undefined>(size).fill(undefined);
    this.watches = new Array<Watch | undefined>(size).fill(undefined);
    this.corked = new Array<boolean>(size).fill(false);
  }

  private readonly endTick = () => { this.current = -1; };

  query(config: pg.QueryArrayConfig, since?: number): Promise<pg.QueryArrayResult> {
    // A call that was queued before close() must not open a connection that nothing would close.
    if (this.closed) return Promise.reject(closedError());
    if (this.deadlines !== undefined) since ??= performance.now();
    let i = this.current;
    // Until every connection is open, calls are spread over all of them, which opens them.
    if (i < 0 || this.ready.includes(undefined)) {
      i = this.next;
      this.next = i + 1 === this.slots.length ? 0 : i + 1;
      if (this.current < 0) process.nextTick(this.endTick);
      this.current = i;
    }
    const client = this.ready[i];
    if (client !== undefined) return this.send(i, client, config, since);
    return (this.slots[i] ?? this.open(i)).then((c) => this.send(i, c, config, since));
  }

  /**
   * Every query is several protocol messages, and pg writes each query to the socket on its own.
   * Corking the socket until the end of the tick sends the tick's queries in one write: far fewer
   * system calls here, and fewer wake-ups of the server process.
   */
  private send(i: number, client: pg.Client, config: pg.QueryArrayConfig, since: number | undefined): Promise<pg.QueryArrayResult> {
    if (!this.corked[i]) {
      const stream = socketOf(client);
      if (stream?.cork !== undefined && stream.uncork !== undefined) {
        stream.cork();
        this.corked[i] = true;
        process.nextTick(() => {
          this.corked[i] = false;
          stream.uncork?.();
        });
      }
    }
    const sent = () => (this.settings === undefined ? client.query(config) : queryWithSettings(client, config, this.settings));
    const w = this.ready[i] === client ? this.watches[i] : undefined;
    if (w === undefined || since === undefined) return sent().catch((err: unknown) => this.failed(i, client, err));
    w.since.push(since);
    return sent().then(
      (r) => { w.since.shift(); return r; },
      (err: unknown) => {
        w.since.shift();
        return this.failed(i, client, w.expired ? (this.deadlines as Deadlines).error(err) : err);
      },
    );
  }

  private failed(i: number, client: pg.Client, err: unknown): never {
    // The server may report its end (57P01) before the socket closes: a call sent in between
    // would fail too, so the next call must open a new connection instead. A read-only answer
    // where writes were asked for means the host became a standby: look for the primary again.
    const code = toSessionError(err).code;
    const wrongHost = code === 'read_only' && this.connector.wantsWrites;
    if ((code === 'connection' || code === 'timeout' || wrongHost) && this.ready[i] === client) {
      this.drop(i);
      client.end().catch(() => {});
    }
    throw err;
  }

  private drop(i: number): void {
    this.slots[i] = undefined;
    this.ready[i] = undefined;
    const w = this.watches[i];
    if (w !== undefined) this.deadlines?.unwatch(w);
    this.watches[i] = undefined;
  }

  private open(i: number): Promise<pg.Client> {
    const opening = this.connector.connect(pipelined, this.deadlines?.limitMs).then(
      (client) => {
        const drop = () => { if (this.slots[i] === opening) this.drop(i); };
        // Without an 'error' listener, a server restart would crash the host process.
        client.on('error', (err) => {
          drop();
          this.onError(err);
        });
        client.on('end', drop);
        if (this.slots[i] === opening) {
          this.ready[i] = client;
          this.watches[i] = this.deadlines?.watch(() => this.deadlines?.cancelThenDrop(client));
        }
        return client;
      },
      (err: unknown) => {
        if (this.slots[i] === opening) this.drop(i);
        throw err;
      },
    );
    this.slots[i] = opening;
    return opening;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ready.fill(undefined);
    for (const w of this.watches) if (w !== undefined) this.deadlines?.unwatch(w);
    const open = this.slots.splice(0);
    await Promise.all(open.map(async (p) => {
      const client = await p?.catch(() => undefined);
      await client?.end().catch(() => undefined);
    }));
  }
}

const pipelined = { pipeline: true } as pg.ClientConfig;

/** How a {@link GetBatcher} turns keys into statements; the SQL text lives in statements.ts. */
export interface GetStatements {
  /** The single call; its rows are session_get's, `[value, period]`. */
  single(key: string): pg.QueryArrayConfig;
  /** The batch call; its rows are `[value, period, ord]` in ord order, one per element found. */
  batch(keys: string[]): pg.QueryArrayConfig;
}

interface GetCall {
  key: string;
  resolve: (row: unknown[] | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Reads in bulk. Under load most of a get's cost is the statement around it (its protocol
 * messages on both sides, the function call, the snapshot), so the gets made in one event-loop turn
 * (typically the requests whose previous results just arrived) go as one call of
 * `session.session_get_batch`, in two parts or more on the connections in turn when there are many,
 * so that two server processes share them. A lone get is sent as the single call, as before. Reads change
 * nothing, so a batch that cannot be called (a database before 009, or a role not granted it) is
 * sent again as single calls, and for a minute gets go one by one; a batch that a proxy failed
 * because one of its partitions is unreachable is sent again as single calls too.
 */
export class GetBatcher {
  private pending: GetCall[] = [];
  private readonly singles = new SinglesForAWhile();

  constructor(private readonly executor: Executor, private readonly statements: GetStatements) {}

  /** Resolves session_get's row for the key (`[value, period]` first), or undefined when it has none. */
  get(key: string): Promise<unknown[] | undefined> {
    return new Promise((resolve, reject) => {
      // process.nextTick runs once the promise jobs of this turn have run, so every caller woken by
      // the same results has made its call by then.
      if (this.pending.push({ key, resolve, reject }) === 1) process.nextTick(this.flush);
    });
  }

  private readonly flush = () => {
    const calls = this.pending;
    this.pending = [];
    if (calls.length === 1 || this.singles.active()) {
      for (const call of calls) this.single(call);
      return;
    }
    // At most MAX_GETS keys per statement; from SPLIT_GETS_AT on, at least two statements.
    const parts = calls.length < SPLIT_GETS_AT ? 1 : Math.max(2, Math.ceil(calls.length / MAX_GETS));
    const size = Math.ceil(calls.length / parts);
    this.batch(calls.slice(0, size));
    for (let i = size; i < calls.length; i += size) {
      const part = calls.slice(i, i + size);
      // A later tick: the pipelined connections take one tick's calls each, in turn.
      process.nextTick(() => this.batch(part));
    }
  };

  private single(call: GetCall): void {
    this.executor.query(this.statements.single(call.key)).then((r) => call.resolve(r.rows[0]), call.reject);
  }

  private batch(calls: GetCall[]): void {
    this.executor.query(this.statements.batch(calls.map((c) => c.key))).then((r) => {
      let j = 0;
      calls.forEach((call, i) => {
        const row = r.rows[j];
        if (row !== undefined && row[2] === i + 1) {
          j += 1;
          call.resolve(row);
        } else {
          call.resolve(undefined);
        }
      });
    }, (err: unknown) => {
      // Through a PL/Proxy proxy, one partition that cannot be reached fails the whole call
      // (08006): asked one by one, the keys of the other partitions are answered.
      if (this.singles.trip(err) || sqlStateOf(err) === '08006') {
        for (const call of calls) this.single(call);
        return;
      }
      for (const call of calls) call.reject(err);
    });
  }
}

/** The smallest number of gets in one turn that go as two statements on two connections. */
const SPLIT_GETS_AT = 16;
/** The most keys in one call of session_get_batch. */
const MAX_GETS = 256;

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
  constructor(readonly code: string, message: string) {
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
    const first = this.pending[0] as WriteCall;
    if (first.kind === undefined || this.singles.active()) return this.pending.splice(0, 1);
    let n = 1;
    let bytes = size(first);
    for (; n < this.pending.length && n < this.limits.calls; n += 1) {
      const next = this.pending[n] as WriteCall;
      bytes += size(next);
      if (next.kind === undefined || bytes > this.limits.bytes) break;
    }
    return this.pending.splice(0, n);
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

/** SQLSTATEs of a batch statement that never ran: function missing (42883, 3F000), not granted (42501). */
const unbatchable = new Set(['42883', '3F000', '42501']);
/** The SQLSTATE pg puts on a server's error ('undefined' for other errors). */
const sqlStateOf = (err: unknown): string => String((err as { code?: unknown }).code);

/** After a batch statement that never ran, single calls only for a minute, then batches again. */
class SinglesForAWhile {
  private until = 0;

  active(): boolean {
    return this.until !== 0 && Date.now() < this.until;
  }

  /** Whether `err` says the batch statement never ran (so sending its calls again is safe); if so, starts the minute. */
  trip(err: unknown): boolean {
    if (!unbatchable.has(sqlStateOf(err))) return false;
    this.until = Date.now() + 60_000;
    return true;
  }
}

/** The text a call puts on the wire, in UTF-16 units: close enough to bound a batch's size. */
const size = (call: WriteCall) => (call.key?.length ?? 0) + (call.value?.length ?? 0)
  + (call.unset?.reduce((n, field) => n + field.length + 3, 0) ?? 0);
