// `npm run bench:subjects`: what migration 005 (subjects, labels, absolute lifetime) costs the hot
// path. Two databases on one server (fsync on, as in production): one migrated up to 004, one up
// to 005, each with the same number of sessions, a quarter of them with a subject. get and set
// through the TypeScript client at 32 callers, the two databases taking turns, rounds repeated;
// the report gives medians and the after/before ratio, and the share of HOT updates on each.
// Settings: --sessions=100000 --rounds=5 --seconds=3 --concurrency=32
import { readdirSync } from 'node:fs';
import pg from 'pg';
import { connect, type SessionStore } from '../src/index.js';
import { migrate } from '../src/admin-index.js';
import { startCluster } from '../test/harness/cluster.js';
import { databaseUrl } from '../test/harness/urls.js';
import { closedLoop, type Measurement } from './load.js';
import { numberOption } from './options.js';

const sessions = numberOption('sessions', 100_000, 10_000);
const rounds = numberOption('rounds', 5, 2);
const seconds = numberOption('seconds', 3, 1);
const concurrency = numberOption('concurrency', 32);
const shipped = readdirSync(new URL('../../migrations', import.meta.url)).filter((f) => f.endsWith('.js')).length;
const before005 = shipped - readdirSync(new URL('../../migrations', import.meta.url)).filter((f) => f.endsWith('.js') && f >= '005').length;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function prepare(admin: string, name: string, migrations: number): Promise<{ url: string; keys: string[] }> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const url = databaseUrl(admin, name);
  await migrate({ connectionString: url, count: migrations, log: false });
  const store = connect({ connectionString: url, connections: 4 });
  const keys: string[] = [];
  const withSubject = migrations >= shipped;
  for (let i = 0; i < sessions; i += 1000) {
    keys.push(...await Promise.all(Array.from({ length: Math.min(1000, sessions - i) }, (_, j) =>
      (withSubject && (i + j) % 4 === 0
        ? store.generate({ value: `{"n":${i + j}}`, subject: `user-${(i + j) % 5000}`, label: 'bench' })
        : store.generate({ value: `{"n":${i + j}}` })))));
  }
  await store.close();
  const v = new pg.Client({ connectionString: url });
  await v.connect();
  await v.query('VACUUM ANALYZE session.sessions');
  await v.end();
  return { url, keys };
}

async function hotShare(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ upd: string; hot: string }>(`SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relid = 'session.sessions'::regclass`);
    const { upd = '0', hot = '0' } = r.rows[0] ?? {};
    return `${((100 * Number(hot)) / Math.max(1, Number(upd))).toFixed(1)}% HOT of ${upd} updates`;
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const cluster = await startCluster({ cron: false, settings: ['fsync = on', 'synchronous_commit = on', 'shared_buffers = 256MB'] });
  try {
    console.log(`# subject overhead: ${sessions} sessions per database, ${concurrency} callers, ${rounds} rounds of ${seconds} s, fsync on`);
    const dbs = {
      before: await prepare(cluster.url, 'before005', before005),
      after: await prepare(cluster.url, 'after005', shipped),
    };
    const results: Record<'before' | 'after', Record<'get' | 'set', Measurement[]>> = {
      before: { get: [], set: [] },
      after: { get: [], set: [] },
    };
    const stores = { before: connect({ connectionString: dbs.before.url }), after: connect({ connectionString: dbs.after.url }) };
    const loop = { concurrency, warmupMs: 500, durationMs: seconds * 1000 };
    for (let round = 0; round < rounds; round += 1) {
      const order = round % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
      for (const op of ['get', 'set'] as const) {
        for (const which of order) {
          const { keys } = dbs[which];
          const store: SessionStore = stores[which];
          const pick = () => keys[Math.floor(Math.random() * keys.length)] as string;
          results[which][op].push(await closedLoop(() => (op === 'get' ? store.get(pick()) : store.set(pick(), '{"n":1}')), loop));
        }
      }
    }
    await stores.before.close();
    await stores.after.close();
    console.log('\n| op | before 005 (ops/s, p50 ms) | after 005 (ops/s, p50 ms) | after / before |');
    console.log('|---|---:|---:|---:|');
    for (const op of ['get', 'set'] as const) {
      const b = median(results.before[op].map((m) => m.opsPerSec));
      const a = median(results.after[op].map((m) => m.opsPerSec));
      const bp = median(results.before[op].map((m) => m.p50Ms));
      const ap = median(results.after[op].map((m) => m.p50Ms));
      console.log(`| ${op} | ${Math.round(b)} (${bp.toFixed(2)}) | ${Math.round(a)} (${ap.toFixed(2)}) | ${(a / b).toFixed(3)} |`);
    }
    console.log(`\nHOT updates: before 005 ${await hotShare(dbs.before.url)}; after 005 ${await hotShare(dbs.after.url)}`);
    console.log(`every round, ops/s: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([o, ms]) => [o, ms.map((m) => Math.round(m.opsPerSec))]))])))}`);
  } finally {
    cluster.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
