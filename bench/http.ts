// Issue 5 §7's headline: requests/s of a minimal Express 5 app serving a read-only request with an
// existing session, our ExpressSessionStore vs connect-pg-simple. Each app runs in its own child
// process; this process drives both over loopback with keep-alive connections, taking turns.
import { fork, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { createPeerTables, httpSecret, httpSessionId } from './data.js';
import { closedLoop, median, type Measurement } from './load.js';
import type { BenchServer } from './setup.js';

export interface HttpResult {
  connections: number;
  sessions: number;
  rounds: number;
  summaries: { store: string; requestsPerSec: number; p50Ms: number; p99Ms: number }[];
  /** Median over rounds of ours / connect-pg-simple within a round. */
  ratio: number;
  cells: ({ round: number; store: string } & Measurement)[];
}

interface App {
  child: ChildProcess;
  port: number;
}

function startApp(kind: 'ours' | 'cps', url: string, sessions: number): Promise<App> {
  const child = fork(fileURLToPath(new URL('./http-server.js', import.meta.url)), [kind, url, String(sessions)], {
    stdio: 'inherit',
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`the ${kind} app exited (${code}) before listening`)));
    child.once('error', reject);
  });
}

/** express-session's signed cookie for a session id. */
export const cookieFor = (sid: string) =>
  `connect.sid=${encodeURIComponent(`s:${sid}.${createHmac('sha256', httpSecret).update(sid).digest('base64').replace(/=+$/, '')}`)}`;

export function requester(
  port: number,
  connections: number,
  cookies: string[],
  path = '/',
): { op: () => Promise<void>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const op = () =>
    new Promise<void>((resolve, reject) => {
      const cookie = cookies[Math.floor(Math.random() * cookies.length)] as string;
      const req = http.get({ host: '127.0.0.1', port, path, agent, headers: { cookie } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: the session was not found`));
        res.resume();
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  return { op, close: () => agent.destroy() };
}

export async function httpScenario(
  server: BenchServer,
  settings: { rounds: number; seconds: number; warmup: number },
  log: (s: string) => void,
  options: { connections?: number; sessions?: number } = {},
): Promise<HttpResult> {
  const connections = options.connections ?? 32;
  const sessions = options.sessions ?? 10_000;
  const db = await server.database('session_bench_http');
  await createPeerTables(db);
  const cookies = Array.from({ length: sessions }, (_, i) => cookieFor(httpSessionId(i)));
  const apps: Partial<Record<'ours' | 'cps', App>> = {};
  try {
    apps.ours = await startApp('ours', db.appUrl, sessions);
    apps.cps = await startApp('cps', db.appUrl, sessions);
    await db.sql('VACUUM ANALYZE');
    const measure = async (store: 'ours' | 'cps', warmupMs: number, durationMs: number) => {
      const r = requester((apps[store] as App).port, connections, cookies);
      try {
        return await closedLoop(r.op, { concurrency: connections, warmupMs, durationMs });
      } finally {
        r.close();
      }
    };
    // Both apps' JIT and caches warm up before the first round.
    for (const store of ['ours', 'cps'] as const) await measure(store, 0, settings.warmup * 2000);
    const cells: HttpResult['cells'] = [];
    for (let round = 0; round < settings.rounds; round++) {
      for (const store of round % 2 ? (['cps', 'ours'] as const) : (['ours', 'cps'] as const)) {
        const m = await measure(store, settings.warmup * 1000, settings.seconds * 1000);
        cells.push({ round, store, ...m });
        log(
          `round ${round + 1} http @${connections} ${store.padEnd(8)} ${Math.round(m.opsPerSec).toString().padStart(6)} req/s  p50 ${m.p50Ms.toFixed(3)} ms  p99 ${m.p99Ms.toFixed(3)} ms`,
        );
      }
    }
    const of = (store: string) => cells.filter((c) => c.store === store);
    const summaries = (['ours', 'cps'] as const).map((store) => ({
      store: store === 'ours' ? 'ours (ExpressSessionStore)' : 'connect-pg-simple',
      requestsPerSec: median(of(store).map((c) => c.opsPerSec)),
      p50Ms: median(of(store).map((c) => c.p50Ms)),
      p99Ms: median(of(store).map((c) => c.p99Ms)),
    }));
    const ratio = median(
      of('ours').flatMap((o) => {
        const c = cells.find((x) => x.store === 'cps' && x.round === o.round);
        return c && c.opsPerSec > 0 ? [o.opsPerSec / c.opsPerSec] : [];
      }),
    );
    return { connections, sessions, rounds: settings.rounds, summaries, ratio, cells };
  } finally {
    for (const { child } of Object.values(apps)) {
      if (child.exitCode !== null) continue;
      if (child.connected) child.disconnect();
      await Promise.race([once(child, 'exit'), sleep(5000, undefined, { ref: false })]);
      if (child.exitCode === null) child.kill();
    }
  }
}
