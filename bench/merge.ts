// `npm run bench:merge`: what the framework stores' merged saves cost next to whole-value saves.
// One database (fsync on, as in production), sessions shaped like express-session's (a cookie, a
// user, a cart, preferences, a CSRF token). Each save changes one field (the token), through
// FrameworkSessions.update as the stores call it: with the loaded copy known (a merge of that field)
// or not (the whole value with `set`); and `store.merge` of that field alone, without what the
// framework's comparison costs the client. 32 saves in flight, the kinds taking turns, rounds
// repeated; reports median ops/s, its ratio to whole-value saves (median of the per-round ratios),
// p50, and WAL bytes per save (pg_current_wal_lsn before and after a round, over every save of the
// round, full-page images included).
// Settings: --sessions=10000 --rounds=5 --seconds=3 --concurrency=32 --bytes=200,2000
import { randomBytes } from 'node:crypto';
import { FrameworkSessions, type Loaded, type Save } from '../src/write-rules.js';
import { connect } from '../src/index.js';
import { closedLoop, median, type Measurement } from './load.js';
import { listOption, numberOption } from './options.js';
import { loadAverage, machineFacts, openBenchServer, sampleLoad, type BenchDatabase } from './setup.js';

const sessions = numberOption('sessions', 10_000, 2_000);
const rounds = numberOption('rounds', 5, 2);
const seconds = numberOption('seconds', 3, 1);
const concurrency = numberOption('concurrency', 32);
const sizes = listOption('bytes', ['200', '2000'], ['200'], null).map(Number);
const kinds = ['merge', 'whole', 'store-merge'] as const;
type Kind = (typeof kinds)[number];

/** A session of about `bytes` bytes of JSON: the cart takes what the other fields leave. */
function sessionValue(bytes: number, token: string): string {
  const base = {
    cookie: { originalMaxAge: 604800000, expires: new Date(Date.now() + 604800000).toISOString(), httpOnly: true, path: '/' },
    user: 'user-12345',
    role: 'member',
    prefs: { theme: 'dark', lang: 'en' },
    csrf: token,
    cart: [] as string[],
  };
  while (JSON.stringify(base).length + 12 <= bytes) base.cart.push(`item-${base.cart.length}`.padEnd(10, '-'));
  return JSON.stringify(base);
}

const token = () => randomBytes(24).toString('base64url');

async function walLsn(db: BenchDatabase): Promise<string> {
  const [r] = await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return r!.lsn;
}

async function walBytesSince(db: BenchDatabase, lsn: string): Promise<number> {
  const [r] = await db.sql<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS bytes', [lsn]);
  return Number(r!.bytes);
}

interface Round {
  m: Measurement;
  walPerSave: number;
}

const labels: Record<Kind, string> = {
  merge: 'merged (one field), FrameworkSessions.update',
  whole: 'whole value, FrameworkSessions.update',
  'store-merge': 'merged (one field), store.merge alone',
};

async function main(): Promise<void> {
  const server = await openBenchServer(['fsync = on', 'synchronous_commit = on', 'shared_buffers = 256MB']);
  try {
    const stopSampling = sampleLoad();
    console.log(
      `# merged vs whole-value saves: ${sessions} sessions, ${concurrency} in flight, ${rounds} rounds of ${seconds} s, fsync on`,
    );
    const rows: string[] = [];
    for (const bytes of sizes) {
      const db = await server.database(`bench_merge_${bytes}`);
      if (bytes === sizes[0]) {
        const facts = await machineFacts(db);
        console.log(
          `# ${facts.date}, ${facts.nproc} CPUs (${facts.cpuModel}), load average ${facts.loadAverage}, ${facts.postgres.split(' on ')[0]}`,
        );
      }
      const store = connect({ connectionString: db.appUrl });
      const framework = new FrameworkSessions({ store, touchThreshold: 1 });
      const keys: string[] = [];
      for (let i = 0; i < sessions; i += 1000) {
        keys.push(
          ...(await Promise.all(
            Array.from({ length: Math.min(1000, sessions - i) }, () => store.generate({ value: sessionValue(bytes, token()) })),
          )),
        );
      }
      await db.sql('VACUUM ANALYZE session.sessions');
      const loadedValue = sessionValue(bytes, token());
      const save = (kind: Kind): Promise<boolean> => {
        const sid = keys[Math.floor(Math.random() * keys.length)]!;
        if (kind === 'store-merge') return store.merge(sid, { set: { csrf: token() } }, { expiry: 604800 });
        // What a store has after loading: with the loaded copy the change is merged, without it written whole.
        const loaded: Loaded = {
          sid,
          data: '',
          expiresAt: Date.now() + 604800_000,
          ...(kind === 'merge' ? { value: loadedValue } : {}),
        };
        const value = JSON.stringify({ ...(JSON.parse(loadedValue) as object), csrf: token() });
        const s: Save = { value, data: value, changed: true, expiry: 604800, sess: {} };
        return framework.update(loaded, s);
      };
      const results: Record<Kind, Round[]> = { merge: [], whole: [], 'store-merge': [] };
      for (let round = 0; round < rounds; round += 1) {
        for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse()) {
          let saves = 0;
          const lsn = await walLsn(db);
          const m = await closedLoop(
            () =>
              save(kind).then(() => {
                saves += 1;
              }),
            { concurrency, warmupMs: 500, durationMs: seconds * 1000 },
          );
          results[kind].push({ m, walPerSave: (await walBytesSince(db, lsn)) / Math.max(1, saves) });
        }
      }
      for (const kind of kinds) {
        const r = results[kind];
        // Within a round, so that the machine's drift between rounds does not decide the ratio.
        const ratio = median(r.map((x, i) => x.m.opsPerSec / results.whole[i]!.m.opsPerSec));
        rows.push(
          `| ${bytes} | ${labels[kind]} | ${Math.round(median(r.map((x) => x.m.opsPerSec)))} | ${ratio.toFixed(2)} | ${median(r.map((x) => x.m.p50Ms)).toFixed(2)} | ${Math.round(median(r.map((x) => x.walPerSave)))} |`,
        );
      }
      console.log(
        `every round, ${bytes} B, ops/s: ${JSON.stringify(Object.fromEntries(kinds.map((k) => [k, results[k].map((x) => Math.round(x.m.opsPerSec))])))}`,
      );
      await store.close();
      await server.drop(db.name);
    }
    const load = stopSampling();
    console.log('\n| value (bytes) | save | ops/s | ÷ whole value | p50 ms | WAL bytes per save |');
    console.log('|---:|---|---:|---:|---:|---:|');
    for (const row of rows) console.log(row);
    console.log(`\n1-minute load average during the run: ${load.join(', ')} (end: ${loadAverage()})`);
  } finally {
    await server.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
