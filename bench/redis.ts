// npm run bench:redis: what one request of an Express app costs through each express-session store,
// side by side in one run: ours (PostgreSQL, fsync on), connect-redis on Redis in three persistence
// modes (none, appendfsync everysec, appendfsync always) and connect-pg-simple.
//
// Two flows, each a request on an existing session, picked at random among `sessions`:
// - read:  get, then touch (a request that changed nothing);
// - write: get, then set (a request that changed its session).
// Each runs through the express-session Store API in this process (as express-session calls it),
// and over HTTP against a real Express 5 app in a child process (GET / and GET /w of
// bench/http-server.ts), with `inflight` requests in flight. Reported per cell: requests/s, p50 and
// p99 latency, and CPU per request: the Node process that runs the store (this one for the API,
// the app for HTTP) and the database's processes (every PostgreSQL process of the cluster, or the
// redis-server process), read from /proc over the measured window.
//
// Redis comes from Debian's redis-server package; without it the Redis columns are skipped, with
// the reason printed. Results: bench/results/redis/redis.{json,md}.
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import type session from 'express-session';
import { ExpressSessionStore } from '../src/express.js';
import { freePort } from '../test/harness/cluster.js';
import { cpsStore, redisStore } from './contenders.js';
import { createPeerTables, expressSession, httpSessionId } from './data.js';
import { cookieFor, requester } from './http.js';
import { closedLoop, type Measurement } from './load.js';
import { listOption, numberOption, quick, stringOption } from './options.js';
import { loadAverage, machineFacts, openBenchServer, sampleLoad, type BenchDatabase } from './setup.js';

const modes = ['none', 'everysec', 'always'] as const;
type Mode = (typeof modes)[number];
const contenderNames = ['ours', 'redis-none', 'redis-everysec', 'redis-always', 'cps'] as const;
type ContenderName = (typeof contenderNames)[number];
const labels: Record<ContenderName, string> = {
  ours: 'ours (PostgreSQL, fsync on)',
  'redis-none': 'connect-redis, no persistence',
  'redis-everysec': 'connect-redis, appendfsync everysec',
  'redis-always': 'connect-redis, appendfsync always',
  cps: 'connect-pg-simple (PostgreSQL, fsync on)',
};
type Flow = 'read' | 'write';
type Via = 'api' | 'http';

const settings = {
  sessions: numberOption('sessions', 100_000, 10_000),
  seconds: numberOption('seconds', 10, 3),
  warmup: numberOption('warmup', 3, 1),
  rounds: numberOption('rounds', 2, 1),
  inflight: listOption('inflight', ['32', '128'], ['32'], null).map(Number),
  flows: listOption<Flow>('flows', ['read', 'write']),
  via: listOption<Via>('via', ['api', 'http']),
  contenders: listOption<ContenderName>('contenders', contenderNames),
  out: stringOption(
    'out',
    quick ? join(tmpdir(), 'session-bench-redis-quick') : fileURLToPath(new URL('../../bench/results/redis', import.meta.url)),
  ),
};

const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const ticksPerSec = 100; // USER_HZ on Linux

/**
 * utime + stime of a process in µs (with `reaped`, also that of its children that have exited and
 * been waited for: cutime + cstime); 0 once it is gone.
 */
function cpuUs(pid: number, reaped = false): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const ticks = Number(fields[11]) + Number(fields[12]) + (reaped ? Number(fields[13]) + Number(fields[14]) : 0);
    return (ticks * 1e6) / ticksPerSec;
  } catch {
    return 0;
  }
}

/** The postmaster and every process it started (backends, WAL writer, checkpointer, ...). */
function clusterPids(postmaster: number): number[] {
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      if (ppid === postmaster) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

interface Contender {
  name: ContenderName;
  store: session.Store & { close(): Promise<void> };
  /** URL the HTTP app's own store connects to. */
  appUrl: string;
  kind: 'ours' | 'cps' | 'redis';
  /** CPU µs of the database's processes so far (the set of processes is read each time). */
  serverCpuUs(): number;
}

interface RedisServer {
  mode: Mode;
  url: string;
  pid: number;
  stop(): void;
}

function redisAvailable(): string | null {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.error ? 'redis-server is not installed (Debian: apt-get install redis-server)' : null;
}

async function startRedis(mode: Mode): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), `session-bench-redis-${mode}-`));
  const port = await freePort();
  const persistence = mode === 'none' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', mode];
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      ...persistence,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server (${mode}) exited with ${code}: ${out.slice(-500)}`)));
  });
  child.stdout?.resume();
  return {
    mode,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid as number,
    stop() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const callback = <T>(run: (cb: (err: unknown, result?: T) => void) => void): Promise<T | undefined> =>
  new Promise((resolve, reject) => run((err, result) => (err ? reject(err as Error) : resolve(result))));

/** Creates sessions 0..n-1 through the store's set, as express-session saves a new session. */
async function load(store: session.Store, n: number): Promise<void> {
  const seed = expressSession('h') as unknown as session.SessionData;
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < n) {
        const sid = httpSessionId(next++);
        await callback((cb) => store.set(sid, seed, cb));
      }
    }),
  );
}

/** One request of a flow through the Store API, as express-session makes it. */
async function request(store: session.Store, flow: Flow, sid: string): Promise<void> {
  const stored = await callback<session.SessionData | null>((cb) => store.get(sid, cb));
  if (!stored) throw new Error(`session ${sid.slice(0, 4)}… not found`);
  const req = { sessionID: sid } as unknown as Parameters<session.Store['createSession']>[0];
  const s = store.createSession(req, stored) as session.Session & { n?: number };
  if (flow === 'read') {
    s.touch();
    await callback((cb) => (store.touch as NonNullable<session.Store['touch']>)(sid, s, cb as () => void));
  } else {
    s.n = (s.n ?? 0) + 1;
    await callback((cb) => store.set(sid, s, cb));
  }
}

interface Cell extends Measurement {
  via: Via;
  flow: Flow;
  inflight: number;
  contender: ContenderName;
  round: number;
  nodeCpuUsPerReq: number;
  serverCpuUsPerReq: number;
}

interface App {
  child: ChildProcess;
  port: number;
}

function startApp(c: Contender): Promise<App> {
  const child = fork(fileURLToPath(new URL('./http-server.js', import.meta.url)), [c.kind, c.appUrl, '0'], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`the ${c.name} app exited (${code}) before listening`)));
  });
}

async function stopApp(app: App): Promise<void> {
  if (app.child.exitCode !== null) return;
  if (app.child.connected) app.child.disconnect();
  await Promise.race([once(app.child, 'exit'), sleep(5000, undefined, { ref: false })]);
  if (app.child.exitCode === null) app.child.kill();
}

/** Warms up, then measures one cell: throughput, latency and CPU over the measured window only. */
async function measure(op: () => Promise<unknown>, inflight: number, nodeCpuUs: () => number, serverCpuUs: () => number) {
  await closedLoop(op, { concurrency: inflight, warmupMs: 0, durationMs: settings.warmup * 1000 });
  const before = { node: nodeCpuUs(), server: serverCpuUs() };
  const m = await closedLoop(op, { concurrency: inflight, warmupMs: 0, durationMs: settings.seconds * 1000 });
  const per = (d: number) => (m.count > 0 ? d / m.count : NaN);
  return { ...m, nodeCpuUsPerReq: per(nodeCpuUs() - before.node), serverCpuUsPerReq: per(serverCpuUs() - before.server) };
}

const processCpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function markdown(cells: Cell[], facts: object, skipped: string[]): string {
  const best = (via: Via, flow: Flow, inflight: number, name: ContenderName) =>
    cells
      .filter((c) => c.via === via && c.flow === flow && c.inflight === inflight && c.contender === name)
      .sort((a, b) => b.opsPerSec - a.opsPerSec)[0];
  const lines = [
    '# Express sessions: ours vs connect-redis vs connect-pg-simple',
    '',
    `Written by \`npm run bench:redis\` (bench/redis.ts) on ${new Date().toISOString()}. ${settings.sessions} live sessions per store;`,
    `${settings.seconds} s per cell after ${settings.warmup} s of warm-up; best of ${settings.rounds} round(s). CPU is µs per request:`,
    "the Node process running the store, and the database's processes (all of the PostgreSQL cluster's, or redis-server).",
    '',
    '```json',
    JSON.stringify(facts, null, 1),
    '```',
    '',
  ];
  if (skipped.length > 0) lines.push(...skipped.map((s) => `Skipped: ${s}`), '');
  for (const via of settings.via) {
    for (const flow of settings.flows) {
      for (const inflight of settings.inflight) {
        lines.push(
          `## ${flow === 'read' ? 'Read (get + touch)' : 'Write (get + set)'}, ${via === 'api' ? 'Store API' : 'HTTP (Express 5)'}, ${inflight} in flight`,
          '',
          '| store | req/s | p50 ms | p99 ms | node µs/req | server µs/req | vs Redis always | vs Redis none |',
          '|---|---:|---:|---:|---:|---:|---:|---:|',
        );
        const always = best(via, flow, inflight, 'redis-always');
        const none = best(via, flow, inflight, 'redis-none');
        for (const name of settings.contenders) {
          const c = best(via, flow, inflight, name);
          if (!c) continue;
          const ratio = (r: Cell | undefined) => (r ? `${(c.opsPerSec / r.opsPerSec).toFixed(2)}×` : '—');
          lines.push(
            `| ${labels[name]} | ${Math.round(c.opsPerSec)} | ${c.p50Ms.toFixed(2)} | ${c.p99Ms.toFixed(2)} | ${c.nodeCpuUsPerReq.toFixed(1)} | ${c.serverCpuUsPerReq.toFixed(1)} | ${ratio(always)} | ${ratio(none)} |`,
          );
        }
        lines.push('');
      }
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const skipped: string[] = [];
  const wantRedis = settings.contenders.filter((c) => c.startsWith('redis-'));
  const noRedis = wantRedis.length > 0 ? redisAvailable() : null;
  if (noRedis) {
    skipped.push(`${wantRedis.join(', ')}: ${noRedis}`);
    log(`skipping ${wantRedis.join(', ')}: ${noRedis}`);
  }
  const names = settings.contenders.filter((c) => !(noRedis && c.startsWith('redis-')));
  const server = await openBenchServer(['fsync = on', 'synchronous_commit = on']);
  const redis: RedisServer[] = [];
  const contenders: Contender[] = [];
  const stopLoad = sampleLoad();
  try {
    const db: BenchDatabase = await server.database('session_bench_redis');
    await createPeerTables(db);
    const [{ data_directory: dataDir } = { data_directory: '' }] = await db.sql<{ data_directory: string }>(
      'SHOW data_directory',
    );
    const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    // A backend that exits takes its CPU time with it, into the postmaster's reaped children's: so
    // the postmaster counts with those, its live children without.
    const pgCpuUs = () => clusterPids(postmaster).reduce((sum, pid) => sum + cpuUs(pid, pid === postmaster), 0);
    for (const name of names) {
      if (name === 'ours') {
        contenders.push({
          name,
          kind: 'ours',
          appUrl: db.appUrl,
          store: new ExpressSessionStore({ connectionString: db.appUrl }),
          serverCpuUs: pgCpuUs,
        });
      } else if (name === 'cps') {
        contenders.push({ name, kind: 'cps', appUrl: db.appUrl, store: cpsStore(db.appUrl), serverCpuUs: pgCpuUs });
      } else {
        const r = await startRedis(name.slice('redis-'.length) as Mode);
        redis.push(r);
        contenders.push({ name, kind: 'redis', appUrl: r.url, store: await redisStore(r.url), serverCpuUs: () => cpuUs(r.pid) });
      }
    }
    for (const c of contenders) {
      const t0 = performance.now();
      await load(c.store, settings.sessions);
      log(`${c.name}: ${settings.sessions} sessions loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    // Loading wrote every row once: vacuum and checkpoint so that no store pays for that afterwards.
    await db.sql('VACUUM ANALYZE');
    await db.sql('CHECKPOINT');
    const facts = { ...(await machineFacts(db)), settings };
    // Made once: hashing an id per request would count the harness's work in every store's CPU.
    const ids = Array.from({ length: settings.sessions }, (_, i) => httpSessionId(i));
    const sid = () => ids[Math.floor(Math.random() * ids.length)] as string;
    const cookies = Array.from({ length: Math.min(settings.sessions, 20_000) }, (_, i) => cookieFor(httpSessionId(i)));
    const cells: Cell[] = [];
    for (const via of settings.via) {
      const apps = new Map<ContenderName, App>();
      try {
        if (via === 'http') for (const c of contenders) apps.set(c.name, await startApp(c));
        for (let round = 0; round < settings.rounds; round++) {
          for (const flow of settings.flows) {
            for (const inflight of settings.inflight) {
              // Take turns, in the opposite order every other round, so that drift in the machine's
              // state does not favour one store.
              const order = round % 2 ? [...contenders].reverse() : contenders;
              for (const c of order) {
                let m: Awaited<ReturnType<typeof measure>>;
                if (via === 'api') {
                  m = await measure(() => request(c.store, flow, sid()), inflight, processCpuUs, c.serverCpuUs);
                } else {
                  const app = apps.get(c.name) as App;
                  const r = requester(app.port, inflight, cookies, flow === 'read' ? '/' : '/w');
                  try {
                    m = await measure(r.op, inflight, () => cpuUs(app.child.pid as number), c.serverCpuUs);
                  } finally {
                    r.close();
                  }
                }
                cells.push({ via, flow, inflight, contender: c.name, round, ...m });
                log(
                  `round ${round + 1} ${via} ${flow} @${inflight} ${c.name.padEnd(15)} ${Math.round(m.opsPerSec).toString().padStart(6)} req/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  node ${m.nodeCpuUsPerReq.toFixed(1)} µs  server ${m.serverCpuUsPerReq.toFixed(1)} µs`,
                );
              }
            }
          }
        }
      } finally {
        for (const app of apps.values()) await stopApp(app);
      }
    }
    const result = { facts: { ...facts, loadAverageEnd: loadAverage(), loadSamples: stopLoad() }, skipped, cells };
    mkdirSync(settings.out, { recursive: true });
    writeFileSync(join(settings.out, 'redis.json'), JSON.stringify(result, null, 1));
    writeFileSync(join(settings.out, 'redis.md'), markdown(cells, result.facts, skipped));
    log(`written to ${settings.out}/redis.md`);
  } finally {
    for (const c of contenders) await c.store.close().catch(() => {});
    for (const r of redis) r.stop();
    await server.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
