import type { Writable } from 'node:stream';
import pg from 'pg';

/** Sends one single-statement query and returns its rows as arrays. */
export interface Executor {
  query(config: pg.QueryArrayConfig): Promise<pg.QueryArrayResult>;
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
 * A broken connection is dropped and reopened on the next call, so the store survives restarts.
 */
export class PipelineExecutor implements Executor {
  private readonly slots: (Promise<pg.Client> | undefined)[];
  /** The connected clients, so that a call on an open connection waits for nothing. */
  private readonly ready: (pg.Client | undefined)[];
  /** Whether the slot's socket is corked until the end of the current tick. */
  private readonly corked: boolean[];
  private next = 0;
  /** The connection of the current tick's calls, or -1 before the tick's first call. */
  private current = -1;
  private closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    size: number,
    private readonly onError: (err: Error) => void,
  ) {
    this.slots = new Array<Promise<pg.Client> | undefined>(size).fill(undefined);
    this.ready = new Array<pg.Client | undefined>(size).fill(undefined);
    this.corked = new Array<boolean>(size).fill(false);
  }

  private readonly endTick = () => { this.current = -1; };

  query(config: pg.QueryArrayConfig): Promise<pg.QueryArrayResult> {
    let i = this.current;
    // Until every connection is open, calls are spread over all of them, which opens them.
    if (i < 0 || this.ready.includes(undefined)) {
      i = this.next;
      this.next = i + 1 === this.slots.length ? 0 : i + 1;
      if (this.current < 0) process.nextTick(this.endTick);
      this.current = i;
    }
    const client = this.ready[i];
    if (client !== undefined) return this.send(i, client, config);
    return (this.slots[i] ?? this.open(i)).then((c) => this.send(i, c, config));
  }

  /**
   * Every query is several protocol messages, and pg writes each query to the socket on its own.
   * Corking the socket until the end of the tick sends the tick's queries in one write: far fewer
   * system calls here, and fewer wake-ups of the server process.
   */
  private send(i: number, client: pg.Client, config: pg.QueryArrayConfig): Promise<pg.QueryArrayResult> {
    if (!this.corked[i]) {
      const stream = (client as unknown as { connection?: { stream?: Partial<Writable> } }).connection?.stream;
      if (stream?.cork !== undefined && stream.uncork !== undefined) {
        stream.cork();
        this.corked[i] = true;
        process.nextTick(() => {
          this.corked[i] = false;
          stream.uncork?.();
        });
      }
    }
    return client.query(config);
  }

  private open(i: number): Promise<pg.Client> {
    const client = new pg.Client({ ...this.config, pipeline: true } as pg.ClientConfig);
    const drop = () => {
      if (this.slots[i] === opening) {
        this.slots[i] = undefined;
        this.ready[i] = undefined;
      }
    };
    // Without an 'error' listener, a server restart would crash the host process.
    client.on('error', (err) => {
      drop();
      this.onError(err);
    });
    client.on('end', drop);
    const opening = client.connect().then(
      () => {
        if (this.slots[i] === opening) this.ready[i] = client;
        return client;
      },
      (err: unknown) => {
        drop();
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
    const open = this.slots.splice(0);
    await Promise.all(open.map(async (p) => {
      const client = await p?.catch(() => undefined);
      await client?.end().catch(() => undefined);
    }));
  }
}
