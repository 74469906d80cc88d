// A real synchronous standby (pg_basebackup -R) next to a primary, both on loopback: reads on the
// hot standby, host selection by target_session_attrs, and a promotion under write load.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { migrationStatus } from '../src/admin-index.js';
import { connector } from '../src/connection.js';
import { findBindir } from './harness/cluster.js';
import { installApp, startReplicatedPair, type ReplicatedPair } from './harness/standby.js';
import { cli, errorCode } from './helpers.js';

let pair: ReplicatedPair;
let primaryApp = '';
let standbyApp = '';
/** Both hosts, primary first, for the app role. */
const both = (attrs: string, order: 'primary first' | 'standby first' = 'primary first') => {
  const hosts = [`127.0.0.1:${pair.primary.port}`, `127.0.0.1:${pair.standby.port}`];
  if (order === 'standby first') hosts.reverse();
  return `postgresql://app@${hosts.join(',')}/app?target_session_attrs=${attrs}`;
};

const basebackup = join(findBindir(), 'pg_basebackup');
const skip = existsSync(basebackup) ? false : `no ${basebackup}: these tests make a standby with it`;
if (skip) console.log(`# skipped: ${skip}`);

describe('a primary and its synchronous standby', { skip }, () => {
  before(async () => {
    // remote_apply: a commit is acknowledged once the standby has applied it, so that a read on
    // the standby right after an acknowledged write sees it (what the hot-standby docs promise).
    pair = await startReplicatedPair(['synchronous_commit = remote_apply']);
    await installApp(pair.primary.url, pair.primary.urlFor('app'));
    primaryApp = pair.primary.urlFor('app', 'app');
    standbyApp = pair.standby.urlFor('app', 'app');
  });
  after(() => pair?.destroy());

  describe('hot standby', () => {
    let primary: SessionStore;
    let standby: SessionStore;
    before(() => {
      primary = connect({ connectionString: primaryApp });
      standby = connect({ connectionString: standbyApp });
    });
    after(async () => {
      await primary.close();
      await standby.close();
    });

    test('gets, batched gets, count and list work on the standby', async () => {
      const keys = await Promise.all(Array.from({ length: 40 }, (_, i) => primary.generate({ value: `v${i}`, expiry: 3600 })));
      const subjectKey = await primary.generate({ value: 'device', subject: 'standby-user', label: 'phone' });
      // Forty gets in one tick go as batched calls of session_get_batch.
      const got = await Promise.all(keys.map((k) => standby.get(k)));
      for (const [i, r] of got.entries()) assert.deepEqual(r.ok && r.value, `v${i}`);
      assert.equal(await standby.count(), await primary.count());
      const listed = await standby.list('standby-user');
      assert.equal(listed.length, 1);
      assert.equal(listed[0]?.label, 'phone');
      assert.deepEqual(await standby.get('not-a-key'), { ok: false, error: 'not_found' });
      const r = await standby.get(subjectKey);
      assert.ok(r.ok && r.value === 'device');
    });

    test('writes on the standby fail with `read_only` (25006) and change nothing', async () => {
      const key = await primary.generate({ value: 'kept', expiry: 3600 });
      const writes: [string, () => Promise<unknown>][] = [
        ['generate', () => standby.generate({ value: 'x' })],
        ['set', () => standby.set(key, 'changed')],
        ['touch', () => standby.touch(key)],
        ['clear', () => standby.clear(key)],
        ['rotate', () => standby.rotate(key)],
      ];
      for (const [what, write] of writes) {
        const err = await write().then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof SessionError, what);
        assert.equal(err.code, 'read_only', what);
        assert.equal(err.sqlState, '25006', what);
      }
      // Many writes at once go as one batch; each caller gets the error.
      const batch = await Promise.all(Array.from({ length: 10 }, () => errorCode(standby.set(key, 'changed'))));
      assert.deepEqual(new Set(batch), new Set(['read_only']));
      const r = await primary.get(key);
      assert.ok(r.ok && r.value === 'kept');
    });

    test('with synchronous_commit = remote_apply, the standby reads every acknowledged write at once (250 generates, 250 clears)', async (t) => {
      let missed = 0;
      let stillThere = 0;
      for (let i = 0; i < 250; i += 1) {
        const key = await primary.generate({ value: `r${i}` });
        if (!(await standby.get(key)).ok) missed += 1;
        await primary.clear(key);
        if ((await standby.get(key)).ok) stillThere += 1;
      }
      t.diagnostic(
        `remote_apply: ${missed} of 250 reads after a generate missed, ${stillThere} of 250 reads after a clear still found the session`,
      );
      assert.equal(missed, 0);
      assert.equal(stillThere, 0);
      // For comparison, what the docs warn about: with synchronous_commit = on the standby has the
      // write on disk when it is acknowledged, but may not have applied it yet.
      const onlyFlushed = connect({ connectionString: primaryApp, options: '-c synchronous_commit=on' });
      let missedOn = 0;
      try {
        for (let i = 0; i < 500; i += 1) {
          if (!(await standby.get(await onlyFlushed.generate({ value: 'x' }))).ok) missedOn += 1;
        }
      } finally {
        await onlyFlushed.close();
      }
      t.diagnostic(`synchronous_commit = on: ${missedOn} of 500 reads on the standby right after a generate missed`);
    });
  });

  describe('target_session_attrs picks the host', () => {
    /** The port of the server a connection chosen by `url` reaches. */
    async function portChosen(url: string): Promise<number> {
      const c = await connector({ connectionString: url }).connect({});
      try {
        return Number((await c.query('SELECT inet_server_port() AS p')).rows[0]?.p);
      } finally {
        await c.end();
      }
    }

    test('as libpq: any, read-write, primary, read-only, standby, prefer-standby', async () => {
      const p = pair.primary.port;
      const s = pair.standby.port;
      const cases: [string, 'primary first' | 'standby first', number][] = [
        ['any', 'primary first', p],
        ['any', 'standby first', s],
        ['read-write', 'standby first', p],
        ['primary', 'standby first', p],
        ['read-only', 'primary first', s],
        ['standby', 'primary first', s],
        ['prefer-standby', 'primary first', s],
      ];
      for (const [attrs, order, expected] of cases) {
        assert.equal(await portChosen(both(attrs, order)), expected, `${attrs}, ${order}`);
      }
      // prefer-standby without a standby reachable: any host.
      assert.equal(await portChosen(`postgresql://app@127.0.0.1:${p}/app?target_session_attrs=prefer-standby`), p);
    });

    test('migrate and the CLI take the same URLs', async () => {
      const url = both('read-write', 'standby first').replace('app@', 'postgres@');
      const states = await migrationStatus({ connectionString: url });
      assert.ok(states.length > 0 && states.every((m) => m.applied));
      const status = cli(['status', '--database-url', url]);
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`applied {2}${states[0]!.name}`));
      const bad = cli(['status', '--database-url', `${url.replace('read-write', 'writable')}`]);
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, /target_session_attrs must be one of/);
    });

    test('conninfo host and port lists', async () => {
      const c = await connector({
        conninfo: `host=127.0.0.1,127.0.0.1 port=${pair.standby.port},${pair.primary.port} dbname=app user=app target_session_attrs=read-write`,
      }).connect({});
      try {
        assert.equal(Number((await c.query('SELECT inet_server_port() AS p')).rows[0]?.p), pair.primary.port);
      } finally {
        await c.end();
      }
    });

    test('no host fits: `connection`, naming each host and why', async () => {
      const store = connect({
        connectionString: `postgresql://app@127.0.0.1:${pair.standby.port}/app?target_session_attrs=read-write`,
      });
      try {
        const err = await store.generate().then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof SessionError);
        assert.equal(err.code, 'connection');
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${pair.standby.port} \\(not read-write\\)`));
      } finally {
        await store.close();
      }
    });

    test('a store with prefer-standby reads from the standby and cannot write there', async () => {
      const key = await (async () => {
        const s = connect({ connectionString: primaryApp });
        try {
          return await s.generate({ value: 'from the primary' });
        } finally {
          await s.close();
        }
      })();
      const store = connect({ connectionString: both('prefer-standby') });
      try {
        const r = await store.get(key);
        assert.ok(r.ok && r.value === 'from the primary');
        assert.equal(await errorCode(store.set(key, 'x')), 'read_only');
      } finally {
        await store.close();
      }
    });

    test('malformed lists and unknown target_session_attrs: `invalid_argument`, nothing sent', () => {
      for (const options of [
        { connectionString: both('sometimes') },
        { connectionString: 'postgresql://app@127.0.0.1:1,:2/app' },
        { host: 'a,b,c', port: '1,2' },
        { conninfo: 'host=a target_session_attrs=primaryish' },
      ]) {
        assert.throws(
          () => connect(options),
          (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
          JSON.stringify(options),
        );
      }
    });
  });

  describe('promotion under write load', () => {
    test('0 acknowledged writes lost, every call settles by its deadline, writes again within 10 s', async (t) => {
      const statementTimeoutMs = 2000;
      /** The deadline the client promises: statementTimeoutMs + max(250 ms, a tenth), checked every half margin. */
      const limit = statementTimeoutMs + 250 + 125;
      const store = connect({ connectionString: both('read-write'), statementTimeoutMs, connectTimeoutMs: 2000 });
      const acked = new Map<string, string>();
      const errors = new Map<string, number>();
      let longest = 0;
      let promotedAt = 0;
      let primaryStoppedAt = 0;
      let firstWriteOnNew = 0;
      let stop = false;
      const worker = async (w: number) => {
        for (let n = 0; !stop; n += 1) {
          const value = `w${w}-${n}`;
          const started = performance.now();
          try {
            const key = await store.generate({ value, expiry: 3600 });
            acked.set(key, value);
            if (primaryStoppedAt > 0 && firstWriteOnNew === 0) firstWriteOnNew = performance.now();
          } catch (err) {
            const code = err instanceof SessionError ? err.code : String(err);
            errors.set(code, (errors.get(code) ?? 0) + 1);
            // While no host takes writes every call fails at once: don't spin.
            await sleep(20);
          } finally {
            longest = Math.max(longest, performance.now() - started);
          }
        }
      };
      const workers = Array.from({ length: 16 }, (_, w) => worker(w));
      try {
        await sleep(1500);
        const before = acked.size;
        pair.standby.promote();
        promotedAt = performance.now();
        // Until the old primary is stopped (fencing, as an HA manager does), it still takes
        // connections, and its commits wait for a standby that is gone: longer than the deadline.
        await sleep(3000);
        pair.primary.stop('immediate');
        primaryStoppedAt = performance.now();
        for (let i = 0; i < 150 && firstWriteOnNew === 0; i += 1) await sleep(100);
        await sleep(500);
        stop = true;
        await Promise.all(workers);
        t.diagnostic(
          `${before} writes before the promotion, ${acked.size} acknowledged in all; errors: ${JSON.stringify(Object.fromEntries(errors))}`,
        );
        t.diagnostic(
          `writes again ${Math.round(firstWriteOnNew - promotedAt)} ms after the promotion (old primary stopped after ${Math.round(primaryStoppedAt - promotedAt)} ms); longest call ${Math.round(longest)} ms (deadline ${limit} ms)`,
        );
        assert.ok(firstWriteOnNew > 0, 'the store never wrote to the new primary');
        assert.ok(firstWriteOnNew - promotedAt < 10_000, 'writes resumed more than 10 s after the promotion');
        // The deadline plus slack for a machine shared with other test runs.
        assert.ok(longest < limit + 1000, `a call took ${Math.round(longest)} ms`);
        for (const code of errors.keys()) assert.ok(code === 'timeout' || code === 'connection', `unexpected error ${code}`);
        // The writes in flight on the old primary waited for the gone standby until the deadline.
        assert.ok((errors.get('timeout') ?? 0) > 0, 'no call timed out on the old primary');
      } finally {
        stop = true;
        await Promise.all(workers);
        await store.close();
      }
      // Every acknowledged write is on the new primary, with its value.
      const check = connect({ connectionString: standbyApp });
      try {
        const entries = [...acked];
        let missing = 0;
        for (let i = 0; i < entries.length; i += 200) {
          const part = entries.slice(i, i + 200);
          const got = await Promise.all(part.map(([k]) => check.get(k)));
          got.forEach((r, j) => {
            if (!(r.ok && r.value === part[j]?.[1])) missing += 1;
          });
        }
        t.diagnostic(`${missing} of ${entries.length} acknowledged writes missing on the new primary`);
        assert.equal(missing, 0);
      } finally {
        await check.close();
      }
    });
  });
});
