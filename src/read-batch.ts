import type pg from 'pg';
import { SinglesForAWhile, sqlStateOf } from './batch-fallback.js';
import type { Executor } from './pipeline.js';

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

  constructor(
    private readonly executor: Executor,
    private readonly statements: GetStatements,
  ) {}

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
    const size = getBatchSize(calls.length);
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
    this.executor.query(this.statements.batch(calls.map((c) => c.key))).then(
      (r) => {
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
      },
      (err: unknown) => {
        // Through a PL/Proxy proxy, one partition that cannot be reached fails the whole call
        // (08006): asked one by one, the keys of the other partitions are answered.
        if (this.singles.trip(err) || sqlStateOf(err) === '08006') {
          for (const call of calls) this.single(call);
          return;
        }
        for (const call of calls) call.reject(err);
      },
    );
  }
}

/** The smallest number of gets in one turn that go as two statements on two connections. */
const SPLIT_GETS_AT = 16;
/** The most keys in one call of session_get_batch. */
const MAX_GETS = 256;

/**
 * How many keys go in each statement when `n` gets (n ≥ 2) were made in one turn; the last part
 * may be shorter. At most MAX_GETS keys per statement; from SPLIT_GETS_AT on, at least two
 * statements, so that two server processes share the work.
 */
export function getBatchSize(n: number): number {
  const parts = n < SPLIT_GETS_AT ? 1 : Math.max(2, Math.ceil(n / MAX_GETS));
  return Math.ceil(n / parts);
}
