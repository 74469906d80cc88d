// Benchmark settings: `--name=value` flags, else BENCH_NAME environment variables, else defaults.
// `--quick` (or BENCH_QUICK=1) picks defaults for a smoke run of well under a minute.
import { setTimeout as sleep } from 'node:timers/promises';

function raw(name: string): string | undefined {
  const flag = `--${name}`;
  for (const arg of process.argv.slice(2)) {
    if (arg === flag) return '1';
    if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1);
  }
  return process.env[`BENCH_${name.toUpperCase().replaceAll('-', '_')}`];
}

export const quick = raw('quick') === '1';

export function numberOption(name: string, full: number, smoke = full): number {
  const v = raw(name);
  if (v === undefined) return quick ? smoke : full;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${v}`);
  return n;
}

/** A comma-separated list; items must be among `allowed` (default: the full list), unless it is null. */
export function listOption<T extends string>(
  name: string,
  full: readonly T[],
  smoke = full,
  allowed: readonly string[] | null = full,
): T[] {
  const v = raw(name);
  if (v === undefined) return [...(quick ? smoke : full)];
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (allowed !== null && !allowed.includes(item))
      throw new Error(`--${name}: unknown item ${item} (allowed: ${allowed.join(', ')})`);
  }
  return items as T[];
}

export function flag(name: string): boolean {
  return raw(name) === '1';
}

export function stringOption(name: string, fallback: string): string {
  return raw(name) ?? fallback;
}

/** Waits until the 1-minute load average is below `threshold`, polling up to `maxMinutes`. */
export async function waitForIdle(threshold: number, maxMinutes: number, log: (s: string) => void): Promise<string> {
  const { readFileSync } = await import('node:fs');
  const deadline = Date.now() + maxMinutes * 60_000;
  for (;;) {
    const load = readFileSync('/proc/loadavg', 'utf8').trim();
    if (Number(load.split(' ')[0]) < threshold) return load;
    if (Date.now() >= deadline) {
      log(`load average still ${load} after ${maxMinutes} min; running anyway`);
      return load;
    }
    log(`load average ${load}: waiting for < ${threshold}`);
    await sleep(30_000);
  }
}
