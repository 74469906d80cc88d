// Test support that needs no throwaway cluster of the harness: the scale-out tests (which start
// their own clusters), test/stress and the contract suite use it as the files of test/ do (through
// helpers.ts, which re-exports it).
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SessionError } from '../src/index.js';

/** Resolves the SQLSTATE a promise rejects with (fails when it resolves). */
export async function sqlState(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
  throw new Error('expected an error, got a result');
}

/** Resolves the SessionError code a client call rejects with (fails on a result or another error). */
export async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof SessionError)) throw new Error(`not a SessionError: ${String(err)}`);
    return err.code;
  }
  throw new Error('expected a SessionError');
}

/** The built `session-pg` binary. */
export const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));

/**
 * Runs `session-pg` with these arguments and waits for it. DATABASE_URL is cleared unless `env`
 * sets it (so a test's database is always named on purpose); `env` adds to the environment.
 */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', env: { ...process.env, DATABASE_URL: '', ...env } });
}
