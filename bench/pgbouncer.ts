// The client through PgBouncer (npm run bench:pgbouncer): get and set ops/s and latency of the
// TypeScript client straight to PostgreSQL (its default path), with `pooled: true` straight to
// PostgreSQL (the cost of the settings statement alone), and with `pooled: true` through a local
// PgBouncer in transaction and in session pooling; 1 and 32 calls in flight, fsync on.
// The contenders take turns (the order rotates every round); the report gives medians over rounds.
// Settings (flag or env): --rounds (3), --seconds (3), --warmup (0.5), --sessions (20000).
// Writes bench/results/pgbouncer.json and pgbouncer.md.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect, type SessionStore, type StoreOptions } from '../src/index.js';
import { findPgBouncer, startPgBouncer, type PgBouncer } from '../test/harness/pgbouncer.js';
import { benchKey, benchValue, loadSessions } from './data.js';
import { closedLoop, median, type Measurement } from './load.js';
import { numberOption } from './options.js';
import { loadAverage, openBenchServer } from './setup.js';

const settings = {
  rounds: numberOption('rounds', 3, 1),
  seconds: numberOption('seconds', 3, 0.5),
  warmup: numberOption('warmup', 0.5, 0.2),
  sessions: numberOption('sessions', 20_000, 2_000),
};
const concurrencies = [1, 32];
const ops = ['get', 'set'] as const;
type Op = (typeof ops)[number];
const contenders = ['direct', 'direct, pooled: true', 'PgBouncer transaction', 'PgBouncer session'] as const;
type Contender = (typeof contenders)[number];
const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const log = (s: string) => console.log(s);

async function main(): Promise<void> {
  if (findPgBouncer() === undefined) throw new Error('pgbouncer is not installed (Debian package `pgbouncer`)');
  const server = await openBenchServer(['fsync = on']);
  const bouncers: PgBouncer[] = [];
  try {
    const db = await server.database('bench_pgbouncer');
    await loadSessions(db, 'ours', 1, settings.sessions);
    const app = new URL(db.appUrl);
    const serverPort = Number(app.port);
    const users = { [decodeURIComponent(app.username)]: decodeURIComponent(app.password) };
    const through = async (poolMode: 'transaction' | 'session') => {
      const b = await startPgBouncer({ serverPort, poolMode, users });
      bouncers.push(b);
      return b.url(db.name, decodeURIComponent(app.username), decodeURIComponent(app.password));
    };
    const options: Record<Contender, StoreOptions> = {
      direct: { connectionString: db.appUrl },
      'direct, pooled: true': { connectionString: db.appUrl, pooled: true },
      'PgBouncer transaction': { connectionString: await through('transaction'), pooled: true },
      'PgBouncer session': { connectionString: await through('session'), pooled: true },
    };
    const samples = new Map<string, Measurement[]>();
    const key = () => benchKey(1 + Math.floor(Math.random() * settings.sessions));
    const value = benchValue('w');
    const run: Record<Op, (s: SessionStore) => Promise<unknown>> = {
      get: (s) => s.get(key()),
      set: (s) => s.set(key(), value),
    };
    for (let round = 0; round < settings.rounds; round += 1) {
      const order = contenders.map((_, i) => contenders[(i + round) % contenders.length] as Contender);
      for (const who of order) {
        const store = connect(options[who]);
        try {
          for (const op of ops) {
            for (const concurrency of concurrencies) {
              const m = await closedLoop(() => run[op](store), {
                concurrency,
                warmupMs: settings.warmup * 1000,
                durationMs: settings.seconds * 1000,
              });
              const cell = `${who}|${op}|${concurrency}`;
              samples.set(cell, [...(samples.get(cell) ?? []), m]);
              log(
                `round ${round + 1} ${who} ${op} x${concurrency}: ${Math.round(m.opsPerSec)} ops/s, p50 ${m.p50Ms.toFixed(2)} ms (load ${loadAverage()})`,
              );
            }
          }
        } finally {
          await store.close();
        }
      }
    }
    const rows = [...samples].map(([cell, ms]) => {
      const [who, op, concurrency] = cell.split('|') as [Contender, Op, string];
      return {
        who,
        op,
        concurrency: Number(concurrency),
        opsPerSec: Math.round(median(ms.map((m) => m.opsPerSec))),
        p50Ms: median(ms.map((m) => m.p50Ms)),
        p99Ms: median(ms.map((m) => m.p99Ms)),
      };
    });
    const direct = (op: Op, c: number) =>
      rows.find((r) => r.who === 'direct' && r.op === op && r.concurrency === c)?.opsPerSec ?? NaN;
    const md = [
      `# Through PgBouncer: get and set, fsync on (${new Date().toISOString().slice(0, 10)})`,
      '',
      `${settings.sessions} sessions, ${settings.rounds} rounds of ${settings.seconds} s per cell (medians), load average at the end: ${loadAverage()}.`,
      '',
      '| contender | op | in flight | ops/s | vs direct | p50 ms | p99 ms |',
      '|---|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.who} | ${r.op} | ${r.concurrency} | ${r.opsPerSec} | ${(r.opsPerSec / direct(r.op, r.concurrency)).toFixed(2)}× | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} |`,
      ),
      '',
    ].join('\n');
    writeFileSync(`${resultsDir}pgbouncer.json`, `${JSON.stringify({ settings, rows }, null, 2)}\n`);
    writeFileSync(`${resultsDir}pgbouncer.md`, md);
    log(md);
  } finally {
    for (const b of bouncers) await b.stop();
    await server.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
