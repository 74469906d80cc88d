// A partition down, or hung: sessions on the other partitions keep working, calls for the missing
// one fail fast with `connection` (08006 from the proxy), and everything recovers when it returns.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../../src/index.js';
import type { Cluster } from '../harness/cluster.js';
import { deploy, partitionsOf, type Deployment } from './deployment.js';

let d: Deployment;
let store: SessionStore;
/** Keys with their value, by partition. */
const keys: Map<number, { key: string; value: string }[]> = new Map();
before(async () => {
  d = await deploy({ partitions: 4, servers: 2, queryTimeoutSeconds: 2 });
  store = connect({ connectionString: d.clientUrl, connections: 2 });
  for (let i = 0; i < 60; i++) {
    const value = `v${i}`;
    const key = await store.generate({ value });
    const p = (await partitionsOf(d.proxyUrl, [key]))[0] as number;
    keys.set(p, [...(keys.get(p) ?? []), { key, value }]);
  }
});
after(async () => {
  await store?.close();
  await d?.destroy();
});

const onCluster = (c: number) => [...keys.entries()].filter(([p]) => d.clusterOf[p] === c).flatMap(([, k]) => k);
async function failure(p: Promise<unknown>): Promise<SessionError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof SessionError) return err;
    throw err;
  }
  throw new Error('expected a SessionError');
}

describe('a partition server down', () => {
  test('the other partitions answer; the missing ones fail at once with `connection`; all recover', {
    timeout: 120_000,
  }, async (t) => {
    const up = onCluster(0);
    const down = onCluster(1);
    assert.ok(up.length > 0 && down.length > 0);
    const cluster = d.clusters[1] as Cluster;
    cluster.stop('immediate');
    try {
      for (const s of up) {
        const r = await store.get(s.key);
        assert.ok(r.ok && r.value === s.value);
        assert.equal(await store.set(s.key, `${s.value}+`), true);
        s.value = `${s.value}+`;
      }
      let slowest = 0;
      for (const s of down) {
        const started = performance.now();
        const e = await failure(store.get(s.key));
        slowest = Math.max(slowest, performance.now() - started);
        assert.equal(e.code, 'connection', e.message);
        assert.equal(e.sqlState, '08006');
        assert.ok(!e.message.includes(s.key));
        assert.equal((await failure(store.set(s.key, 'lost?'))).code, 'connection');
      }
      assert.ok(slowest < 10_000, `a call took ${slowest} ms`);
      t.diagnostic(`calls for a stopped partition failed after at most ${slowest.toFixed(0)} ms`);
      // A batch over every partition: the elements of the partitions that are up are applied; the
      // others fail alone with 08006 and were not applied (checked after the restart below).
      const c = new pg.Client({ connectionString: d.clientUrl });
      await c.connect();
      try {
        const elements = [...up.slice(0, 5), ...down.slice(0, 5)];
        const rows = (
          await c.query<{ ord: number; sqlstate: string | null; message: string | null; ok: boolean | null }>(
            'SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])',
            [elements.map(() => 'set'), elements.map((s) => s.key), elements.map((s) => `${s.value}!`), elements.map(() => null)],
          )
        ).rows;
        assert.deepEqual(
          rows.map((r) => [r.sqlstate, r.ok]),
          elements.map((_, i) => (i < Math.min(5, up.length) ? [null, true] : ['08006', null])),
        );
        for (const r of rows) assert.ok(!elements.some((s) => (r.message ?? '').includes(s.key)));
        for (const s of up.slice(0, 5)) s.value = `${s.value}!`;
        // Many gets in one call: it fails as a whole (08006) when a partition of its keys is down,
        // and answers when its keys are on the partitions that are up.
        const state = await c.query('SELECT * FROM session.session_get_batch($1::text[])', [[up[0]?.key, down[0]?.key]]).then(
          () => 'none',
          (err: { code?: string }) => String(err.code),
        );
        assert.equal(state, '08006');
        const found = (
          await c.query<{ ord: number; value: string }>('SELECT * FROM session.session_get_batch($1::text[])', [
            up.map((s) => s.key),
          ])
        ).rows;
        assert.deepEqual(
          found.map((r) => [r.ord, r.value]),
          up.map((s, i) => [i + 1, s.value]),
        );
      } finally {
        await c.end();
      }
      // The client's gets made together go as that call; when it fails for a partition that is
      // down, the client asks for each key alone: the partitions that are up answer theirs.
      // Interleaved: the client sends many gets as two calls, split by position.
      const all: { key: string; value: string; up: boolean }[] = [];
      for (let i = 0; i < Math.max(up.length, down.length); i++) {
        if (up[i] !== undefined) all.push({ ...(up[i] as { key: string; value: string }), up: true });
        if (down[i] !== undefined) all.push({ ...(down[i] as { key: string; value: string }), up: false });
      }
      const got = await Promise.allSettled(all.map((s) => store.get(s.key)));
      for (const [i, r] of got.entries()) {
        const s = all[i] as (typeof all)[number];
        if (s.up) assert.ok(r.status === 'fulfilled' && r.value.ok && r.value.value === s.value, `get ${i}`);
        else assert.ok(r.status === 'rejected' && (r.reason as SessionError).code === 'connection', `get ${i}`);
      }
      // Calls over every partition fail too; generate succeeds for keys of the partitions that are up.
      assert.equal((await failure(store.count())).code, 'connection');
      const made = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => store.generate({ value: `new${i}` })));
      const ok = made.filter((r): r is PromiseFulfilledResult<string> => r.status === 'fulfilled');
      assert.ok(ok.length > 0 && ok.length < 20, `${ok.length} of 20 generated`);
      for (const r of made) if (r.status === 'rejected') assert.equal((r.reason as SessionError).code, 'connection');
      for (const r of ok) assert.ok((await store.get(r.value)).ok);
    } finally {
      cluster.start();
    }
    // Back: each proxy connection may find its cached partition connection dead once, then reconnects.
    let failures = 0;
    for (const s of down) {
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await store.get(s.key);
          assert.ok(r.ok && r.value === s.value, 'a session of the restarted partition lost its value');
          break;
        } catch (err) {
          assert.ok(err instanceof SessionError && err.code === 'connection', String(err));
          assert.ok(attempt < 3, 'no recovery after 3 attempts');
          failures += 1;
        }
      }
    }
    t.diagnostic(`after the restart: ${failures} call(s) failed with \`connection\` before every partition answered again`);
    assert.equal(typeof (await store.count()), 'number');
  });
});

/**
 * The server process and its children: SIGSTOP makes the whole server hang (the kernel still
 * accepts connections; nothing answers).
 */
function signal(cluster: Cluster, sig: 'STOP' | 'CONT'): void {
  const pm = readFileSync(join(dirname(cluster.logFile), 'data', 'postmaster.pid'), 'utf8').split('\n')[0] as string;
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', pm], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  execFileSync('kill', [`-${sig}`, pm, ...children]);
}

describe('a partition server hung', () => {
  // PL/Proxy 2.10 checks query_timeout only when its wait loop wakes up, which a silent partition
  // never makes it do: without a statement_timeout on the caller's connection this call waits
  // forever. With one, the timeout's signal wakes the loop and PL/Proxy's query_timeout (2 s here,
  // shorter) or the statement_timeout itself ends the call.
  test("a partition backend that stops answering: the caller's statement timeout ends the call", {
    timeout: 120_000,
  }, async (t) => {
    const hung = onCluster(1);
    const fine = onCluster(0);
    // One proxy connection that has talked to every partition.
    const c = new pg.Client({ connectionString: d.clientUrl, statement_timeout: 3000 });
    await c.connect();
    try {
      await c.query('SELECT session.session_count()');
      const cluster = d.clusters[1] as Cluster;
      // The proxy's backends on that server stop; its postmaster still takes PL/Proxy's cancel request.
      const backends = (
        await d.query<{ pid: number }>(
          cluster.url,
          `SELECT pid FROM pg_stat_activity WHERE application_name = 'session-postgresql proxy'`,
        )
      ).rows.map((r) => String(r.pid));
      assert.ok(backends.length > 0);
      execFileSync('kill', ['-STOP', ...backends]);
      try {
        const started = performance.now();
        const err = await c.query('SELECT * FROM session.session_get($1)', [hung[0]?.key]).then(
          () => undefined,
          (e: pg.DatabaseError) => e,
        );
        const took = performance.now() - started;
        assert.ok(err?.code === '08006' || err?.code === '57014', err?.message);
        t.diagnostic(`statement_timeout 3 s, query_timeout 2 s: the call failed with ${err?.code} after ${took.toFixed(0)} ms`);
        assert.ok(took < 10_000);
        const r = await c.query('SELECT value FROM session.session_get($1)', [fine[0]?.key]);
        assert.equal(r.rows[0]?.value, fine[0]?.value);
      } finally {
        execFileSync('kill', ['-CONT', ...backends]);
      }
      const r = await c
        .query('SELECT value FROM session.session_get($1)', [hung[0]?.key])
        .catch(() => c.query('SELECT value FROM session.session_get($1)', [hung[0]?.key]));
      assert.equal(r.rows[0]?.value, hung[0]?.value);
    } finally {
      await c.end();
    }
  });

  test("when connecting: the caller's statement timeout ends the call (PL/Proxy has no connect timeout)", {
    timeout: 120_000,
  }, async (t) => {
    const hung = onCluster(1);
    const fresh = connect({ connectionString: d.clientUrl, connections: 1, statementTimeoutMs: 3000 });
    const cluster = d.clusters[1] as Cluster;
    signal(cluster, 'STOP');
    try {
      const started = performance.now();
      const e = await failure(fresh.get(hung[0]?.key as string));
      const took = performance.now() - started;
      assert.equal(e.code, 'statement_timeout', e.message);
      t.diagnostic(`statement_timeout 3 s: the call failed after ${took.toFixed(0)} ms`);
      assert.ok(took < 10_000);
    } finally {
      signal(cluster, 'CONT');
      await fresh.close();
    }
  });
});
