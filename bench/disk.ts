// The disks the durable-write benchmark runs on: the machine's own (fsync on), and a slow one made
// by preloading bench/slow-fsync.c into the server, which sleeps before every fsync/fdatasync.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchServer, FsyncFigure } from './setup.js';

export const shimSource = fileURLToPath(new URL('../../bench/slow-fsync.c', import.meta.url));

export interface Shim {
  /** The compiled library (in a temp dir readable by the server's OS user). */
  path: string;
  remove(): void;
}

/** Compiles the slow-fsync shim with `cc`; a string says why it could not. */
export function buildShim(): Shim | string {
  if (!existsSync(shimSource)) return `${shimSource} is missing`;
  const dir = mkdtempSync(join(tmpdir(), 'session-bench-shim-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 'slow-fsync.so');
  const r = spawnSync('cc', ['-O2', '-shared', '-fPIC', '-o', path, shimSource, '-ldl'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return r.error ? `cc is not available (${r.error.message})` : `cc failed: ${r.stderr.slice(0, 500)}`;
  }
  chmodSync(path, 0o755);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const shimEnv = (shim: Shim, sleepUs: number): Record<string, string> => ({
  LD_PRELOAD: shim.path,
  SLOW_FSYNC_US: String(Math.round(sleepUs)),
});

export interface Calibration {
  sleepUs: number;
  figure: FsyncFigure;
  /** Every (sleep, figure) tried, in order. */
  tries: { sleepUs: number; fdatasyncUs: number }[];
}

/**
 * Finds the sleep that makes pg_test_fsync's fdatasync figure about `targetUs` under the preload:
 * sleeps overshoot on virtual machines, so start below the target and correct by the error.
 */
export function calibrate(
  server: BenchServer,
  shim: Shim,
  targetUs: number,
  log: (s: string) => void,
  fixedSleepUs?: number,
): Calibration | string {
  const tries: Calibration['tries'] = [];
  let sleepUs = fixedSleepUs ?? Math.round(targetUs * 0.8);
  let best: { sleepUs: number; figure: FsyncFigure } | undefined;
  for (let attempt = 0; attempt < (fixedSleepUs === undefined ? 3 : 1); attempt++) {
    const figure = server.testFsync(shimEnv(shim, sleepUs));
    if (typeof figure === 'string') return figure;
    tries.push({ sleepUs, fdatasyncUs: figure.fdatasyncUs });
    log(`# pg_test_fsync with slow-fsync sleeping ${sleepUs} µs: fdatasync ${figure.fdatasyncUs} µs/op`);
    if (!best || Math.abs(figure.fdatasyncUs - targetUs) < Math.abs(best.figure.fdatasyncUs - targetUs))
      best = { sleepUs, figure };
    if (Math.abs(figure.fdatasyncUs - targetUs) <= targetUs * 0.1) break;
    // Other work on the disk can make a single reading far off: never stray far from the target.
    sleepUs = Math.min(targetUs * 1.2, Math.max(targetUs * 0.5, Math.round(sleepUs + (targetUs - figure.fdatasyncUs) * 0.9)));
  }
  return best ? { ...best, tries } : 'no calibration run';
}
