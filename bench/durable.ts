// `npm run bench:durable`: writes under the production disk regime (fsync = on), on this machine's
// disk and on a slow one (bench/slow-fsync.c preloaded into the server: every fsync/fdatasync
// sleeps first, calibrated with pg_test_fsync to ~1 ms, as on cloud block storage).
// Scenarios: closed loops of set/generate/clear (and get at 32) at 1-128 callers; mixed (32 get +
// 32 set loops at once); an open loop of sets at fixed offered rates. Per cell the server's
// counters give calls per commit (mean batch size) and commits per WAL flush.
// Settings (flag or env BENCH_*): --quick, --rounds, --seconds, --warmup, --sessions,
// --disks=fast,slow[,nofsync], --concurrency, --get-concurrency, --ops, --contenders,
// --mixed-contenders, --open-contenders, --rates-fast, --rates-slow, --mixed-loops,
// --slow-target-us=1000, --slow-sleep-us (skip calibration), --parts=closed,mixed,open, --wait-idle,
// --out=DIR.
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { keyTable, nodeContenders, type NodeContender, type NodeContenderName } from './contenders.js';
import { createPeerTables, deleteGenerated, loadSessions, tableNames, type Table } from './data.js';
import { buildShim, calibrate, shimEnv, type Calibration, type Shim } from './disk.js';
import {
  closedTable,
  diskLabels,
  durableTargets,
  mixedTable,
  openTable,
  targetMet,
  targetTable,
  type DiskName,
  type DurableCell,
  type ServerDelta,
} from './durable-report.js';
import { closedLoop, openLoop, type Measurement } from './load.js';
import { flag, listOption, numberOption, quick, stringOption, waitForIdle } from './options.js';
import {
  appRole,
  loadAverage,
  machineFacts,
  openBenchServer,
  sampleLoad,
  type BenchDatabase,
  type FsyncFigure,
  type MachineFacts,
} from './setup.js';

const allContenders: NodeContenderName[] = ['ours', 'ours-pool10', 'raw-fn', 'raw', 'cps'];
const settings = {
  rounds: numberOption('rounds', 3, 1),
  seconds: numberOption('seconds', 2, 1),
  warmup: numberOption('warmup', 0.5, 0.3),
  sessions: numberOption('sessions', 100_000, 20_000),
  disks: listOption<DiskName>('disks', ['fast', 'slow'], ['fast', 'slow'], ['fast', 'slow', 'nofsync']),
  concurrency: listOption('concurrency', ['1', '8', '32', '128'], ['32', '128'], null).map(Number),
  getConcurrency: listOption('get-concurrency', ['32'], ['32'], null).map(Number),
  ops: listOption('ops', ['get', 'set', 'generate', 'clear']),
  contenders: listOption('contenders', allContenders),
  mixedContenders: listOption('mixed-contenders', allContenders, ['ours', 'ours-pool10', 'raw']),
  openContenders: listOption('open-contenders', allContenders, ['ours', 'ours-pool10', 'raw']),
  ratesFast: listOption('rates-fast', ['4000', '8000', '16000', '24000'], ['16000'], null).map(Number),
  ratesSlow: listOption('rates-slow', ['2000', '8000', '16000', '24000'], ['16000'], null).map(Number),
  mixedLoops: numberOption('mixed-loops', 32),
  slowTargetUs: numberOption('slow-target-us', 1000),
  slowSleepUs:
    process.argv.some((a) => a.startsWith('--slow-sleep-us')) || process.env.BENCH_SLOW_SLEEP_US
      ? numberOption('slow-sleep-us', 0)
      : undefined,
  parts: listOption('parts', ['closed', 'mixed', 'open']),
  out: stringOption(
    'out',
    quick
      ? join(tmpdir(), 'session-bench-durable-quick')
      : fileURLToPath(new URL('../../bench/results/durable', import.meta.url)),
  ),
};

const log = (s: string) => console.log(s);
const rotate = <T>(xs: readonly T[], by: number): T[] => xs.map((_, i) => xs[(i + by) % xs.length] as T);
const randomSession = () => 1 + Math.floor(Math.random() * settings.sessions);
const loop = (concurrency: number) => ({ concurrency, warmupMs: settings.warmup * 1000, durationMs: settings.seconds * 1000 });

interface DiskRun {
  disk: DiskName;
  fsync: FsyncFigure | string;
  fsyncAfter?: FsyncFigure | string;
  calibration?: Calibration;
  skipped?: string;
}

interface Counters {
  commits: number;
  walSyncs: number;
  xids: number;
}

/** The cluster's counters, read on a connection of its own (whose exit flushes its own stats). */
async function counters(db: BenchDatabase): Promise<Counters> {
  const c = new pg.Client({ connectionString: db.adminUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{ commits: string; wal_sync: string; xid: string }>(
      `SELECT (SELECT sum(xact_commit) FROM pg_stat_database)::text AS commits,
              (SELECT wal_sync FROM pg_stat_wal)::text AS wal_sync,
              pg_snapshot_xmax(pg_current_snapshot())::text AS xid`,
    );
    const r = rows[0];
    return { commits: Number(r?.commits), walSyncs: Number(r?.wal_sync), xids: Number(r?.xid) };
  } finally {
    await c.end();
  }
}

/**
 * A backend sends its statistics to shared memory at most once a second, and an idle one only
 * after 10 s; at exit it sends them all. So each cell gets a fresh contender, closed at the end,
 * and the counters are read once its backends are gone (autovacuum and the owner's VACUUMs
 * between cells may add a few commits).
 */
async function backendsGone(db: BenchDatabase): Promise<void> {
  for (let i = 0; i < 250; i++) {
    const [row] = await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [appRole]);
    if (row?.n === 0) return;
    await sleep(20);
  }
  log("warning: the contender's backends had not exited after 5 s; server counters may be short");
}

/** Waits until the contenders' backends have exited and sent their statistics. */
async function settle(db: BenchDatabase): Promise<void> {
  await backendsGone(db);
  // A backend leaves pg_stat_activity just before it sends its last statistics.
  await sleep(200);
}

interface Ctx {
  db: BenchDatabase;
  keys: string[];
  disk: DiskName;
  round: number;
  cells: DurableCell[];
}

async function withContender<T>(
  ctx: Ctx,
  who: NodeContenderName,
  run: (c: NodeContender, count: () => void) => Promise<T>,
): Promise<{ result: T; server: ServerDelta }> {
  const before = await counters(ctx.db);
  const c = nodeContenders[who](ctx.db.appUrl, ctx.keys);
  let calls = 0;
  let result: T;
  try {
    result = await run(c, () => {
      calls++;
    });
  } finally {
    await c.close();
  }
  await settle(ctx.db);
  const after = await counters(ctx.db);
  // The read of `before` is one more commit (flushed when its connection closed).
  return {
    result,
    server: {
      calls,
      commits: after.commits - before.commits - 1,
      walSyncs: after.walSyncs - before.walSyncs,
      xids: after.xids - before.xids,
    },
  };
}

function record(ctx: Ctx, cell: Omit<DurableCell, 'disk' | 'round'>): void {
  ctx.cells.push({ disk: ctx.disk, round: ctx.round, ...cell });
  const batch =
    cell.server && cell.server.commits > 0
      ? `  batch ${(cell.server.calls / cell.server.commits).toFixed(2)}  commits/flush ${(cell.server.commits / Math.max(1, cell.server.walSyncs)).toFixed(2)}`
      : '';
  const drop = cell.dropped ? `  dropped ${cell.dropped}` : '';
  log(
    `${ctx.disk} r${ctx.round + 1} ${cell.scenario} ${cell.op.padEnd(8)} @${String(cell.load).padEnd(5)} ${cell.contender.padEnd(11)} ${Math.round(cell.opsPerSec).toString().padStart(6)} ops/s  p50 ${cell.p50Ms.toFixed(3)}  p99 ${cell.p99Ms.toFixed(3)} ms${batch}${drop}`,
  );
}

const closedCell = (op: string, contender: NodeContenderName, load: number, m: Measurement, server?: ServerDelta) => ({
  scenario: 'closed' as const,
  op,
  contender,
  load,
  opsPerSec: m.opsPerSec,
  p50Ms: m.p50Ms,
  p99Ms: m.p99Ms,
  ...(server ? { server } : {}),
});

async function closedCells(ctx: Ctx, who: NodeContenderName, op: 'get' | 'set' | 'generate', n: number): Promise<void> {
  if (op !== 'generate') {
    const { result, server } = await withContender(ctx, who, (c, count) =>
      closedLoop(() => {
        count();
        const i = randomSession();
        return op === 'get' ? c.get(i) : c.set(i);
      }, loop(n)),
    );
    record(ctx, closedCell(op, who, n, result, op === 'set' ? server : undefined));
    return;
  }
  const made: string[] = [];
  const gen = await withContender(ctx, who, (c, count) =>
    closedLoop(async () => {
      count();
      made.push(await c.generate());
    }, loop(n)),
  );
  record(ctx, closedCell('generate', who, n, gen.result, gen.server));
  if (settings.ops.includes('clear')) {
    let next = 0;
    const clear = await withContender(ctx, who, (c, count) =>
      closedLoop(() => {
        if (next >= made.length) return null;
        count();
        return c.clear(made[next++] as string);
      }, loop(n)),
    );
    record(ctx, closedCell('clear', who, n, clear.result, clear.server));
  }
  const table: Table = who === 'raw' || who === 'cps' ? who : 'ours';
  await deleteGenerated(ctx.db, table);
  await ctx.db.sql(`VACUUM ${tableNames[table]}`);
}

async function mixedCell(ctx: Ctx, who: NodeContenderName): Promise<void> {
  const n = settings.mixedLoops;
  const { result, server } = await withContender(ctx, who, (c, count) =>
    Promise.all([
      closedLoop(() => {
        count();
        return c.get(randomSession());
      }, loop(n)),
      closedLoop(() => {
        count();
        return c.set(randomSession());
      }, loop(n)),
    ]),
  );
  const [gets, sets] = result;
  record(ctx, { ...closedCell('get', who, n, gets), scenario: 'mixed' });
  record(ctx, { ...closedCell('set', who, n, sets, server), scenario: 'mixed' });
}

async function openCell(ctx: Ctx, who: NodeContenderName, rate: number): Promise<void> {
  const { result, server } = await withContender(ctx, who, (c) =>
    openLoop(() => c.set(randomSession()), {
      ratePerSec: rate,
      warmupMs: settings.warmup * 1000,
      durationMs: settings.seconds * 1000,
      maxOutstanding: Math.max(256, rate / 20),
    }),
  );
  server.calls = result.started;
  record(ctx, {
    scenario: 'open',
    op: 'set',
    contender: who,
    load: rate,
    opsPerSec: result.servedPerSec,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    dropped: result.dropped,
    server,
  });
}

let facts: MachineFacts | undefined;

async function runDisk(disk: DiskName, shim: Shim | string, cells: DurableCell[]): Promise<DiskRun> {
  let env: Record<string, string> | undefined;
  let calibration: Calibration | undefined;
  if (disk === 'slow') {
    if (process.env.DATABASE_URL) return skip(disk, 'DATABASE_URL is set: the slow disk needs a server started here');
    if (typeof shim === 'string') return skip(disk, shim);
  }
  const server = await openBenchServer([disk === 'nofsync' ? 'fsync = off' : 'fsync = on']);
  let serverEnv = server;
  try {
    if (disk === 'slow' && typeof shim !== 'string') {
      // Calibrate on this disk with the preload, then start the slow server with the chosen sleep.
      const cal = calibrate(server, shim, settings.slowTargetUs, log, settings.slowSleepUs);
      if (typeof cal === 'string') {
        await server.destroy();
        return skip(disk, `pg_test_fsync under the preload: ${cal}`);
      }
      calibration = cal;
      env = shimEnv(shim, cal.sleepUs);
      await server.destroy();
      serverEnv = await openBenchServer(['fsync = on'], env);
    }
  } catch (err) {
    await server.destroy();
    throw err;
  }
  const srv = serverEnv;
  try {
    const fsync = srv.testFsync(env);
    log(
      `# ${diskLabels[disk]}: pg_test_fsync fdatasync ${typeof fsync === 'string' ? fsync : `${fsync.fdatasyncUs} µs/op (${Math.round(fsync.opsPerSec)}/s)`}`,
    );
    const db = await srv.database('session_durable');
    facts ??= await machineFacts(db);
    await createPeerTables(db);
    for (const t of ['ours', 'raw', 'cps'] as const) await loadSessions(db, t, 1, settings.sessions);
    await db.sql('VACUUM ANALYZE');
    // The load's dirty pages and WAL are checkpointed now, so that no cell pays for that checkpoint.
    await db.sql('CHECKPOINT');
    const keys = keyTable(settings.sessions);
    const all = [...new Set([...settings.contenders, ...settings.mixedContenders, ...settings.openContenders])];
    for (const who of all) {
      const c = nodeContenders[who](db.appUrl, keys);
      try {
        await c.check();
        // Warm the JIT and the caches before round 1.
        for (const op of [(i: number) => c.get(i), (i: number) => c.set(i)]) {
          await closedLoop(() => op(randomSession()), { concurrency: 8, warmupMs: 0, durationMs: settings.warmup * 1000 });
        }
      } finally {
        await c.close();
      }
    }
    await settle(db);
    const rates = disk === 'slow' ? settings.ratesSlow : settings.ratesFast;
    for (let round = 0; round < settings.rounds; round++) {
      const ctx: Ctx = { db, keys, disk, round, cells };
      if (settings.parts.includes('closed')) {
        for (const [ci, n] of settings.concurrency.entries()) {
          const groups = (['get', 'set', 'generate'] as const).filter((op) =>
            op === 'get'
              ? settings.ops.includes('get') && settings.getConcurrency.includes(n) && disk !== 'slow'
              : op === 'generate'
                ? settings.ops.includes('generate') || settings.ops.includes('clear')
                : settings.ops.includes(op),
          );
          for (const [gi, op] of groups.entries()) {
            for (const who of rotate(settings.contenders, round + ci + gi))
              await safely(`${op} @${n} ${who}`, () => closedCells(ctx, who, op, n));
          }
          await db.sql(`VACUUM ${Object.values(tableNames).join(', ')}`);
        }
      }
      if (settings.parts.includes('mixed')) {
        for (const who of rotate(settings.mixedContenders, round)) await safely(`mixed ${who}`, () => mixedCell(ctx, who));
        await db.sql(`VACUUM ${Object.values(tableNames).join(', ')}`);
      }
      if (settings.parts.includes('open')) {
        for (const [ri, rate] of rates.entries()) {
          for (const who of rotate(settings.openContenders, round + ri))
            await safely(`open ${rate}/s ${who}`, () => openCell(ctx, who, rate));
          await db.sql(`VACUUM ${Object.values(tableNames).join(', ')}`);
        }
      }
    }
    // Other work on a shared disk changes its speed: measure it again at the end.
    const fsyncAfter = srv.testFsync(env);
    log(
      `# ${diskLabels[disk]}: pg_test_fsync fdatasync at the end ${typeof fsyncAfter === 'string' ? fsyncAfter : `${fsyncAfter.fdatasyncUs} µs/op`}`,
    );
    return { disk, fsync, fsyncAfter, ...(calibration ? { calibration } : {}) };
  } finally {
    await srv.destroy();
  }
}

/** A cell that fails (a contender's error under load) is logged and left out; the run goes on. */
async function safely(what: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    log(`cell failed, left out: ${failures.at(-1) ?? ''}`);
  }
}
const failures: string[] = [];

function skip(disk: DiskName, reason: string): DiskRun {
  log(`# ${diskLabels[disk]}: skipped: ${reason}`);
  return { disk, fsync: reason, skipped: reason };
}

async function main(): Promise<void> {
  const idleLoad = flag('wait-idle') ? await waitForIdle(0.8, 20, log) : undefined;
  const started = Date.now();
  const stopSampling = sampleLoad();
  const loadAtStart = idleLoad ?? loadAverage();
  const shim = settings.disks.includes('slow') ? buildShim() : 'not requested';
  const cells: DurableCell[] = [];
  const runs: DiskRun[] = [];
  try {
    for (const disk of settings.disks) runs.push(await runDisk(disk, shim, cells));
  } finally {
    if (typeof shim !== 'string') shim.remove();
  }
  if (!facts) throw new Error('no disk was measured');
  const f = facts;
  f.loadAverage = loadAtStart;
  f.loadSamples = stopSampling();
  f.loadAverageEnd = loadAverage();
  report(cells, runs, f, Date.now() - started);
}

function fsyncLine(r: DiskRun): string {
  if (r.skipped) return `- ${diskLabels[r.disk]}: **skipped** (${r.skipped})`;
  const fig =
    typeof r.fsync === 'string'
      ? `not measured (${r.fsync})`
      : `**${r.fsync.fdatasyncUs} µs** per 8 kB write + fdatasync (${fmtOps(r.fsync.opsPerSec)}/s)`;
  const after =
    r.fsyncAfter === undefined
      ? ''
      : typeof r.fsyncAfter === 'string'
        ? `, at the end: not measured`
        : `, at the end of its cells **${r.fsyncAfter.fdatasyncUs} µs**`;
  const cal = r.calibration
    ? `; slow-fsync sleep ${r.calibration.sleepUs} µs, calibration tries ${r.calibration.tries.map((t) => `${t.sleepUs} µs → ${t.fdatasyncUs} µs`).join(', ')}`
    : '';
  return `- ${diskLabels[r.disk]}: pg_test_fsync ${fig}${after}${cal}`;
}
const fmtOps = (n: number) => Math.round(n).toLocaleString('en-US');

function report(cells: DurableCell[], runs: DiskRun[], facts: MachineFacts, elapsedMs: number): void {
  const ts = durableTargets(cells);
  mkdirSync(settings.out, { recursive: true });
  const { out: _out, ...recorded } = settings;
  writeFileSync(
    join(settings.out, 'durable.json'),
    JSON.stringify(
      {
        machine: facts,
        settings: recorded,
        elapsedSeconds: Math.round(elapsedMs / 1000),
        disks: runs,
        failures,
        targets: ts.map((t) => ({ ...t, met: targetMet(t) })),
        cells,
      },
      null,
      2,
    ) + '\n',
  );
  const sections = runs
    .filter((r) => !r.skipped)
    .flatMap((r) => [
      `## ${diskLabels[r.disk]}`,
      '',
      ...(settings.parts.includes('closed') ? ['### Closed loop', '', closedTable(cells, r.disk, settings.contenders), ''] : []),
      ...(settings.parts.includes('mixed') ? ['### Mixed', '', mixedTable(cells, r.disk, settings.mixedContenders), ''] : []),
      ...(settings.parts.includes('open') ? ['### Open loop', '', openTable(cells, r.disk, settings.openContenders), ''] : []),
    ]);
  const md = [
    `# npm run bench:durable — ${facts.date}`,
    '',
    `Machine: ${facts.cpuModel}, ${facts.nproc} CPUs, ${facts.memoryGiB} GiB RAM; Node ${facts.node}; ${facts.postgres.split(',')[0]}.`,
    `Load average at start: ${facts.loadAverage}; at end: ${facts.loadAverageEnd}. Run took ${Math.round(elapsedMs / 1000)} s.`,
    `1-minute load average every 30 s during the run (other work shares this machine): ${(facts.loadSamples ?? []).join(', ')}.`,
    `Settings: ${settings.sessions.toLocaleString('en-US')} sessions per table, ${settings.rounds} round(s), ${settings.warmup} s warm-up + ${settings.seconds} s per cell${quick ? ' (--quick)' : ''}.`,
    '',
    "Disks (pg_test_fsync -s 1 on the data directory's disk, as the server's OS user, with the server's preload):",
    '',
    ...runs.map(fsyncLine),
    '',
    targetTable(ts),
    '',
    ...(failures.length ? ['Cells that failed and are left out:', '', ...failures.map((f) => `- ${f}`), ''] : []),
    ...sections,
  ].join('\n');
  writeFileSync(join(settings.out, 'durable.md'), md);
  log('');
  log(md);
  log(`results in ${settings.out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
