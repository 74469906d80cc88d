// The PL/Proxy proxy's cost per call (npm run bench:proxy): get / set / generate through a proxy
// over 4 partitions on 2 local clusters, against the same calls made directly to one partition,
// in the same run.
//
// 1. One connection, one call at a time: wall time per call, and the CPU time the server processes
//    spent on it (the proxy's backend, the partition's backend), read from /proc. These are the
//    per-call server costs the throughput model in docs/scale-out.md uses.
// 2. The TypeScript client (2 pipelined connections) with 32 calls in flight: throughput and
//    latency, direct vs through the proxy. On this 2-core machine the client, the proxy and the
//    partitions share the cores, so this shows the proxy's total overhead, not a scaled-out figure.
//    Through the proxy also with 16 connections: a proxy backend serves one call at a time.
//
// Writes the figures to bench/results/proxy.json and proxy.md. BENCH_SECONDS (default 5) per run.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import pg from 'pg';
import { connect, type SessionStore } from '../src/index.js';
import { deploy, type Deployment } from '../test/scaleout/deployment.js';
import { closedLoop, type Measurement } from './load.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const ticks = 100; // USER_HZ on Linux
const calls = 20000;

/** utime + stime of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticks;
}

type Op = 'get' | 'set' | 'generate';
const statements: Record<Op, string> = {
  get: 'SELECT value, period FROM session.session_get($1::text)',
  set: 'SELECT session.session_set($1::text, $2::text, NULL::bigint)',
  generate: 'SELECT session.session_generate(NULL::bigint, $1::text)',
};

interface Serial {
  op: Op;
  target: 'direct' | 'proxy';
  usPerCall: number;
  proxyCpuUs: number | null;
  partitionCpuUs: number;
}

/** One connection, `calls` calls one after another; CPU of the backends involved. */
async function serial(d: Deployment, target: 'direct' | 'proxy', op: Op, keys: string[]): Promise<Serial> {
  const partitionUrl = d.partitionUrls[0] as string;
  const c = new pg.Client({ connectionString: target === 'direct' ? partitionUrl : d.proxyUrl });
  await c.connect();
  try {
    const pid = (c as unknown as { processID: number }).processID;
    const args = (i: number): unknown[] =>
      op === 'generate' ? ['v'] : op === 'get' ? [keys[i % keys.length]] : [keys[i % keys.length], `v${i}`];
    const query = { name: `bench_${op}`, text: statements[op] };
    for (let i = 0; i < 200; i++) await c.query({ ...query, values: args(i) });
    // The proxy's connections to the partitions (generate's keys go to all four), found after the warm-up.
    const remote =
      target === 'proxy'
        ? (
            await Promise.all(
              d.clusters.map((cl) =>
                d.query<{ pid: number }>(
                  cl.url,
                  `SELECT pid FROM pg_stat_activity WHERE application_name = 'session-postgresql proxy'`,
                ),
              ),
            )
          ).flatMap((r) => r.rows.map((x) => x.pid))
        : [pid];
    const before = { own: cpuMs(pid), remote: remote.map(cpuMs) };
    const started = performance.now();
    for (let i = 0; i < calls; i++) await c.query({ ...query, values: args(i) });
    const wall = performance.now() - started;
    const remoteMs = remote.map(cpuMs).reduce((a, b) => a + b, 0) - before.remote.reduce((a, b) => a + b, 0);
    return {
      op,
      target,
      usPerCall: (wall * 1000) / calls,
      proxyCpuUs: target === 'proxy' ? ((cpuMs(pid) - before.own) * 1000) / calls : null,
      partitionCpuUs: (remoteMs * 1000) / calls,
    };
  } finally {
    await c.end();
  }
}

async function loaded(store: SessionStore, op: Op, keys: string[]): Promise<Measurement> {
  let i = 0;
  const run = () => {
    const key = keys[i++ % keys.length] as string;
    return op === 'get' ? store.get(key) : op === 'set' ? store.set(key, `v${i}`) : store.generate({ value: 'v' });
  };
  return closedLoop(run, { concurrency: 32, warmupMs: 1000, durationMs: seconds * 1000 });
}

async function main(): Promise<void> {
  const d = await deploy({ partitions: 4, servers: 2 });
  try {
    // Keys that all live on partition 0, so direct and proxied calls do the same work there.
    const keys: string[] = [];
    while (keys.length < 2000) {
      const r = await d.query<{ k: string }>(
        d.proxyUrl,
        `SELECT k FROM (SELECT session_proxy.new_key() k FROM generate_series(1, 4000)) x
                                                          WHERE session_proxy.key_hash(k) & 3 = 0`,
      );
      for (const { k } of r.rows) {
        await d.query(d.partitionUrls[0] as string, `SELECT session.session_put($1, 'start', 86400)`, [k]);
        keys.push(k);
      }
    }
    const serials: Serial[] = [];
    for (const op of ['get', 'set', 'generate'] as const) {
      for (const target of ['direct', 'proxy'] as const) serials.push(await serial(d, target, op, keys));
    }
    const load: { op: Op; target: string; m: Measurement }[] = [];
    // A proxy backend waits for the partition during each call, so pipelining on one connection
    // does not overlap calls there: through the proxy, calls in flight need connections.
    const targets = [
      ['direct', 2],
      ['proxy', 2],
      ['proxy', 16],
    ] as const;
    for (const op of ['get', 'set', 'generate'] as const) {
      for (const [target, connections] of targets) {
        const store = connect({
          connections,
          connectionString: target === 'direct' ? (d.partitionUrls[0] as string) : d.proxyUrl,
        });
        try {
          load.push({ op, target: `${target}, ${connections} connections`, m: await loaded(store, op, keys) });
        } finally {
          await store.close();
        }
      }
    }
    const facts = `${cpus()[0]?.model ?? 'CPU'}, ${cpus().length} cores; ${new Date().toISOString()}; fsync off (throwaway clusters)`;
    const lines = [
      '# PL/Proxy proxy vs one partition, same run (npm run bench:proxy)',
      '',
      facts,
      '',
      `## One connection, one call at a time (${calls} calls each)`,
      '',
      '| call | target | µs per call (wall) | proxy backend CPU µs/call | partition backends CPU µs/call |',
      '|---|---|---|---|---|',
      ...serials.map(
        (s) =>
          `| ${s.op} | ${s.target} | ${s.usPerCall.toFixed(0)} | ${s.proxyCpuUs === null ? '-' : s.proxyCpuUs.toFixed(0)} | ${s.partitionCpuUs.toFixed(0)} |`,
      ),
      '',
      `## TypeScript client (pipelined connections), 32 calls in flight (${seconds} s each)`,
      '',
      '| call | target | calls/s | p50 ms | p99 ms |',
      '|---|---|---|---|---|',
      ...load.map(
        (l) => `| ${l.op} | ${l.target} | ${Math.round(l.m.opsPerSec)} | ${l.m.p50Ms.toFixed(2)} | ${l.m.p99Ms.toFixed(2)} |`,
      ),
      '',
    ];
    writeFileSync(
      new URL('results/proxy.json', import.meta.url).pathname.replace('/dist/bench/', '/bench/'),
      `${JSON.stringify({ facts, serials, load }, null, 2)}\n`,
    );
    writeFileSync(new URL('results/proxy.md', import.meta.url).pathname.replace('/dist/bench/', '/bench/'), lines.join('\n'));
    console.log(lines.join('\n'));
  } finally {
    await d.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
