// A bounded soak: SOAK_SECONDS (default 180) of mixed get/set/generate/clear from four workers,
// with a purge every 3 s. Every read is checked against what the worker last wrote (each worker
// owns its keys), no call may fail, the Node heap (after GC) must stay flat and the table's size
// must stop growing once autovacuum has run (purge deletes, autovacuum makes the space reusable).
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type SessionStore } from '../../src/index.js';
import { connectAdmin, type SessionAdmin } from '../../src/admin-index.js';
import { freshDatabase, type TestDatabase } from '../helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const seconds = Number(process.env.SOAK_SECONDS ?? 180);
const MB = 1024 * 1024;

let db: TestDatabase;
let store: SessionStore;
let admin: SessionAdmin;
before(async () => {
  db = await freshDatabase('soak');
  const url = await db.clientRole({ admin: true });
  store = connect({ connectionString: url });
  admin = connectAdmin({ connectionString: url });
});
after(async () => {
  await store.close();
  await admin.close();
  await db.drop();
});

interface Tracked {
  key: string;
  value: string | null;
  lo: number;
  hi: number;
  cleared: boolean;
}
interface Sample {
  at: number;
  heap: number;
  rss: number;
  table: number;
  rows: number;
  live: number;
  dead: number;
  autovacuums: number;
}

test(`soak: ${seconds} s of mixed traffic with a purge every 3 s`, { timeout: (seconds + 300) * 1000 }, async (t) => {
  const counts = { generate: 0, get: 0, set: 0, clear: 0, purged: 0, purges: 0, errors: 0, lost: 0, expiredReads: 0 };
  const errors: string[] = [];
  const samples: Sample[] = [];
  const sample = async (at: number): Promise<Sample> => {
    gc();
    const m = process.memoryUsage();
    const r = (
      await db.query<{ table: string; rows: number; live: number; dead: string; autovacuums: string }>(`
      SELECT pg_total_relation_size('session.sessions') AS table, (SELECT count(*)::int FROM session.sessions) AS rows,
             (SELECT count(*)::int FROM session.sessions WHERE expires_at > now()) AS live,
             n_dead_tup AS dead, autovacuum_count AS autovacuums
        FROM pg_stat_user_tables WHERE relid = 'session.sessions'::regclass`)
    ).rows[0];
    return {
      at,
      heap: m.heapUsed,
      rss: m.rss,
      table: Number(r?.table),
      rows: Number(r?.rows),
      live: Number(r?.live),
      dead: Number(r?.dead),
      autovacuums: Number(r?.autovacuums),
    };
  };

  const started = performance.now();
  const deadline = started + seconds * 1000;
  const fail = (what: string) => {
    counts.errors += 1;
    if (errors.length < 10) errors.push(what);
  };

  const worker = async (w: number) => {
    const ring: Tracked[] = [];
    let n = 0;
    while (performance.now() < deadline) {
      n += 1;
      if (n % 10 === 0) await sleep(5); // leave the shared machine some air
      const roll = Math.random();
      const target = ring[Math.floor(Math.random() * ring.length)];
      const t0 = performance.now();
      try {
        if (roll < 0.25 || target === undefined) {
          // Mostly short-lived sessions, so that purge has steady work; some living 20-40 s (short
          // enough that the number of live sessions is steady well before autovacuum first runs).
          const expiry = Math.random() < 0.9 ? 1 + Math.floor(Math.random() * 8) : 20 + Math.floor(Math.random() * 20);
          const value = Math.random() < 0.1 ? null : `w${w}:${n}:${'x'.repeat(Math.floor(Math.random() * 400))}`;
          const key = await store.generate(value === null ? { expiry } : { expiry, value });
          ring.push({ key, value, lo: t0 + expiry * 1000 - 30, hi: performance.now() + expiry * 1000 + 30, cleared: false });
          if (ring.length > 2000) ring.shift();
          counts.generate += 1;
        } else if (roll < 0.75) {
          const r = await store.get(target.key);
          const t1 = performance.now();
          counts.get += 1;
          if (target.cleared || target.hi <= t0) {
            counts.expiredReads += 1;
            if (r.ok || r.error !== 'not_found') fail(`a cleared or expired session was read: ${JSON.stringify(r).slice(0, 80)}`);
          } else if (target.lo > t1) {
            const expected = target.value === null ? 'not_set' : target.value;
            const got = r.ok ? r.value : r.error;
            if (got !== expected) {
              counts.lost += 1;
              fail(`a live session read ${String(got).slice(0, 40)}, expected ${expected.slice(0, 40)}`);
            }
          }
        } else if (roll < 0.95) {
          const value = `w${w}:${n}:set`;
          const expiry = 1 + Math.floor(Math.random() * 8);
          const ok = await store.set(target.key, value, { expiry });
          const t1 = performance.now();
          counts.set += 1;
          const live = !target.cleared && target.lo > t1;
          const dead = target.cleared || target.hi <= t0;
          if ((live && !ok) || (dead && ok)) fail(`set answered ${ok} for a session that was ${live ? 'live' : 'gone'}`);
          if (ok) Object.assign(target, { value, lo: t0 + expiry * 1000 - 30, hi: t1 + expiry * 1000 + 30 });
          else target.hi = Math.min(target.hi, t1);
        } else {
          await store.clear(target.key);
          target.cleared = true;
          counts.clear += 1;
        }
      } catch (err) {
        fail(`a call failed: ${String(err)}`);
      }
    }
  };

  const purger = async () => {
    while (performance.now() < deadline) {
      await sleep(3000);
      try {
        counts.purged += await admin.purge();
        counts.purges += 1;
      } catch (err) {
        fail(`purge failed: ${String(err)}`);
      }
    }
  };

  const sampler = async () => {
    samples.push(await sample(0));
    while (performance.now() < deadline) {
      await sleep(Math.min(10_000, Math.max(0, deadline - performance.now())));
      samples.push(await sample(Math.round((performance.now() - started) / 1000)));
    }
  };

  await Promise.all([...Array.from({ length: 4 }, (_, w) => worker(w)), purger(), sampler()]);

  const fmt = (s: Sample) =>
    `${String(s.at).padStart(4)} s  heap ${(s.heap / MB).toFixed(1)} MB  rss ${(s.rss / MB).toFixed(0)} MB  table ${(s.table / MB).toFixed(2)} MB  rows ${s.rows} (live ${s.live}, dead tuples ${s.dead})  autovacuums ${s.autovacuums}`;
  for (const s of samples) t.diagnostic(fmt(s));
  const ops = counts.generate + counts.get + counts.set + counts.clear;
  const first = samples[1] ?? (samples[0] as Sample); // after 10 s of warm-up
  const last = samples.at(-1) as Sample;
  const peak = (xs: Sample[]) => Math.max(...xs.map((s) => s.table));
  const line =
    `soak: ${seconds} s, ${ops} calls (${counts.generate} generate, ${counts.get} get, ${counts.set} set, ${counts.clear} clear; ${Math.round(ops / seconds)}/s), ${counts.purges} purges deleted ${counts.purged} rows; ` +
    `${counts.errors} errors, ${counts.lost} lost; heap ${(first.heap / MB).toFixed(1)} MB after warm-up → ${(last.heap / MB).toFixed(1)} MB at the end, rss ${(first.rss / MB).toFixed(0)} → ${(last.rss / MB).toFixed(0)} MB; ` +
    `table ${(first.table / MB).toFixed(2)} MB → ${(last.table / MB).toFixed(2)} MB (peak ${(peak(samples) / MB).toFixed(2)} MB), ${last.autovacuums} autovacuums`;
  t.diagnostic(line);
  console.log(`# ${line}`);

  assert.deepEqual(errors, []);
  assert.equal(counts.lost, 0);
  assert.ok(counts.expiredReads > 0 && counts.purged > 0, 'the soak never read an expired session or purged one');
  // Flat memory: the heap after GC grows by less than 16 MB over the whole run.
  assert.ok(last.heap - first.heap < 16 * MB, `the heap grew from ${first.heap} to ${last.heap} bytes`);
  // Bounded table: the last third of the run does not grow it by more than a quarter over the
  // middle third's peak. Autovacuum's naptime is 60 s, so the middle third must end past ~100 s.
  if (seconds >= 150) {
    const third = (i: number) => samples.filter((x) => x.at > (i * seconds) / 3 && x.at <= ((i + 1) * seconds) / 3);
    assert.ok(peak(third(2)) <= 1.25 * peak(third(1)), `the table kept growing: ${samples.map((x) => x.table).join(', ')}`);
  } else {
    t.diagnostic(
      `table-size bound not asserted: SOAK_SECONDS=${seconds} is under 150 s, too short for autovacuum (60 s naptime) to settle`,
    );
  }
});
