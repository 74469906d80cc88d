// What a client store and an admin store share: how a call reaches PostgreSQL (reads on the
// pipelined connections, writes through group commit), and the calls both SQL roles may make.
import pg from 'pg';
import { connector, pooledSettingValues } from './connection.js';
import { Deadlines } from './deadline.js';
import { positive } from './checks.js';
import { toSessionError } from './errors.js';
import { WriteQueue, type WriteCall, type WriteKind, type WriteStatements } from './group-commit.js';
import { closedError, PipelineExecutor, poolExecutor, type Executor } from './pipeline.js';
import { GetBatcher, type GetStatements } from './read-batch.js';
import { statements } from './statements.js';
import type { StoreOptions } from './store.js';

// int8 arrives as text in pg; parse it here, per query, rather than changing pg's global parsers.
// Every int8 the API returns is bounded well below 2^53.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * pg copies every query config it is given, own property by own property (a slow path in V8), and
 * keeps its prototype. So the constant fields live in one prototype per statement, and each call's
 * config owns only its values: about a quarter less client CPU per call.
 */
const templates = new Map<object, object>();
export function queryConfig(statement: { name: string; text: string }, values: unknown[]): pg.QueryArrayConfig {
  let template = templates.get(statement);
  if (template === undefined) {
    template = { ...statement, rowMode: 'array', types };
    templates.set(statement, template);
  }
  const config = Object.create(template) as { values: unknown[] };
  config.values = values;
  return config as pg.QueryArrayConfig;
}

/** A batch element's arguments, or (`kind` undefined) the config of a write always sent alone. */
export type WriteArgs = Omit<WriteCall, 'resolve' | 'reject'>;

/** A merge as a batch element's value: the JSON object session_write_batch takes. */
const mergeElement = (c: WriteArgs) => `{"set":${c.value ?? '{}'},"unset":${JSON.stringify(c.unset ?? [])}}`;

/** The single call each kind of write stands for, with its arguments in the order it takes them. */
const singles: Record<WriteKind, (c: WriteArgs) => pg.QueryArrayConfig> = {
  generate: (c) => queryConfig(statements.generate, [c.expiry, c.value]),
  set: (c) => queryConfig(statements.set, [c.key, c.value, c.expiry, c.ifVersion ?? null]),
  touch: (c) => queryConfig(statements.touch, [c.key, c.expiry]),
  put: (c) => queryConfig(statements.put, [c.key, c.value, c.expiry, c.ifVersion ?? null]),
  merge: (c) => queryConfig(statements.merge, [c.key, c.value, c.unset ?? [], c.expiry, c.ifVersion ?? null]),
  clear: (c) => queryConfig(statements.clear, [c.key]),
};

const writeStatements: WriteStatements = {
  single: (c) => (c.kind === undefined ? (c.config as pg.QueryArrayConfig) : singles[c.kind](c)),
  batch: (calls) =>
    queryConfig(statements.writeBatch, [
      calls.map((c) => c.kind as string),
      calls.map((c) => c.key),
      calls.map((c) => (c.kind === 'merge' ? mergeElement(c) : c.value)),
      calls.map((c) => c.expiry),
      calls.some((c) => c.ifVersion != null) ? calls.map((c) => c.ifVersion ?? null) : null,
    ]),
};

const getStatements: GetStatements = {
  single: (key) => queryConfig(statements.get, [key]),
  batch: (keys) => queryConfig(statements.getBatch, [keys]),
};

/** The connections, queues and calls of a store; {@link openStore} makes one. */
export class StoreBase {
  protected closed = false;

  protected readonly gets: GetBatcher;

  constructor(
    private readonly executor: Executor,
    private readonly writes: WriteQueue,
    private readonly deadlines?: Deadlines,
  ) {
    this.gets = new GetBatcher(executor, getStatements);
  }

  /** A write: through the group-commit queue, so that it shares its transaction under load. */
  protected write(args: WriteArgs): Promise<unknown> {
    if (this.closed) return Promise.reject(closedError());
    return new Promise<unknown>((resolve, reject) => {
      this.writes.submit({ ...args, resolve, reject: (err) => reject(toSessionError(err)) });
    });
  }

  /**
   * A write that is never batched (the admin calls, and the per-subject calls): through the same lanes,
   * alone, so that reads never queue behind it either. Resolves the first column of the first row.
   */
  protected writeAlone(config: pg.QueryArrayConfig): Promise<unknown> {
    return this.write({ kind: undefined, key: null, value: null, expiry: null, config });
  }

  protected async run(statement: { name: string; text: string }, values: unknown[]): Promise<unknown[][]> {
    return (await this.read(() => this.executor.query(queryConfig(statement, values)))).rows;
  }

  /** A read: refused once the store is closed; its errors as SessionErrors. */
  protected async read<T>(send: () => Promise<T>): Promise<T> {
    if (this.closed) throw closedError();
    try {
      return await send();
    } catch (err) {
      throw toSessionError(err);
    }
  }

  async count(): Promise<number> {
    return (await this.run(statements.count, []))[0]?.[0] as number;
  }

  async defaultPeriod(): Promise<number> {
    return (await this.run(statements.defaultPeriod, []))[0]?.[0] as number;
  }

  async absoluteLifetime(): Promise<number | null> {
    return ((await this.run(statements.absoluteLifetime, []))[0]?.[0] ?? null) as number | null;
  }

  async close(): Promise<void> {
    this.closed = true;
    // Writes first: with `pooled`, they share the executor's connections.
    await this.writes.close();
    await this.executor.close();
    this.deadlines?.close();
  }
}

/** What a store class is made from: its connections and its write queue. */
export type StoreKind<T> = new (executor: Executor, writes: WriteQueue, deadlines?: Deadlines) => T;

/**
 * Opens the connections and queues `options` ask for, as a store of class `Kind`. Connecting is
 * lazy. Throws `invalid_argument` (see {@link connect}).
 */
export function openStore<T>(Kind: StoreKind<T>, options: StoreOptions): T {
  const size = positive('connections', options.connections, 2);
  const lanes = positive('writeConnections', options.writeConnections, 2);
  const limits = { calls: positive('maxBatchCalls', options.maxBatchCalls, 256), bytes: 1 << 20 };
  const queue = (lane: () => Executor, timed?: boolean) =>
    new WriteQueue(Array.from({ length: lanes }, lane), writeStatements, limits, timed);
  const { pool } = options;
  if (pool !== undefined)
    return new Kind(
      poolExecutor(pool),
      queue(() => poolExecutor(pool)),
    );
  const onError = options.onError ?? (() => {});
  const hosts = connector(options);
  const report = (err: Error) => onError(toSessionError(err));
  const timeout = options.statementTimeoutMs;
  const deadlines = timeout === undefined ? undefined : new Deadlines(timeout);
  const timed = deadlines !== undefined;
  if (options.pooled === true) {
    // Every connection of a store holds a server connection in session pooling, and while it has
    // statements in flight in transaction pooling: one connection per store unless asked for more.
    const shared = new PipelineExecutor(
      hosts,
      positive('connections', options.connections, 1),
      report,
      deadlines,
      pooledSettingValues(options),
    );
    return new Kind(
      shared,
      queue(() => shared, timed),
      deadlines,
    );
  }
  return new Kind(
    new PipelineExecutor(hosts, size, report, deadlines),
    queue(() => new PipelineExecutor(hosts, 1, report, deadlines), timed),
    deadlines,
  );
}
