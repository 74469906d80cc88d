// A closed-loop load generator: `concurrency` loops, each awaiting one operation at a time, so
// exactly that many requests are in flight. Latencies are measured per operation after a warm-up.

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
    await new Promise((r) => setTimeout(r, Math.random() * options.thinkMs));
    while (!done()) {
      const t0 = performance.now();
      await op();
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, options.thinkMs));
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
