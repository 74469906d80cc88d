// Server crashes under load, on a private cluster (the shared one is never stopped): the server is
// stopped with `pg_ctl stop -m immediate` (and `-m fast`, and its connections terminated) while the
// client writes, then started again. Every acknowledged generate/set must be there afterwards,
// writes during the outage must reject with a SessionError, the same store object must serve
// again, and the process must see no unhandled 'error' event or rejection.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../../src/index.js';
import { migrate } from '../../src/admin-index.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { databaseUrl } from '../harness/urls.js';

const unhandled: string[] = [];
const onUnhandled = (what: string) => (err: unknown) => {
  unhandled.push(`${what}: ${String(err)}`);
};
const onRejection = onUnhandled('unhandledRejection');
const onException = onUnhandled('uncaughtException');

let cluster: Cluster | undefined;
let appUrl = '';
let ownerUrl = '';
before(async () => {
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  cluster = await startCluster({ cron: false });
  ownerUrl = cluster.urlFor('postgres');
  const admin = new pg.Client({ connectionString: ownerUrl });
  await admin.connect();
  try {
    await admin.query('CREATE DATABASE app');
    await admin.query(`CREATE ROLE crash_app LOGIN PASSWORD 'pw'`);
  } finally {
    await admin.end();
  }
  ownerUrl = cluster.urlFor('app');
  await migrate({ connectionString: ownerUrl, log: false });
  await new pg.Client({ connectionString: ownerUrl }).connect().then(async (c) => {
    await c.query('GRANT session_client TO crash_app');
    await c.end();
  });
  appUrl = databaseUrl(ownerUrl, 'app', { user: 'crash_app', password: 'pw' });
});
after(() => {
  cluster?.destroy();
  process.off('unhandledRejection', onRejection);
  process.off('uncaughtException', onException);
});

/** What one writer knows about one key it owns: the last acknowledged value, and later attempts. */
interface KeyLog {
  acked: string;
  unsure: string[];
}

describe('server crashes while the client writes', () => {
  test('immediate and fast stops, and terminated connections: nothing acknowledged is lost', { timeout: 600_000 }, async (t) => {
    const c = cluster as Cluster;
    const idleErrors: string[] = [];
    const store: SessionStore = connect({
      connectionString: appUrl,
      applicationName: 'crash-test',
      connectTimeoutMs: 2000,
      onError: (e) => idleErrors.push(e.code),
    });
    const keys = new Map<string, KeyLog>();
    const figures = { generated: 0, sets: 0, rejected: 0, rejectedInOutage: 0, faults: 0 };
    const codes = new Map<string, number>();
    const odd: string[] = [];
    let outage = false;
    let running = true;

    const writer = async (w: number) => {
      const mine: string[] = [];
      for (let n = 0; running; n += 1) {
        const value = `w${w}:${n}`;
        const key = mine.length > 0 && n % 3 !== 0 ? mine[n % mine.length] : undefined;
        const wasOutage = outage;
        try {
          if (key === undefined) {
            const k = await store.generate({ value, expiry: 3600 });
            mine.push(k);
            keys.set(k, { acked: value, unsure: [] });
            figures.generated += 1;
          } else {
            (keys.get(key) as KeyLog).unsure.push(value);
            assert.equal(await store.set(key, value), true, 'a live session was not updated');
            keys.set(key, { acked: value, unsure: [] });
            figures.sets += 1;
          }
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          assert.ok(err instanceof SessionError, `rejected with a non-SessionError: ${String(err)}`);
          codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
          if (err.code !== 'connection' && odd.length < 5)
            odd.push(`${err.code} ${err.sqlState ?? ''} ${err.message} / ${String((err.cause as Error | undefined)?.stack)}`);
          figures.rejected += 1;
          if (wasOutage && outage) figures.rejectedInOutage += 1;
          await sleep(20);
        }
      }
    };

    /** The same store must serve again: a write succeeds within a bounded number of attempts. */
    const servesAgain = async () => {
      for (let i = 0; i < 100; i += 1) {
        try {
          await store.generate({ value: 'probe', expiry: 60 });
          return;
        } catch {
          await sleep(100);
        }
      }
      assert.fail('the store did not serve again after the restart');
    };

    const writers = Array.from({ length: 4 }, (_, w) => writer(w));
    const faults: ('immediate' | 'fast' | 'terminate')[] = [
      'immediate',
      'terminate',
      'immediate',
      'fast',
      'immediate',
      'terminate',
      'immediate',
    ];
    try {
      for (const fault of faults) {
        await sleep(1500);
        if (fault === 'terminate') {
          const admin = new pg.Client({ connectionString: ownerUrl });
          await admin.connect();
          await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'crash-test'`);
          await admin.end();
        } else {
          const before = figures.rejected;
          c.stop(fault);
          outage = true;
          await sleep(1000);
          assert.ok(figures.rejected > before, 'no write was rejected during the outage');
          outage = false;
          c.start();
        }
        figures.faults += 1;
        await servesAgain();
      }
      await sleep(1000);
    } finally {
      running = false;
      await Promise.allSettled(writers);
    }
    for (const w of writers) await w; // a writer's assertion failure surfaces here

    // Every acknowledged write is there, through the same store and through a new connection.
    const fresh = connect({ connectionString: appUrl });
    let lostAckButCommitted = 0;
    try {
      for (const [key, log] of keys) {
        for (const s of [store, fresh]) {
          const r = await s.get(key);
          assert.ok(r.ok, `an acknowledged session is gone: ${JSON.stringify(r)}`);
          assert.ok(r.value === log.acked || log.unsure.includes(r.value), `session holds ${r.value}, acknowledged ${log.acked}`);
          if (s === fresh && r.value !== log.acked) lostAckButCommitted += 1;
        }
      }
    } finally {
      await fresh.close();
      await store.close();
    }
    assert.deepEqual(
      [...codes.keys()].filter((k) => k !== 'connection'),
      [],
      `unexpected codes: ${JSON.stringify([...codes])}: ${odd.join('\n')}`,
    );
    assert.deepEqual(unhandled, []);
    const line = `crashes: ${figures.faults} faults (${faults.join(', ')}) while 4 writers ran; ${figures.generated} generates and ${figures.sets} sets acknowledged, all present afterwards (0 lost); ${figures.rejected} writes rejected with SessionError 'connection' (${figures.rejectedInOutage} during outages); ${lostAckButCommitted} writes committed although their acknowledgement was lost; ${idleErrors.length} idle-connection errors reported to onError; 0 unhandled errors or rejections`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });
});

describe('server killed while batches of writes are in flight', () => {
  test('no caller of a batch cut by the crash was resolved unless its write is there', { timeout: 600_000 }, async (t) => {
    const c = cluster as Cluster;
    // One write lane and many callers: there is always a batch (up to 256 calls) in flight.
    const store = connect({
      connectionString: appUrl,
      applicationName: 'crash-batch',
      writeConnections: 1,
      connectTimeoutMs: 2000,
    });
    const callers = 512;
    const perCaller = 4;
    const pad = 'p'.repeat(2000);
    const keys: string[] = [];
    for (let i = 0; i < callers * perCaller; i += 256) {
      keys.push(...(await Promise.all(Array.from({ length: 256 }, () => store.generate({ value: 'v0', expiry: 3600 })))));
    }
    const logs = new Map<string, KeyLog>(keys.map((k) => [k, { acked: 'v0', unsure: [] }]));
    const generated = new Map<string, string>();
    const figures = { rounds: 0, acked: 0, generated: 0, cut: [] as number[] };
    const codes = new Set<string>();

    for (let round = 0; round < 5; round += 1) {
      let running = true;
      let rejected = 0;
      const caller = async (w: number) => {
        for (let n = 0; running; n += 1) {
          const value = `r${round}:w${w}:${n}:${pad}`;
          try {
            if (n % 5 === 4) {
              generated.set(await store.generate({ value, expiry: 3600 }), value);
              figures.generated += 1;
            } else {
              const key = keys[w * perCaller + (n % perCaller)] as string;
              const log = logs.get(key) as KeyLog;
              log.unsure.push(value);
              assert.equal(await store.set(key, value), true);
              logs.set(key, { acked: value, unsure: [] });
            }
            figures.acked += 1;
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            assert.ok(err instanceof SessionError, String(err));
            codes.add(err.code);
            rejected += 1;
            return;
          }
        }
      };
      const all = Array.from({ length: callers }, (_, w) => caller(w));
      await sleep(300 + Math.floor(Math.random() * 700));
      c.stop('immediate');
      running = false;
      await Promise.all(all);
      figures.cut.push(rejected);
      figures.rounds += 1;
      c.start();
      // Callers cut by the crash: at least the batch in flight, of many calls.
      assert.ok(rejected > 1, `only ${rejected} calls were rejected by the crash`);
    }

    const fresh = connect({ connectionString: appUrl });
    let committedUnacked = 0;
    try {
      for (const [key, log] of logs) {
        const r = await fresh.get(key);
        assert.ok(r.ok, 'an acknowledged session is gone');
        assert.ok(r.value === log.acked || log.unsure.includes(r.value), 'a set acknowledged before the crash is lost');
        if (r.value !== log.acked) committedUnacked += 1;
      }
      for (const [key, value] of generated) {
        const r = await fresh.get(key);
        assert.ok(r.ok && r.value === value, 'an acknowledged generate is lost');
      }
    } finally {
      await fresh.close();
      await store.close();
    }
    assert.deepEqual([...codes], ['connection']);
    assert.deepEqual(unhandled, []);
    const line = `crash mid-batch: ${figures.rounds} immediate stops with ${callers} callers on 1 write lane; ${figures.acked} writes acknowledged (${figures.generated} generates), all present afterwards (0 lost); calls rejected with 'connection' at each crash (the batch in flight and those queued behind it): ${figures.cut.join(', ')}; ${committedUnacked} sets committed although their caller saw the crash`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });
});
