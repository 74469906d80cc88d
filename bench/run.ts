// `npm run bench`: ours vs a plain pg.Pool vs connect-pg-simple vs pgbench, on one server in one run.
// Contenders take turns (the order rotates) and rounds repeat; the report uses medians over rounds.
// Settings (flag or env): --rounds, --seconds, --warmup, --sessions, --concurrency=1,8,32,128,
// --ops=get,set,generate,clear, --contenders=ours,raw,cps,pgbench, --quick, --wait-idle, --out=DIR,
// --no-http (skip the Express scenario), --http-only, --fsync=on|off.
// The server runs with fsync = on, PostgreSQL's default, and the run prints pg_test_fsync's figure
// for its disk. --fsync=off is a labelled extra (results in results/fsync-off): it hides the cost of
// flushing the WAL at every commit, which decides write throughput.
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyTable, nodeContenders, type NodeContender } from './contenders.js';
import { createPeerTables, deleteGenerated, loadSessions, tableNames, type Table } from './data.js';
import { closedLoop, type Measurement } from './load.js';
import { flag, listOption, numberOption, quick, stringOption, waitForIdle } from './options.js';
import { clearPoolSql, pgbench } from './pgbench.js';
import {
  contenderNames,
  markdownTable,
  opNames,
  summarizeCells,
  svgChart,
  targets,
  targetTable,
  type Cell,
  type ContenderName,
  type OpName,
} from './report.js';
import { loadAverage, machineFacts, openBenchServer, sampleLoad, type BenchDatabase, type MachineFacts } from './setup.js';
import { httpScenario, type HttpResult } from './http.js';

const fsync = stringOption('fsync', 'on');
if (fsync !== 'on' && fsync !== 'off') throw new Error(`--fsync must be on or off, got ${fsync}`);
const resultsDir = fileURLToPath(
  new URL(fsync === 'on' ? '../../bench/results' : '../../bench/results/fsync-off', import.meta.url),
);

const settings = {
  fsync,
  rounds: numberOption('rounds', 3, 1),
  seconds: numberOption('seconds', 3, 0.3),
  warmup: numberOption('warmup', 0.5, 0.15),
  sessions: numberOption('sessions', 100_000),
  concurrency: listOption('concurrency', ['1', '8', '32', '128']).map(Number),
  ops: listOption<OpName>('ops', opNames),
  contenders: listOption<ContenderName>('contenders', contenderNames),
  http: !flag('no-http'),
  httpOnly: flag('http-only'),
  out: stringOption('out', quick ? join(tmpdir(), 'session-bench-quick') : resultsDir),
};

const log = (s: string) => console.log(s);

interface Bench {
  db: BenchDatabase;
  node: Partial<Record<ContenderName, NodeContender>>;
}

const tableOf = (c: ContenderName): Table => (c === 'pgbench' ? 'ours' : c);
const loop = (concurrency: number) => ({ concurrency, warmupMs: settings.warmup * 1000, durationMs: settings.seconds * 1000 });
const randomSession = () => 1 + Math.floor(Math.random() * settings.sessions);

/** Runs one contender's get or set, or its generate followed by clear (which deletes what generate made). */
async function runCell(
  b: Bench,
  who: ContenderName,
  op: 'get' | 'set' | 'generate',
  concurrency: number,
): Promise<Partial<Record<OpName, Measurement>>> {
  const c = b.node[who];
  if (c === undefined) return pgbenchCell(b, op, concurrency);
  if (op === 'get') return { get: await closedLoop(() => c.get(randomSession()), loop(concurrency)) };
  if (op === 'set') return { set: await closedLoop(() => c.set(randomSession()), loop(concurrency)) };
  const made: string[] = [];
  const generate = await closedLoop(async () => {
    made.push(await c.generate());
  }, loop(concurrency));
  let next = 0;
  const clear = settings.ops.includes('clear')
    ? await closedLoop(() => (next < made.length ? c.clear(made[next++] as string) : null), loop(concurrency))
    : undefined;
  await deleteGenerated(b.db, tableOf(who));
  await b.db.sql(`VACUUM ${tableNames[tableOf(who)]}`);
  return clear ? { generate, clear } : { generate };
}

async function pgbenchCell(
  b: Bench,
  op: 'get' | 'set' | 'generate',
  clients: number,
): Promise<Partial<Record<OpName, Measurement>>> {
  const run = {
    url: b.db.appUrl,
    bindir: b.db.bindir,
    sessions: settings.sessions,
    clients,
    warmupMs: settings.warmup * 1000,
    durationMs: settings.seconds * 1000,
  };
  if (op !== 'generate') return { [op]: (await pgbench({ ...run, op })).measurement };
  const generated = await pgbench({ ...run, op: 'generate' });
  // pgbench cannot keep the keys it generated: swap its sessions for as many with known keys.
  await deleteGenerated(b.db, 'ours');
  await b.db.sql('VACUUM session.sessions');
  let clear: Measurement | undefined;
  if (settings.ops.includes('clear')) {
    const perClient = Math.max(1, Math.ceil(generated.total / clients));
    await b.db.sql(clearPoolSql(clients, perClient));
    clear = (await pgbench({ ...run, op: 'clear', perClient })).measurement;
    await deleteGenerated(b.db, 'ours');
    await b.db.sql('VACUUM session.sessions');
  }
  return clear ? { generate: generated.measurement, clear } : { generate: generated.measurement };
}

const rotate = <T>(xs: readonly T[], by: number): T[] => xs.map((_, i) => xs[(i + by) % xs.length] as T);

async function main(): Promise<void> {
  const loadBefore = flag('wait-idle') ? await waitForIdle(0.8, 20, log) : undefined;
  const started = Date.now();
  const stopSampling = sampleLoad();
  const server = await openBenchServer([`fsync = ${settings.fsync}`]);
  const fsyncFigure = server.testFsync();
  const diskLine = `fsync = ${settings.fsync}${settings.fsync === 'off' ? ' (an extra: commits are not durable, writes look cheaper than in production)' : ''}; pg_test_fsync on the data directory's disk: ${typeof fsyncFigure === 'string' ? fsyncFigure : `${fsyncFigure.fdatasyncUs} µs per 8 kB write + fdatasync`}`;
  log(`# ${diskLine}`);
  const node: Bench['node'] = {};
  const closeAll = async () => {
    for (const [who, c] of Object.entries(node) as [ContenderName, NodeContender][]) {
      delete node[who];
      await c.close().catch(() => {});
    }
  };
  try {
    const db = await server.database('session_bench');
    await createPeerTables(db);
    for (const t of ['ours', 'raw', 'cps'] as const) await loadSessions(db, t, 1, settings.sessions);
    await db.sql('VACUUM ANALYZE');
    const facts = await machineFacts(db);
    if (loadBefore !== undefined) facts.loadAverage = loadBefore;
    log(`# ${facts.cpuModel}, ${facts.nproc} CPUs, ${facts.memoryGiB} GiB; Node ${facts.node}; load ${facts.loadAverage}`);
    log(
      `# ${settings.sessions} sessions per contender; ${settings.rounds} rounds of ${settings.warmup}+${settings.seconds} s per cell`,
    );
    const keys = keyTable(settings.sessions);
    for (const who of settings.contenders) {
      if (who === 'pgbench') continue;
      const c = nodeContenders[who](db.appUrl, keys);
      node[who] = c;
      await c.check();
    }
    const b: Bench = { db, node };
    // Warm up the JIT and the caches before round 1, so the first cells are not the cold ones.
    for (const c of Object.values(node)) {
      for (const op of [(i: number) => c.get(i), (i: number) => c.set(i)]) {
        await closedLoop(() => op(randomSession()), { concurrency: 8, warmupMs: 0, durationMs: settings.warmup * 2000 });
      }
    }
    const cells: Cell[] = [];
    const groups = (['get', 'set', 'generate'] as const).filter(
      (op) => settings.ops.includes(op) || (op === 'generate' && settings.ops.includes('clear')),
    );
    for (let round = 0; round < (settings.httpOnly ? 0 : settings.rounds); round++) {
      for (const [ci, concurrency] of settings.concurrency.entries()) {
        for (const [gi, op] of groups.entries()) {
          for (const who of rotate(settings.contenders, round + ci + gi)) {
            const measured = await runCell(b, who, op, concurrency);
            for (const [name, m] of Object.entries(measured) as [OpName, Measurement][]) {
              if (!settings.ops.includes(name)) continue;
              cells.push({ round, contender: who, op: name, concurrency, ...m });
              log(
                `round ${round + 1} ${name.padEnd(8)} @${String(concurrency).padEnd(3)} ${who.padEnd(8)} ${Math.round(m.opsPerSec).toString().padStart(6)} ops/s  p50 ${m.p50Ms.toFixed(3)} ms  p99 ${m.p99Ms.toFixed(3)} ms`,
              );
            }
          }
        }
        await db.sql(`VACUUM ${Object.values(tableNames).join(', ')}`);
      }
    }
    await closeAll();
    const http = settings.http ? await httpScenario(server, settings, log) : undefined;
    facts.loadSamples = stopSampling();
    report(cells, facts, http, Date.now() - started, diskLine);
  } finally {
    await closeAll();
    await server.destroy();
  }
}

function report(cells: Cell[], facts: MachineFacts, http: HttpResult | undefined, elapsedMs: number, diskLine: string): void {
  const { summaries, ratios } = summarizeCells(cells);
  const ts = targets(cells);
  facts.loadAverageEnd = loadAverage();
  mkdirSync(settings.out, { recursive: true });
  const { out: _out, ...recordedSettings } = settings;
  writeFileSync(
    join(settings.out, 'bench.json'),
    JSON.stringify(
      {
        machine: facts,
        disk: diskLine,
        settings: recordedSettings,
        elapsedSeconds: Math.round(elapsedMs / 1000),
        targets: ts,
        ratios,
        summaries,
        http,
        cells,
      },
      null,
      2,
    ) + '\n',
  );
  const title = `Session stores, ${settings.sessions.toLocaleString('en-US')} sessions of ${200} B, fsync = ${settings.fsync}: median ops/s over ${settings.rounds} round(s)`;
  const subtitle = `${facts.nproc}-CPU ${facts.cpuModel}, Node ${facts.node}, ${facts.postgres.split(' on ')[0]}; 1-min load average ${facts.loadAverage.split(' ')[0]} at start, ${facts.loadAverageEnd?.split(' ')[0] ?? '?'} at end; ${facts.date.slice(0, 10)}`;
  writeFileSync(join(settings.out, 'bench.svg'), svgChart(summaries, title, subtitle));
  const md = [
    `# npm run bench${settings.fsync === 'off' ? ' -- --fsync=off (extra, not durable)' : ''} — ${facts.date}`,
    '',
    `Server: ${diskLine}.`,
    `Machine: ${facts.cpuModel}, ${facts.nproc} CPUs, ${facts.memoryGiB} GiB RAM; Node ${facts.node}; ${facts.postgres.split(',')[0]}.`,
    `Load average at start: ${facts.loadAverage}; at end: ${facts.loadAverageEnd}. Run took ${Math.round(elapsedMs / 1000)} s.`,
    `1-minute load average every 30 s during the run (other engineers' test suites share this machine): ${(facts.loadSamples ?? []).join(', ')}.`,
    `Settings: ${settings.sessions} sessions per contender, ${settings.rounds} rounds, ${settings.warmup} s warm-up + ${settings.seconds} s per cell; medians over rounds; ratios are medians of same-round ratios.`,
    '',
    targetTable(ts),
    '',
    markdownTable(summaries, ratios),
    '',
    ...(http ? [httpMarkdown(http), ''] : []),
    '![ops/s](bench.svg)',
    '',
  ].join('\n');
  writeFileSync(join(settings.out, 'bench.md'), md);
  log('');
  log(md);
  log(`results in ${settings.out}`);
}

function httpMarkdown(h: HttpResult): string {
  return [
    `Express 5 + express-session (issue 5 §7): a read-only request with one of ${h.sessions.toLocaleString('en-US')} existing sessions, ${h.connections} keep-alive connections over loopback, each app in its own Node process (medians of ${h.rounds} rounds):`,
    '',
    '| store | requests/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    ...h.summaries.map(
      (s) =>
        `| ${s.store} | ${Math.round(s.requestsPerSec).toLocaleString('en-US')} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} |`,
    ),
    '',
    `ours / connect-pg-simple: **${h.ratio.toFixed(2)}×** (target ≥ 1.5×: ${h.ratio >= 1.5 ? 'met' : 'not met'}).`,
  ].join('\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
