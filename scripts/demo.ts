// `npm run demo`: a throwaway PostgreSQL (or $DATABASE_URL), migrated, then a walk through the API.
import { connect, migrate, type GetResult } from '../src/index.js';
import { startCluster, type Cluster } from '../test/harness/cluster.js';

const show = (r: GetResult) => (r.ok ? `value ${JSON.stringify(r.value)}, ${r.period} s left` : r.error);
// Keys are secrets: even the demo shows only their beginning.
const masked = (key: string) => `${key.slice(0, 6)}… (${key.length} characters)`;

async function main(): Promise<void> {
  let cluster: Cluster | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    console.log('Starting a throwaway PostgreSQL…');
    cluster = await startCluster({ cron: false });
    url = cluster.url;
  }
  try {
    const ran = await migrate({ connectionString: url, log: false });
    console.log(ran.length ? `Migrated: ${ran.join(', ')}` : 'Schema already up to date');
    const store = connect({ connectionString: url });
    try {
      console.log(`default period: ${await store.defaultPeriod()} s`);
      const key = await store.generate();
      console.log(`generate()                      → ${masked(key)}`);
      console.log(`get(key)                        → ${show(await store.get(key))}`);
      console.log(`set(key, "visits=1")            → ${await store.set(key, 'visits=1')}`);
      console.log(`get(key)                        → ${show(await store.get(key))}`);
      console.log(`set(key, "visits=2", 60 s)      → ${await store.set(key, 'visits=2', { expiry: 60 })}`);
      console.log(`get(key)                        → ${show(await store.get(key))}`);
      await store.clear(key);
      console.log('clear(key)                      → done');
      console.log(`get(key)                        → ${show(await store.get(key))}`);
      console.log(`set(key, "x") after clear       → ${await store.set(key, 'x')}  (set never creates a session)`);
      const expired = await store.generate({ expiry: 0, value: 'gone' });
      console.log(`get(generate(expiry 0))         → ${show(await store.get(expired))}`);
      console.log(`purge()                         → ${await store.purge()} expired session(s) deleted`);
    } finally {
      await store.close();
    }
  } finally {
    if (cluster) {
      cluster.destroy();
      console.log('Throwaway PostgreSQL removed.');
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
