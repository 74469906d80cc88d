// The client, and the Express, Fastify and Koa stores, through a real PgBouncer (Debian's package,
// stock settings: no ignore_startup_parameters) in transaction and in session pooling, with
// `pooled: true`. Runs on a private cluster that logs every plan (auto_explain, nested, verbose)
// and every failing statement's parameters, where the app role's server connections default to
// custom plans: whatever server connection a statement lands on, no key may reach the log.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, SessionError, type GetResult } from '../src/index.js';
import { connectAdmin } from '../src/admin-index.js';
import { ExpressSessionStore } from '../src/express.js';
import { FastifySessionStore } from '../src/fastify.js';
import { KoaSessionStore } from '../src/koa.js';
import { expressApp, fastifyApp, koaApp, type TestApp } from './apps.js';
import { errorCode } from './helpers.js';
import type { Cluster } from './harness/cluster.js';
import { startLoggingCluster } from './harness/logs.js';
import { findPgBouncer, startPgBouncer, type PgBouncer } from './harness/pgbouncer.js';
import { Browser } from './web.js';

const skip =
  findPgBouncer() === undefined ? 'pgbouncer is not installed (Debian package `pgbouncer`; .ci/run installs it)' : false;
if (skip) console.log(`# SKIP test/pgbouncer.test.ts: ${skip}`);

let cluster: Cluster;
/** Every key a test made or sent: none may be in the server log. */
const keys: string[] = [];

before(async () => {
  if (skip) return;
  // Every server connection of the app role starts out with custom plans (keys as literals in
  // the plans auto_explain logs) and logs a failing call's parameters: only settings that travel
  // with each statement keep keys out of the log.
  cluster = await startLoggingCluster('bouncer', [
    `ALTER ROLE app SET plan_cache_mode = 'force_custom_plan'`,
    'ALTER ROLE app SET log_parameter_max_length_on_error = -1',
  ]);
});
after(() => cluster?.destroy());

const serverLog = () => readFileSync(cluster.logFile, 'utf8');
const count = (text: string, needle: string) => text.split(needle).length - 1;
const writeBatches = 'Query Text: SELECT ord, sqlstate, message, ok, key FROM session.session_write_batch';
const getBatches = 'Query Text: SELECT value, period, ord, version FROM session.session_get_batch';

/** A live session's get: the value, and a period that may have started to run down. */
function assertLive(got: GetResult, value: string, period = 604800): void {
  assert.ok(got.ok, `expected ${value}, got ${JSON.stringify(got)}`);
  assert.equal(got.value, value);
  assert.ok(got.period <= period && got.period > period - 60, `period ${got.period}`);
}

for (const poolMode of ['transaction', 'session'] as const) {
  describe(`through PgBouncer, ${poolMode} pooling`, { skip, timeout: 300_000 }, () => {
    let bouncer: PgBouncer;
    let appUrl = '';
    let opsUrl = '';
    before(async () => {
      bouncer = await startPgBouncer({ serverPort: cluster.port, poolMode, users: { app: 'pw', ops: 'pw', postgres: 'pw' } });
      appUrl = bouncer.url('bouncer', 'app', 'pw');
      opsUrl = bouncer.url('bouncer', 'ops', 'pw');
    });
    after(() => bouncer?.stop());

    test('without pooled: PgBouncer refuses the startup settings, and the error says what to do', async () => {
      const store = connect({ connectionString: appUrl });
      try {
        const err: unknown = await store.get('x'.repeat(43)).catch((e: unknown) => e);
        assert.ok(err instanceof SessionError);
        assert.equal(err.code, 'connection');
        assert.match(err.message, /unsupported startup parameter/);
        assert.match(err.message, /pooled: true/);
      } finally {
        await store.close();
      }
    });

    test('every call of the client succeeds with the right result, timeouts included', async () => {
      const store = connect({ connectionString: appUrl, pooled: true });
      const admin = connectAdmin({ connectionString: opsUrl, pooled: true, statementTimeoutMs: 60_000 });
      const appAsAdmin = connectAdmin({ connectionString: appUrl, pooled: true });
      try {
        for (let i = 0; i < 8; i += 1) {
          const key = await store.generate({ value: `v${i}` });
          keys.push(key);
          assertLive(await store.get(key), `v${i}`);
          assert.equal(await store.set(key, `w${i}`, { expiry: 600 }), true);
          assertLive(await store.get(key), `w${i}`, 600);
          assert.equal(await store.touch(key, { expiry: 900 }), true);
          const own = `put${i}_${'p'.repeat(40)}`;
          keys.push(own);
          assert.equal(await store.put(own, '{}'), true);
          assertLive(await store.get(own), '{}');
          const missing = `missing${i}_${'m'.repeat(40)}`;
          keys.push(missing);
          assert.deepEqual(await store.get(missing), { ok: false, error: 'not_found' });
          const unset = await store.generate();
          keys.push(unset);
          assert.deepEqual(await store.get(unset), { ok: false, error: 'not_set' });
          await store.clear(key);
          assert.deepEqual(await store.get(key), { ok: false, error: 'not_found' });
          assert.equal(await store.set(key, 'after clear'), false);
        }
        const alice = `alice_${poolMode}`;
        const login = await store.generate({ value: 'u', subject: alice, label: 'phone' });
        const other = await store.generate({ subject: alice });
        keys.push(login, other);
        assert.equal(await store.setSubject(other, alice, 'laptop'), true);
        const listed = await store.list(alice);
        assert.equal(listed.length, 2);
        const rotated = await store.rotate(login);
        assert.ok(rotated !== null);
        keys.push(rotated);
        assertLive(await store.get(rotated), 'u');
        assert.equal(await store.revokeHandle(alice, listed.find((s) => s.label === 'laptop')!.handle), true);
        assert.equal(await store.revoke(alice, { except: rotated }), 0);
        assert.ok((await store.count()) >= 1);
        assert.equal(await store.defaultPeriod(), 604800);
        assert.equal(await store.absoluteLifetime(), null);
        await admin.setDefaultPeriod(604800);
        await admin.setAbsoluteLifetime(null);
        assert.ok((await admin.purge()) >= 0);
        // Errors: each is its call's, and the stored value is kept.
        const kept = await store.generate({ value: 'kept' });
        keys.push(kept, `${kept}!`);
        assert.equal(await errorCode(store.set(kept, 'x'.repeat(1_048_577))), 'value_too_large');
        assert.equal(await errorCode(store.set(kept, 'x', { expiry: 3_155_760_001 })), 'invalid_parameter');
        assert.equal(await errorCode(store.put(`${kept}!`, 'x')), 'invalid_parameter');
        assert.equal(await errorCode(appAsAdmin.setDefaultPeriod(1)), 'permission_denied');
        assertLive(await store.get(kept), 'kept');
      } finally {
        await store.close();
        await admin.close();
        await appAsAdmin.close();
      }
    });

    test('statementTimeoutMs and lockTimeoutMs reach the server with each statement', async () => {
      const key = await (async () => {
        const s = connect({ connectionString: appUrl, pooled: true });
        try {
          return await s.generate({ value: 'v' });
        } finally {
          await s.close();
        }
      })();
      keys.push(key);
      const owner = new pg.Client({ connectionString: cluster.urlFor('bouncer') });
      await owner.connect();
      const timed = connect({ connectionString: appUrl, pooled: true, statementTimeoutMs: 1000 });
      const locked = connect({ connectionString: appUrl, pooled: true, lockTimeoutMs: 1000 });
      try {
        await owner.query('BEGIN');
        await owner.query('LOCK TABLE session.sessions IN ACCESS EXCLUSIVE MODE');
        assert.equal(await errorCode(timed.get(key)), 'statement_timeout');
        assert.equal(await errorCode(locked.get(key)), 'lock_timeout');
        await owner.query('ROLLBACK');
        // Transaction-local: the next statement on that server connection has the server's settings again.
        const raw = new pg.Client({ connectionString: appUrl });
        await raw.connect();
        try {
          const r = await raw.query(`SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt`);
          assert.deepEqual(r.rows[0], { st: '0', lt: '0' });
        } finally {
          await raw.end();
        }
        assertLive(await timed.get(key), 'v');
      } finally {
        await owner.query('ROLLBACK').catch(() => {});
        await owner.end();
        await timed.close();
        await locked.close();
      }
    });

    test('concurrent calls are batched: group commit and read batching', async (t) => {
      const store = connect({ connectionString: appUrl, pooled: true });
      try {
        const before = serverLog();
        const made = await Promise.all(Array.from({ length: 400 }, (_, i) => store.generate({ value: `c${i}` })));
        keys.push(...made);
        assert.equal(new Set(made).size, 400);
        const got = await Promise.all(made.map((k) => store.get(k)));
        for (const [i, g] of got.entries()) assertLive(g, `c${i}`);
        const set = await Promise.all(made.map((k, i) => store.set(k, `d${i}`)));
        assert.ok(set.every((ok) => ok));
        const again = await Promise.all(made.map((k) => store.get(k)));
        for (const [i, g] of again.entries()) assertLive(g, `d${i}`);
        const log = serverLog().slice(before.length);
        const writes = count(log, writeBatches);
        const reads = count(log, getBatches);
        // 800 writes and 800 reads: batched, they took far fewer statements.
        assert.ok(writes >= 1 && writes < 400, `${writes} write batches`);
        assert.ok(reads >= 1 && reads < 400, `${reads} read batches`);
        t.diagnostic(`800 writes in ${writes} batch statements, 800 gets in ${reads} batch statements`);
      } finally {
        await store.close();
      }
    });

    test('the Express, Fastify and Koa stores: login, read, change, log out', async () => {
      const stores = [
        new ExpressSessionStore({ connectionString: appUrl, pooled: true }),
        new FastifySessionStore({ connectionString: appUrl, pooled: true }),
        new KoaSessionStore({ connectionString: appUrl, pooled: true }),
      ] as const;
      const apps: TestApp[] = [];
      try {
        apps.push(await expressApp(stores[0]), await fastifyApp(stores[1]), await koaApp(stores[2]));
        for (const app of apps) {
          const b = new Browser(app.base);
          assert.equal((await b.post('/login')).status, 200, app.name);
          keys.push(app.sidOf(b));
          assert.equal((await b.get('/whoami')).body, JSON.stringify({ user: 'alice', role: 'admin', note: null }), app.name);
          assert.equal((await b.post('/downgrade')).body, 'ok');
          assert.equal((await b.post('/regenerate')).body, 'ok');
          keys.push(app.sidOf(b));
          assert.equal((await b.post('/note')).body, 'ok');
          assert.equal((await b.get('/whoami')).body, JSON.stringify({ user: 'alice', role: 'user', note: 'B' }), app.name);
          assert.equal((await b.post('/logout')).body, 'bye');
          assert.equal((await b.get('/whoami')).body, 'nobody', app.name);
        }
      } finally {
        for (const app of apps) await app.close();
        for (const s of stores) await s.close();
      }
    });

    test('two stores sharing a pool of 3 server connections: every call is served', async () => {
      const small = await startPgBouncer({
        serverPort: cluster.port,
        poolMode,
        users: { app: 'pw' },
        // Well below the default 120 s, so that a store holding too many server connections fails here.
        settings: ['default_pool_size = 3', 'query_wait_timeout = 15'],
      });
      const url = small.url('bouncer', 'app', 'pw');
      const stores = [connect({ connectionString: url, pooled: true }), connect({ connectionString: url, pooled: true })];
      try {
        await Promise.all(
          stores.map(async (store, s) => {
            const mine = await Promise.all(Array.from({ length: 50 }, (_, i) => store.generate({ value: `${s}:${i}` })));
            keys.push(...mine);
            for (let round = 0; round < 10; round += 1) {
              const got = await Promise.all(mine.map((k) => store.get(k)));
              for (const [i, g] of got.entries()) assertLive(g, `${s}:${i}${round === 0 ? '' : `:${round - 1}`}`);
              assert.ok((await Promise.all(mine.map((k, i) => store.set(k, `${s}:${i}:${round}`)))).every((ok) => ok));
            }
          }),
        );
      } finally {
        for (const store of stores) await store.close();
        await small.stop();
      }
    });

    test('no key in the server log, on whatever server connection each statement ran', (t) => {
      const log = serverLog();
      // The log is auto_explain's: the calls left their plans there.
      assert.match(log, /Query Text: SELECT value, period, NULL::integer AS ord, version FROM session\.session_get\(\$1::text\)/);
      assert.ok(keys.length > 400);
      for (const key of keys) assert.ok(!log.includes(key), `a key is in the server log (${key.slice(0, 6)}…)`);
      t.diagnostic(`${keys.length} keys, ${log.split('\n').length} log lines: no key`);
    });
  });
}

test('pooled: timeouts that are not non-negative integers are refused at connect, before any connection', () => {
  for (const bad of [-1, 1.5, Number.NaN]) {
    assert.throws(
      () => connect({ host: '127.0.0.1', port: 1, pooled: true, statementTimeoutMs: bad }),
      (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
    );
    assert.throws(
      () => connect({ host: '127.0.0.1', port: 1, pooled: true, lockTimeoutMs: bad }),
      (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument',
    );
  }
});

describe('the server log setup catches keys', { skip }, () => {
  test('an unnamed statement through PgBouncer without the settings: its key is in the log', async () => {
    // What a client that sends no settings leaves in this log; otherwise the tests above prove nothing.
    const bouncer = await startPgBouncer({ serverPort: cluster.port, poolMode: 'transaction', users: { app: 'pw' } });
    const literal = `probe_${'q'.repeat(40)}`;
    const raw = new pg.Client({ connectionString: bouncer.url('bouncer', 'app', 'pw') });
    await raw.connect();
    try {
      await raw.query('SELECT value, period FROM session.session_get($1::text)', [literal]);
    } finally {
      await raw.end();
      await bouncer.stop();
    }
    assert.ok(serverLog().includes(literal));
  });
});
