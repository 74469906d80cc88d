// `npm run bench:growth`: get latency as the table grows, bytes per session, purge under load, and
// churn with each indexing alternative (issue 4 §3). Data is loaded with SQL (generate_series).
// Settings (flag or env): --parts=growth,storage,purge,churn, --sizes=10000,1000000,10000000,
// --rounds, --seconds, --warmup, --storage-size, --purge-live, --churn-sessions, --churn-sets,
// --variants=none,fillfactor80,btree,brin,partial,partitioned, --purge-pause,
// --purge-scenarios=closed,users,users-paced,users-job, --quick, --wait-idle, --out=DIR.
import { mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, type SessionStore } from '../src/index.js';
import { connectAdmin } from '../src/admin-index.js';
import { churn, mb, sizes, variantNames, type ChurnResult, type Sizes, type Variant } from './churn.js';
import { benchKey, createPeerTables, expiries, loadSessions } from './data.js';
import { closedLoop, median, usersLoop, type Measurement } from './load.js';
import { flag, listOption, numberOption, quick, stringOption, waitForIdle } from './options.js';
import {
  loadAverage,
  machineFacts,
  openBenchServer,
  sampleLoad,
  type BenchDatabase,
  type BenchServer,
  type MachineFacts,
} from './setup.js';

/** Purge scenarios (--purge-scenarios); a pauseFactor of -1 means --purge-pause. */
const purgeScenarios = {
  closed: { load: 'closed', pauseFactor: 0, via: 'calls' },
  users: { load: 'users', pauseFactor: 0, via: 'calls' },
  'users-paced': { load: 'users', pauseFactor: -1, via: 'calls' },
  'users-job': { load: 'users', pauseFactor: -1, via: 'job' },
} as const;
type PurgeScenarioName = keyof typeof purgeScenarios;

const settings = {
  parts: listOption('parts', ['growth', 'storage', 'purge', 'churn'] as const),
  sizes: listOption('sizes', ['10000', '1000000', '10000000'], ['10000', '100000'], null).map(Number),
  rounds: numberOption('rounds', 3, 1),
  seconds: numberOption('seconds', 3, 0.5),
  warmup: numberOption('warmup', 0.5, 0.2),
  storageSize: numberOption('storage-size', 1_000_000, 100_000),
  purgeLive: numberOption('purge-live', 1_000_000, 50_000),
  purgeClients: numberOption('purge-clients', 8),
  /** The paced purge sleeps this many times each call's duration after it. */
  purgePause: numberOption('purge-pause', 4),
  /** Which purge scenarios run (paced ones use purgePause). */
  purgeScenarios: listOption<PurgeScenarioName>('purge-scenarios', Object.keys(purgeScenarios) as PurgeScenarioName[]),
  /** The moderate load beside the purge: users pausing between gets (about 5000 gets/s, a fifth of capacity). */
  purgeUsers: numberOption('purge-users', 32),
  purgeThinkMs: numberOption('purge-think-ms', 5),
  churnSessions: numberOption('churn-sessions', 100_000, 10_000),
  churnSets: numberOption('churn-sets', 1_000_000, 50_000),
  churnWait: numberOption('churn-wait', 150, 30),
  variants: listOption<Variant>('variants', variantNames),
  // A quarter of this machine's memory, the usual advice, so that 10M sessions fit in the cache.
  sharedBuffers: stringOption('shared-buffers', quick ? '128MB' : '6GB'),
  out: stringOption(
    'out',
    quick ? join(tmpdir(), 'session-bench-quick') : fileURLToPath(new URL('../../bench/results', import.meta.url)),
  ),
};

const log = (s: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${s}`);
const chunk = 1_000_000;

/** Loads sessions 1..n into `table` in chunks of a million rows, then vacuums and analyzes. */
async function load(db: BenchDatabase, n: number, expires = expiries.week): Promise<void> {
  for (let from = 1; from <= n; from += chunk) {
    await loadSessions(db, 'ours', from, Math.min(n, from + chunk - 1), { expires });
    if (n > chunk) log(`  ${db.name}: ${Math.min(n, from + chunk - 1).toLocaleString('en-US')} rows`);
  }
  await db.sql('VACUUM ANALYZE session.sessions');
}

/** B-tree levels of the primary key (root to leaf), when pageinspect is available. */
async function btreeLevels(db: BenchDatabase): Promise<number | undefined> {
  try {
    await db.sql('CREATE EXTENSION IF NOT EXISTS pageinspect');
    const [r] = await db.sql<{ level: string }>(`SELECT level FROM bt_metap('session.sessions_pkey')`);
    return r === undefined ? undefined : Number(r.level) + 1;
  } catch {
    return undefined;
  }
}

// ---- growth ---------------------------------------------------------------------------------

interface GrowthRow {
  sessions: number;
  concurrency: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

interface GrowthResult {
  skipped: { sessions: number; reason: string }[];
  /**
   * Per size: the table, and one session_purge() call when nothing has expired, which must sweep
   * the whole heap to answer 0 (what every pg_cron run costs once nothing is left to delete).
   */
  tables: { sessions: number; sizes: Sizes; btreeLevels: number | undefined; emptyPurgeMs: number }[];
  rows: GrowthRow[];
  /** Median over rounds of largest/smallest, per concurrency. */
  ratios: { concurrency: number; from: number; to: number; p50: number; p99: number }[];
  cells: ({ round: number; sessions: number; concurrency: number } & Measurement)[];
}

/** Bytes the cluster's file system must have free to hold n sessions (heap, index, WAL), generously. */
const bytesNeeded = (n: number) => n * 600 + 2 * 2 ** 30;

async function growth(server: BenchServer, dbs: Map<number, BenchDatabase>): Promise<GrowthResult> {
  const skipped: GrowthResult['skipped'] = [];
  const tables: GrowthResult['tables'] = [];
  for (const n of settings.sizes) {
    const free = statfsSync(tmpdir());
    const available = free.bavail * free.bsize;
    if (!process.env.DATABASE_URL && bytesNeeded(n) > available) {
      skipped.push({
        sessions: n,
        reason: `needs about ${mb(bytesNeeded(n))} MB free in ${tmpdir()}, ${mb(available)} MB available`,
      });
      log(`growth: skipping ${n} sessions: not enough disk`);
      continue;
    }
    log(`growth: loading ${n.toLocaleString('en-US')} sessions`);
    const db = await server.database(`session_growth_${n}`);
    await load(db, n);
    dbs.set(n, db);
    const t0 = performance.now();
    await db.sql('SELECT session.session_purge()');
    const emptyPurgeMs = performance.now() - t0;
    tables.push({ sessions: n, sizes: await sizes(db, 'session.sessions'), btreeLevels: await btreeLevels(db), emptyPurgeMs });
  }
  // Bulk loads and VACUUM go through small buffer rings and leave the cache cold; a server that
  // has been serving these sessions would have them cached, as far as shared_buffers allows.
  for (const db of dbs.values()) {
    await db
      .sql(`CREATE EXTENSION IF NOT EXISTS pg_prewarm;
                  SELECT pg_prewarm('session.sessions'), pg_prewarm('session.sessions_pkey')`)
      .catch(() => {});
  }
  const stores = new Map<number, SessionStore>([...dbs].map(([n, db]) => [n, connect({ connectionString: db.appUrl })]));
  const cells: GrowthResult['cells'] = [];
  try {
    const ns = [...stores.keys()];
    for (let round = 0; round < settings.rounds; round++) {
      for (const concurrency of [1, 32]) {
        // Sizes take turns, in a different order each round.
        for (const n of ns.map((_, i) => ns[(i + round) % ns.length] as number)) {
          const store = stores.get(n) as SessionStore;
          const m = await closedLoop(() => store.get(benchKey(1 + Math.floor(Math.random() * n))), {
            concurrency,
            warmupMs: settings.warmup * 1000,
            durationMs: settings.seconds * 1000,
          });
          cells.push({ round, sessions: n, concurrency, ...m });
          log(
            `growth round ${round + 1} @${concurrency} ${n.toLocaleString('en-US').padStart(10)} sessions: ${Math.round(m.opsPerSec)} gets/s p50 ${m.p50Ms.toFixed(3)} p99 ${m.p99Ms.toFixed(3)} ms`,
          );
        }
      }
    }
  } finally {
    for (const s of stores.values()) await s.close();
  }
  const rows: GrowthRow[] = [];
  const ratios: GrowthResult['ratios'] = [];
  for (const concurrency of [1, 32]) {
    for (const n of stores.keys()) {
      const mine = cells.filter((c) => c.sessions === n && c.concurrency === concurrency);
      rows.push({
        sessions: n,
        concurrency,
        opsPerSec: median(mine.map((c) => c.opsPerSec)),
        p50Ms: median(mine.map((c) => c.p50Ms)),
        p99Ms: median(mine.map((c) => c.p99Ms)),
      });
    }
    const ns = [...stores.keys()].sort((a, b) => a - b);
    const from = ns[0];
    const to = ns[ns.length - 1];
    if (from === undefined || to === undefined || from === to) continue;
    const per = (key: 'p50Ms' | 'p99Ms') =>
      median(
        [...Array(settings.rounds).keys()].flatMap((round) => {
          const a = cells.find((c) => c.round === round && c.sessions === from && c.concurrency === concurrency);
          const b = cells.find((c) => c.round === round && c.sessions === to && c.concurrency === concurrency);
          return a && b ? [b[key] / a[key]] : [];
        }),
      );
    ratios.push({ concurrency, from, to, p50: per('p50Ms'), p99: per('p99Ms') });
  }
  return { skipped, tables, rows, ratios, cells };
}

// ---- storage ----------------------------------------------------------------------------------

interface StorageResult {
  sessions: number;
  ours: Sizes & { bytesPerSession: number };
  cps: Sizes & { bytesPerSession: number };
}

async function storage(server: BenchServer, dbs: Map<number, BenchDatabase>): Promise<StorageResult> {
  const n = settings.storageSize;
  let db = dbs.get(n);
  if (db === undefined) {
    log(`storage: loading ${n.toLocaleString('en-US')} sessions`);
    db = await server.database(`session_storage_${n}`);
    await load(db, n);
    dbs.set(n, db);
  }
  log(`storage: loading ${n.toLocaleString('en-US')} connect-pg-simple sessions (random ids, expiries spread over a week)`);
  await createPeerTables(db);
  for (let from = 1; from <= n; from += chunk) {
    await loadSessions(db, 'cps', from, Math.min(n, from + chunk - 1), { randomIds: true, expires: expiries.spread });
  }
  await db.sql('VACUUM ANALYZE bench_cps.session');
  const per = (s: Sizes) => ({ ...s, bytesPerSession: s.totalBytes / n });
  const result = { sessions: n, ours: per(await sizes(db, 'session.sessions')), cps: per(await sizes(db, 'bench_cps.session')) };
  log(
    `storage: ours ${result.ours.bytesPerSession.toFixed(0)} B/session, connect-pg-simple ${result.cps.bytesPerSession.toFixed(0)} B/session`,
  );
  return result;
}

// ---- purge ------------------------------------------------------------------------------------

/** How the get load runs beside the purge, and how the purge calls follow each other. */
interface PurgeScenario {
  /** `closed`: `purgeClients` gets always in flight (saturates this machine); `users`: `purgeUsers` users who pause `purgeThinkMs` between gets. */
  load: 'closed' | 'users';
  /** After each call, a pause of this many times its duration (0: back to back). */
  pauseFactor: number;
  /** `calls`: session_purge() from Node until 0; `job`: one CALL session_purge_job() as the owner, what the pg_cron job runs. */
  via: 'calls' | 'job';
}

interface PurgeResult extends PurgeScenario {
  live: number;
  expired: number;
  /** Gets in flight (closed), or users (users). */
  getLoad: number;
  idleBefore: Measurement;
  duringPurge: Measurement;
  idleAfter: Measurement;
  p99Ratio: number;
  purgeSeconds: number;
  purgeCalls: number;
  deleted: number;
  slowestCallMs: number;
  lockWaitSamples: number;
  maxLockWaiters: number;
  samples: number;
  expiredLeft: number;
  liveLeft: number;
}

/** Polls pg_stat_activity for our clients waiting on a heavyweight lock, until stopped. */
function lockMonitor(url: string): { stop(): Promise<{ samples: number; waitSamples: number; maxWaiters: number }> } {
  let running = true;
  const result = { samples: 0, waitSamples: 0, maxWaiters: 0 };
  const done = (async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      while (running) {
        const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'session-postgresql' AND wait_event_type = 'Lock'`);
        const n = r.rows[0]?.n ?? 0;
        result.samples += 1;
        if (n > 0) result.waitSamples += 1;
        result.maxWaiters = Math.max(result.maxWaiters, n);
        await sleep(20);
      }
    } finally {
      await c.end();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return result;
    },
  };
}

/** The get load of a purge scenario, for a while or (with `stop`) until told. */
function getLoad(
  scenario: PurgeScenario,
  get: () => Promise<unknown>,
  durationMs: number,
  stop?: () => boolean,
): Promise<Measurement> {
  const bounded = stop ? 3_600_000 : durationMs;
  if (scenario.load === 'users') {
    return usersLoop(get, {
      users: settings.purgeUsers,
      thinkMs: settings.purgeThinkMs,
      durationMs: bounded,
      ...(stop ? { stop } : {}),
    });
  }
  const op = () => ((stop?.() ?? false) ? null : get());
  return closedLoop(op, { concurrency: settings.purgeClients, warmupMs: stop ? 0 : settings.warmup * 1000, durationMs: bounded });
}

async function purge(server: BenchServer, scenario: PurgeScenario): Promise<PurgeResult> {
  const live = settings.purgeLive;
  const how = `${scenario.load === 'users' ? `${settings.purgeUsers} users` : `${settings.purgeClients} gets in flight`}, ${scenario.via === 'job' ? 'CALL session_purge_job, ' : ''}pause ${scenario.pauseFactor}× each call`;
  log(`purge (${how}): loading ${live.toLocaleString('en-US')} live and as many expired sessions, interleaved`);
  const db = await server.database('session_purge');
  await load(db, 2 * live, expiries.halfExpired);
  const store = connect({ connectionString: db.appUrl });
  const purger = connectAdmin({ connectionString: db.appUrl, connections: 1, applicationName: 'session-purge' });
  const liveKey = () => benchKey(1 + 2 * Math.floor(Math.random() * live)); // odd numbers are live
  const get = () => store.get(liveKey());
  try {
    const idleBefore = await getLoad(scenario, get, settings.seconds * 2000);
    const monitor = lockMonitor(db.adminUrl);
    // The get load starts with the purge and stops when it is done.
    let purging = true;
    const during = getLoad(scenario, get, 0, () => !purging);
    const started = performance.now();
    let calls = 0;
    let deleted = 0;
    let slowest = 0;
    if (scenario.via === 'job') {
      // As the pg_cron job does it: one CALL, pacing and committing inside the server.
      const count = async () => Number((await db.sql<{ n: string }>('SELECT count(*) AS n FROM session.sessions'))[0]?.n);
      const before = await count();
      const t0 = performance.now();
      await db.sql(`CALL session.session_purge_job(600, ${scenario.pauseFactor})`);
      slowest = performance.now() - t0;
      calls = 1;
      deleted = before - (await count());
    } else {
      for (let n = -1; n !== 0 && calls < 1_000_000; calls++) {
        const t0 = performance.now();
        n = await purger.purge();
        const took = performance.now() - t0;
        slowest = Math.max(slowest, took);
        deleted += n;
        if (scenario.pauseFactor > 0 && n > 0) await sleep(took * scenario.pauseFactor);
      }
    }
    const purgeMs = performance.now() - started;
    purging = false;
    const duringPurge = await during;
    const locks = await monitor.stop();
    const idleAfter = await getLoad(scenario, get, settings.seconds * 2000);
    const [left] = await db.sql<{ expired: string; live: string }>(
      'SELECT count(*) FILTER (WHERE expires_at <= now()) AS expired, count(*) FILTER (WHERE expires_at > now()) AS live FROM session.sessions',
    );
    const result: PurgeResult = {
      ...scenario,
      live,
      expired: live,
      getLoad: scenario.load === 'users' ? settings.purgeUsers : settings.purgeClients,
      idleBefore,
      duringPurge,
      idleAfter,
      p99Ratio: duringPurge.p99Ms / idleBefore.p99Ms,
      purgeSeconds: purgeMs / 1000,
      purgeCalls: calls,
      deleted,
      slowestCallMs: slowest,
      lockWaitSamples: locks.waitSamples,
      maxLockWaiters: locks.maxWaiters,
      samples: locks.samples,
      expiredLeft: Number(left?.expired),
      liveLeft: Number(left?.live),
    };
    log(
      `purge: ${deleted} deleted in ${result.purgeSeconds.toFixed(1)} s (${calls} calls, slowest ${slowest.toFixed(0)} ms); gets p99 idle ${idleBefore.p99Ms.toFixed(3)} ms, during ${duringPurge.p99Ms.toFixed(3)} ms = ${result.p99Ratio.toFixed(2)}×; lock waits in ${locks.waitSamples}/${locks.samples} samples`,
    );
    return result;
  } finally {
    await store.close();
    await purger.close();
    await server.drop(db.name);
  }
}

// ---- report -----------------------------------------------------------------------------------

interface Results {
  machine: MachineFacts;
  settings: Omit<typeof settings, 'out'>;
  sharedBuffers: string;
  growth?: GrowthResult;
  storage?: StorageResult;
  purge?: PurgeResult[];
  churn?: ChurnResult[];
}

const n = (x: number) => x.toLocaleString('en-US');
const ms = (x: number) => x.toFixed(3);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function markdown(r: Results): string {
  const out = [
    `# npm run bench:growth — ${r.machine.date}`,
    '',
    `Machine: ${r.machine.cpuModel}, ${r.machine.nproc} CPUs, ${r.machine.memoryGiB} GiB RAM; Node ${r.machine.node}; ${r.machine.postgres.split(',')[0]}; shared_buffers ${r.sharedBuffers}, autovacuum_naptime 10s.`,
    `Load average at start: ${r.machine.loadAverage}; at end: ${r.machine.loadAverageEnd ?? ''}.`,
    `1-minute load average every 30 s during the run (other engineers' test suites share this machine): ${(r.machine.loadSamples ?? []).join(', ')}.`,
    '',
  ];
  if (r.growth) {
    out.push(
      '## get latency as the table grows',
      '',
      `ours, default options; uniformly random existing keys; tables loaded with generate_series, vacuumed, then read into shared_buffers with pg_prewarm; ${r.settings.rounds} rounds, sizes in turn; medians.`,
      '',
      '| sessions | heap + indexes | B-tree levels | in flight | gets/s | p50 ms | p99 ms |',
      '|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const row of r.growth.rows) {
      const t = r.growth.tables.find((t) => t.sessions === row.sessions);
      out.push(
        `| ${n(row.sessions)} | ${t ? `${mb(t.sizes.totalBytes)} MB` : ''} | ${t?.btreeLevels ?? '—'} | ${row.concurrency} | ${n(Math.round(row.opsPerSec))} | ${ms(row.p50Ms)} | ${ms(row.p99Ms)} |`,
      );
    }
    out.push('');
    for (const q of r.growth.ratios) {
      out.push(
        `- ${n(q.to)} / ${n(q.from)} sessions at ${q.concurrency} in flight: p50 ${q.p50.toFixed(2)}×, p99 ${q.p99.toFixed(2)}× (target ≤ 1.3: ${q.p50 <= 1.3 && q.p99 <= 1.3 ? 'met' : 'not met'})`,
      );
    }
    for (const s of r.growth.skipped) out.push(`- ${n(s.sessions)} sessions not measured: ${s.reason}`);
    out.push(
      `- one \`session_purge()\` call with nothing expired sweeps the whole table: ${r.growth.tables.map((t) => `${n(t.sessions)} sessions ${t.emptyPurgeMs.toFixed(0)} ms`).join(', ')} (every pg_cron run pays this once nothing is left).`,
    );
    out.push('');
  }
  if (r.storage) {
    const s = r.storage;
    out.push(
      `## Bytes per session at ${n(s.sessions)} sessions (200-byte values)`,
      '',
      '| store | heap | indexes | total (with TOAST, FSM, VM) | bytes per session |',
      '|---|---:|---:|---:|---:|',
      `| ours (32-byte digest key, no expiry index) | ${mb(s.ours.heapBytes)} MB | ${mb(s.ours.indexBytes)} MB | ${mb(s.ours.totalBytes)} MB | ${s.ours.bytesPerSession.toFixed(0)} |`,
      `| connect-pg-simple (32-char sid, json, expire index) | ${mb(s.cps.heapBytes)} MB | ${mb(s.cps.indexBytes)} MB | ${mb(s.cps.totalBytes)} MB | ${s.cps.bytesPerSession.toFixed(0)} |`,
      '',
    );
  }
  for (const p of r.purge ?? []) {
    const how =
      (p.pauseFactor === 0 ? 'back to back' : `each followed by a pause of ${p.pauseFactor}× its duration`) +
      (p.via === 'job' ? ', inside one `CALL session.session_purge_job()` (what the pg_cron job runs)' : '');
    const gets =
      p.load === 'users'
        ? `${p.getLoad} users each send a get ${r.settings.purgeThinkMs} ms after their previous answer (a moderate load with spare capacity)`
        : `${p.getLoad} gets stay in flight (a closed loop that saturates this machine)`;
    out.push(
      `## Purge: ${n(p.expired)} expired among ${n(p.live)} live sessions; ${p.load === 'users' ? `${p.getLoad} users` : `${p.getLoad} gets in flight`}; calls ${how}`,
      '',
      `Repeated \`session_purge()\` calls (default batch 10000) until 0, ${how}, while ${gets}.`,
      '',
      '| | p50 ms | p99 ms | gets/s |',
      '|---|---:|---:|---:|',
      `| idle, before | ${ms(p.idleBefore.p50Ms)} | ${ms(p.idleBefore.p99Ms)} | ${n(Math.round(p.idleBefore.opsPerSec))} |`,
      `| during the purge | ${ms(p.duringPurge.p50Ms)} | ${ms(p.duringPurge.p99Ms)} | ${n(Math.round(p.duringPurge.opsPerSec))} |`,
      `| idle, after | ${ms(p.idleAfter.p50Ms)} | ${ms(p.idleAfter.p99Ms)} | ${n(Math.round(p.idleAfter.opsPerSec))} |`,
      '',
      `- purge: ${n(p.deleted)} rows deleted in **${p.purgeSeconds.toFixed(1)} s** (${p.via === 'job' ? 'one CALL' : `${p.purgeCalls} calls, slowest ${p.slowestCallMs.toFixed(0)} ms`}); target ≤ 30 s: ${p.purgeSeconds <= 30 ? 'met' : 'not met'}. Left: ${n(p.expiredLeft)} expired, ${n(p.liveLeft)} live.`,
      `- get p99 during the purge: **${p.p99Ratio.toFixed(2)}×** idle (target ≤ 2×: ${p.p99Ratio <= 2 ? 'met' : 'not met'}).`,
      `- clients waiting on a lock: ${p.lockWaitSamples} of ${p.samples} samples of pg_stat_activity (every 20 ms), at most ${p.maxLockWaiters} at once.`,
      '',
    );
  }
  if (r.churn && r.churn.length > 0) {
    const c0 = r.churn[0] as ChurnResult;
    out.push(
      `## Churn: ${n(c0.sets)} sets over ${n(c0.sessions)} sessions, per indexing alternative`,
      '',
      'pgbench, 8 clients, `session_set` (the partitioned model: the same UPDATE); sizes are heap + indexes (MB): before → after the sets → after autovacuum.',
      '',
      '| alternative | HOT updates | sets/s | WAL bytes per set | failed sets | heap MB | indexes MB | total MB | autovacuum |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const c of r.churn) {
      const arrow = (k: keyof Sizes) => `${mb(c.before[k])} → ${mb(c.afterSets[k])} → ${mb(c.afterAutovacuum[k])}`;
      const av = c.autovacuumRan
        ? `ran (${n(c.deadTuplesAfterSets)} dead tuples)`
        : c.deadTuplesAfterSets > c.autovacuumThreshold
          ? `did not run within ${c.waitedSeconds} s`
          : `not needed (${n(c.deadTuplesAfterSets)} dead tuples < threshold ${n(c.autovacuumThreshold)})`;
      out.push(
        `| ${c.label} | ${pct(c.hotShare)} | ${n(Math.round(c.setsPerSec))} | ${n(Math.round(c.walBytesPerSet))} | ${n(c.failedSets)} | ${arrow('heapBytes')} | ${arrow('indexBytes')} | ${arrow('totalBytes')} | ${av} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const loadBefore = flag('wait-idle') ? await waitForIdle(0.8, 20, log) : undefined;
  const stopSampling = sampleLoad();
  // fsync off as before: this part measures sizes, read latency and purge, not the cost of commits.
  const server = await openBenchServer([
    'fsync = off',
    `shared_buffers = '${settings.sharedBuffers}'`,
    'autovacuum_naptime = 10s',
    'max_wal_size = 4GB',
  ]);
  try {
    const dbs = new Map<number, BenchDatabase>();
    const first = await server.database('session_growth_facts');
    const facts = await machineFacts(first);
    if (loadBefore !== undefined) facts.loadAverage = loadBefore;
    const [sb] = await first.sql<{ shared_buffers: string }>('SHOW shared_buffers');
    await server.drop(first.name);
    const results: Results = {
      machine: facts,
      settings: (({ out: _o, ...rest }) => rest)(settings),
      sharedBuffers: sb?.shared_buffers ?? '?',
    };
    if (settings.parts.includes('growth')) results.growth = await growth(server, dbs);
    if (settings.parts.includes('storage')) results.storage = await storage(server, dbs);
    for (const db of dbs.values()) await server.drop(db.name);
    // Back to back (as fast as it goes), then paced (calls spread out, as a scheduler would), then
    // paced inside the server by the procedure the pg_cron job calls.
    if (settings.parts.includes('purge')) {
      results.purge = [];
      for (const name of settings.purgeScenarios) {
        const s = purgeScenarios[name];
        results.purge.push(await purge(server, { ...s, pauseFactor: s.pauseFactor < 0 ? settings.purgePause : s.pauseFactor }));
      }
    }
    if (settings.parts.includes('churn')) {
      results.churn = [];
      const options = {
        sessions: settings.churnSessions,
        sets: settings.churnSets,
        clients: 8,
        maxWaitSeconds: settings.churnWait,
      };
      for (const v of settings.variants) results.churn.push(await churn(server, v, options, log));
    }
    facts.loadAverageEnd = loadAverage();
    facts.loadSamples = stopSampling();
    mkdirSync(settings.out, { recursive: true });
    writeFileSync(join(settings.out, 'growth.json'), JSON.stringify(results, null, 2) + '\n');
    const md = markdown(results);
    writeFileSync(join(settings.out, 'growth.md'), md);
    console.log(`\n${md}\nresults in ${settings.out}`);
  } finally {
    await server.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
