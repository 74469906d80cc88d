// pgbench, the C client, calling our SQL functions with prepared statements (-M prepared): the
// limit a client of the same functions can reach. Latencies come from its per-transaction log.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchValue, generatedMarker, sqlKey } from './data.js';
import { summarize, type Measurement } from './load.js';

/** Ids of the sessions pgbench's clear deletes: client c's n-th is clearBase + c * clearStride + n. */
const clearBase = 1_000_000_000;
const clearStride = 1_000_000;

export type PgbenchOp = 'get' | 'set' | 'generate' | 'clear';

function script(op: PgbenchOp, sessions: number): string {
  switch (op) {
    case 'get':
      return `\\set id random(1, ${sessions})\nSELECT value, period FROM session.session_get(${sqlKey(':id')});\n`;
    case 'set':
      return `\\set id random(1, ${sessions})\nSELECT session.session_set(${sqlKey(':id')}, :v, NULL::bigint);\n`;
    case 'generate':
      return 'SELECT session.session_generate(NULL::bigint, :g);\n';
    case 'clear':
      return `\\set n :n + 1\n\\set id ${clearBase} + :client_id * ${clearStride} + :n\nSELECT session.session_clear(${sqlKey(':id')});\n`;
  }
}

/** SQL that creates the sessions pgbench's clear will delete: `perClient` for each of `clients`. */
export function clearPoolSql(clients: number, perClient: number): string {
  const id = `${clearBase} + c * ${clearStride} + n`;
  return `INSERT INTO session.sessions (expires_at, digest, value)
          SELECT now() + interval '7 days', sha256(convert_to(${sqlKey(id)}, 'UTF8')), '${benchValue(generatedMarker)}'
            FROM generate_series(0, ${clients - 1}) c, generate_series(1, ${perClient}) n`;
}

export interface PgbenchOptions {
  url: string;
  bindir: string;
  /** The transaction script (pgbench syntax). */
  script: string;
  clients: number;
  /** Run for this long, or `perClient` transactions per client. */
  seconds?: number;
  perClient?: number;
  /** Variables (`-D name=value`), sent as parameters with -M prepared. */
  defines?: Record<string, string>;
}

/** One transaction from pgbench's log. */
export interface Transaction {
  startMs: number;
  latencyMs: number;
  /** pgbench logs a transaction that failed (serialization failure, deadlock) without its latency. */
  failed: boolean;
}

function runProcess(bin: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pgbench exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

/** Runs pgbench (-M prepared, one thread per CPU at most) and returns its per-transaction log. */
export async function runPgbench(o: PgbenchOptions): Promise<Transaction[]> {
  const dir = mkdtempSync(join(tmpdir(), 'session-bench-pgbench-'));
  try {
    writeFileSync(join(dir, 'script.sql'), o.script);
    const args = [
      '-n',
      '-M',
      'prepared',
      '-c',
      String(o.clients),
      '-j',
      String(Math.min(o.clients, cpus().length)),
      ...(o.perClient === undefined ? ['-T', String(Math.max(1, Math.ceil(o.seconds ?? 1)))] : ['-t', String(o.perClient)]),
      ...Object.entries(o.defines ?? {}).flatMap(([k, v]) => ['-D', `${k}=${v}`]),
      '-f',
      join(dir, 'script.sql'),
      '-l',
      '--log-prefix',
      join(dir, 'log'),
      o.url,
    ];
    await runProcess(join(o.bindir, 'pgbench'), args, dir);
    // Log lines: client_id transaction_no latency_us|failed script_no end_epoch_s end_us
    const tx: Transaction[] = [];
    for (const f of readdirSync(dir).filter((f) => f.startsWith('log'))) {
      for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
        const p = line.split(' ');
        if (p.length < 6) continue;
        const failed = p[2] === 'failed';
        const latencyMs = failed ? 0 : Number(p[2]) / 1000;
        tx.push({ startMs: Number(p[4]) * 1000 + Number(p[5]) / 1000 - latencyMs, latencyMs, failed });
      }
    }
    return tx;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Measures like the Node loop does: transactions that started after the warm-up and before the
 * deadline (or the last transaction's end, when pgbench ran a fixed number).
 */
export function measure(tx: Transaction[], warmupMs: number, durationMs: number): Measurement {
  let first = Infinity;
  let lastEnd = -Infinity;
  for (const t of tx) {
    first = Math.min(first, t.startMs);
    lastEnd = Math.max(lastEnd, t.startMs + t.latencyMs);
  }
  const from = first + warmupMs;
  const deadline = Math.min(from + durationMs, lastEnd);
  const measured = tx.filter((t) => !t.failed && t.startMs >= from && t.startMs < deadline).map((t) => t.latencyMs);
  return summarize(measured, Math.max(0, deadline - from) / 1000);
}

export interface PgbenchRun {
  url: string;
  bindir: string;
  op: PgbenchOp;
  sessions: number;
  clients: number;
  warmupMs: number;
  durationMs: number;
  /** For clear: transactions per client (the pool's size); otherwise the run is timed. */
  perClient?: number;
}

/** One of the four operations on our SQL functions. Resolves the measurement and how many ran in all. */
export async function pgbench(run: PgbenchRun): Promise<{ measurement: Measurement; total: number }> {
  const tx = await runPgbench({
    url: run.url,
    bindir: run.bindir,
    script: script(run.op, run.sessions),
    clients: run.clients,
    seconds: (run.warmupMs + run.durationMs) / 1000,
    ...(run.perClient === undefined ? {} : { perClient: run.perClient }),
    defines: { v: benchValue('s'), g: benchValue(generatedMarker), n: '0' },
  });
  return { measurement: measure(tx, run.warmupMs, run.durationMs), total: tx.length };
}
