// A closed-loop load generator: `concurrency` loops, each awaiting one operation at a time, so
// exactly that many requests are in flight. Latencies are measured per operation after a warm-up.
import { setTimeout as sleep } from 'node:timers/promises';

/** One measurement: throughput and latency percentiles (milliseconds) over the measured window. */
export interface Measurement {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  count: number;
  seconds: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function summarize(latenciesMs: number[], seconds: number): Measurement {
  const sorted = Float64Array.from(latenciesMs).sort();
  return {
    opsPerSec: seconds > 0 ? latenciesMs.length / seconds : 0,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    count: latenciesMs.length,
    seconds,
  };
}

/** Returns the next operation's promise, or null when there is no more work (a pool ran out). */
export type Operation = () => Promise<unknown> | null;

export interface LoopOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

/**
 * Runs `op` in `concurrency` loops for warm-up + duration. Operations started in the measured
 * window count; the window ends at its deadline, or earlier when `op` ran out of work.
 */
export async function closedLoop(op: Operation, options: LoopOptions): Promise<Measurement> {
  const latencies: number[] = [];
  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const deadline = measureFrom + options.durationMs;
  const loop = async () => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= deadline) return;
      const pending = op();
      if (pending === null) return;
      await pending;
      if (t0 >= measureFrom) latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const end = Math.min(performance.now(), deadline);
  return summarize(latencies, Math.max(0, end - measureFrom) / 1000);
}

export interface UsersOptions {
  users: number;
  /** Each user's pause after an answer before its next request. */
  thinkMs: number;
  /** Stop after this long, or earlier once `stop()` returns true. */
  durationMs: number;
  stop?: () => boolean;
}

/**
 * A moderate load: `users` loops that each send one operation, wait for the answer, then pause for
 * `thinkMs`, like people clicking. Their requests spread over time instead of arriving together,
 * and the machine keeps spare capacity, as a production server should.
 */
export async function usersLoop(op: () => Promise<unknown>, options: UsersOptions): Promise<Measurement> {
  const latencies: number[] = [];
  const start = performance.now();
  const done = () => performance.now() - start >= options.durationMs || (options.stop?.() ?? false);
  const user = async () => {
    await sleep(Math.random() * options.thinkMs);
    while (!done()) {
      const t0 = performance.now();
      await op();
      latencies.push(performance.now() - t0);
      await sleep(options.thinkMs);
    }
  };
  await Promise.all(Array.from({ length: options.users }, user));
  return summarize(latencies, (performance.now() - start) / 1000);
}

export const median = (xs: number[]): number => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

export interface OpenLoopOptions {
  /** Requests started per second, evenly spaced. */
  ratePerSec: number;
  warmupMs: number;
  durationMs: number;
  /**
   * Requests in flight beyond which a new arrival is dropped (counted, with an infinite latency)
   * instead of queued: an overloaded store would otherwise build a queue that takes minutes to drain.
   */
  maxOutstanding: number;
}

export interface OpenMeasurement {
  offeredPerSec: number;
  /** Requests that completed inside the measured window, per second. */
  servedPerSec: number;
  /** Latency from each request's scheduled arrival (so a late start counts), drops as infinite. */
  p50Ms: number;
  p99Ms: number;
  /** Arrivals in the measured window, and how many of them were dropped. */
  arrivals: number;
  dropped: number;
  /** Requests started over the whole run, warm-up included (for per-call server figures). */
  started: number;
  seconds: number;
}

/**
 * An open loop: requests arrive at a fixed rate whatever the answers do, each started in its own
 * event-loop turn (one per setImmediate, or after a timer when the next one is more than 2 ms
 * away), as requests reaching a server one by one would. Latency is measured from the scheduled
 * arrival, so a client that falls behind shows it.
 */
export function openLoop(op: () => Promise<unknown>, o: OpenLoopOptions): Promise<OpenMeasurement> {
  const interval = 1000 / o.ratePerSec;
  const start = performance.now();
  const measureFrom = start + o.warmupMs;
  const deadline = measureFrom + o.durationMs;
  const latencies: number[] = [];
  let outstanding = 0;
  let started = 0;
  let dropped = 0;
  let served = 0;
  let next = 0;
  let arrivalsDone = false;
  let failure: unknown;
  return new Promise((resolve, reject) => {
    const finish = () => {
      if (!arrivalsDone || outstanding > 0) return;
      if (failure !== undefined) return reject(failure);
      const sorted = Float64Array.from(latencies).sort();
      resolve({
        offeredPerSec: o.ratePerSec,
        servedPerSec: served / (o.durationMs / 1000),
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        arrivals: latencies.length,
        dropped,
        started,
        seconds: o.durationMs / 1000,
      });
    };
    const arrive = (due: number) => {
      const measured = due >= measureFrom;
      if (outstanding >= o.maxOutstanding) {
        if (measured) {
          dropped++;
          latencies.push(Infinity);
        }
        return;
      }
      outstanding++;
      started++;
      const done = (err?: unknown) => {
        const end = performance.now();
        outstanding--;
        if (err !== undefined) failure ??= err;
        else {
          if (measured) latencies.push(end - due);
          if (end >= measureFrom && end < deadline) served++;
        }
        finish();
      };
      op().then(
        () => done(),
        (err: unknown) => done(err ?? new Error('operation failed')),
      );
    };
    const turn = () => {
      const due = start + next * interval;
      if (due >= deadline) {
        arrivalsDone = true;
        return finish();
      }
      const now = performance.now();
      if (now >= due) {
        next++;
        arrive(due);
        setImmediate(turn);
      } else if (due - now > 2) setTimeout(turn, due - now - 1);
      else setImmediate(turn);
    };
    turn();
  });
}
