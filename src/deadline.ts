import { connect as tcpConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type pg from 'pg';
import { SessionError } from './errors.js';

/**
 * The calls in flight on one connection, oldest first: a pipelined connection answers in order,
 * so the call settling is always the oldest one.
 */
export class Watch {
  /** When each unsettled call was made (performance.now()), in the order they were sent. */
  readonly since: number[] = [];
  /** Set once the deadline dropped the connection: its calls then reject with `timeout`. */
  expired = false;

  constructor(readonly kill: () => void) {}
}

/**
 * A client-side deadline for every call: `statementTimeoutMs` plus a margin. The server's own
 * statement_timeout normally answers first; the deadline covers what it does not (a commit waiting
 * for a synchronous standby, a peer gone without a FIN, a server that stopped answering). A timer
 * per call would cost too much at tens of thousands of calls per second, so one periodic sweep
 * per store looks at the oldest call of each connection and drops the connection when it is late.
 */
export class Deadlines {
  /** How long a call may take, in ms. */
  readonly limitMs: number;
  private readonly watches = new Set<Watch>();
  private readonly timer: NodeJS.Timeout;
  private lastSweep = performance.now();
  private skipped = false;
  private readonly periodMs: number;

  constructor(private readonly statementTimeoutMs: number) {
    const margin = Math.max(250, statementTimeoutMs / 10);
    this.limitMs = statementTimeoutMs + margin;
    this.periodMs = Math.min(1000, margin / 2);
    this.timer = setInterval(this.sweep, this.periodMs);
    this.timer.unref();
  }

  /** Starts watching a connection; `kill` must end it (see cancelThenDrop). */
  watch(kill: () => void): Watch {
    const w = new Watch(kill);
    this.watches.add(w);
    return w;
  }

  unwatch(w: Watch): void {
    this.watches.delete(w);
  }

  /**
   * Asks the server to cancel what the connection runs, then drops it: a statement still running
   * (waiting for a lock, say) then ends without committing, instead of going on after the client
   * gave up. The connection stops being read first: a commit waiting for a synchronous standby
   * answers a cancel with success and a warning although the standby does not have it, and that
   * must not reach the caller as an acknowledged write. The connection is dropped once the server
   * has taken the request (it closes the cancel connection), or after half the margin.
   */
  cancelThenDrop(client: pg.Client): void {
    const c = client as unknown as {
      processID?: number | null;
      secretKey?: number | null;
      host?: string;
      port?: number;
      connection?: { stream?: Partial<Duplex> };
    };
    c.connection?.stream?.pause?.();
    const drop = () => c.connection?.stream?.destroy?.();
    if (typeof c.processID !== 'number' || typeof c.secretKey !== 'number' || c.port === undefined) {
      drop();
      return;
    }
    const wait = setTimeout(
      () => {
        socket.destroy();
      },
      (this.limitMs - this.statementTimeoutMs) / 2,
    );
    const socket = c.host?.startsWith('/') ? tcpConnect(`${c.host}/.s.PGSQL.${c.port}`) : tcpConnect(c.port, c.host);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(wait);
      drop();
    });
    socket.on('connect', () => {
      // CancelRequest: length 16, code 80877102, the backend's process id and secret key.
      const request = Buffer.alloc(16);
      request.writeInt32BE(16, 0);
      request.writeInt32BE(80877102, 4);
      request.writeInt32BE(c.processID as number, 8);
      request.writeInt32BE(c.secretKey as number, 12);
      socket.end(request);
    });
  }

  /** The error of a call on a connection the deadline dropped. */
  error(cause: unknown): SessionError {
    return new SessionError(
      'timeout',
      `no answer within ${Math.round(this.limitMs)} ms (statementTimeoutMs plus a margin): the connection was dropped, and the call may have taken effect`,
      { cause: cause instanceof Error ? new Error(cause.message) : undefined },
    );
  }

  private readonly sweep = () => {
    const now = performance.now();
    // After the event loop was blocked, answers may be waiting unread in the sockets: timers run
    // before I/O is polled, so skip this round and judge at the next one (never two in a row, so
    // that a loop that stays busy cannot put the deadline off for good).
    const lagging = now - this.lastSweep > 2 * this.periodMs;
    this.lastSweep = now;
    if (lagging && !this.skipped) {
      this.skipped = true;
      return;
    }
    this.skipped = false;
    let late = false;
    for (const w of this.watches) if (!w.expired && overdue(w, now, this.limitMs)) late = true;
    // setImmediate runs after this turn's I/O: a call answered meanwhile is not late any more.
    if (late) setImmediate(() => this.expire(performance.now()));
  };

  private expire(now: number): void {
    for (const w of this.watches) {
      if (w.expired || !overdue(w, now, this.limitMs)) continue;
      w.expired = true;
      this.watches.delete(w);
      w.kill();
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.watches.clear();
  }
}

/** Whether any call in flight on `w` was made more than `limit` ms before `now`. */
export function overdue(w: Watch, now: number, limit: number): boolean {
  // Calls are sent in order but a batch carries its oldest caller's time: look at them all.
  for (const t of w.since) if (now - t > limit) return true;
  return false;
}
