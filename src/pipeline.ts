// The connections of a store: a few in pg's pipeline mode, or a pool the caller owns. The batching
// on top of them lives in read-batch.ts (reads) and group-commit.ts (writes).
import type pg from 'pg';
import type { Deadlines, Watch } from './deadline.js';
import { SessionError, toSessionError } from './errors.js';
import { queryWithSettings } from './pooled.js';
import { socketOf, type Connector } from './hosts.js';

/** What a call made on a closed store, or queued when it closed, rejects with. */
export const closedError = () => new SessionError('closed', 'the session store is closed');

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

  private readonly endTick = () => {
    this.current = -1;
  };

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
  private send(
    i: number,
    client: pg.Client,
    config: pg.QueryArrayConfig,
    since: number | undefined,
  ): Promise<pg.QueryArrayResult> {
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
      (r) => {
        w.since.shift();
        return r;
      },
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
        const drop = () => {
          if (this.slots[i] === opening) this.drop(i);
        };
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
    await Promise.all(
      open.map(async (p) => {
        const client = await p?.catch(() => undefined);
        await client?.end().catch(() => undefined);
      }),
    );
  }
}

const pipelined = { pipeline: true } as pg.ClientConfig;
