// Session keys never reach the server log or an error object, even where a DBA logs every plan
// (auto_explain with nested statements and verbose output) and a role raised
// log_parameter_max_length_on_error. Runs on a private cluster that preloads auto_explain.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, migrate, SessionError, type SessionStore } from '../src/index.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { databaseUrl } from './harness/urls.js';

let cluster: Cluster;
let appUrl = '';
let opsUrl = '';
before(async () => {
  cluster = await startCluster({
    cron: false,
    settings: [
      `shared_preload_libraries = 'auto_explain'`, 'auto_explain.log_min_duration = 0',
      'auto_explain.log_nested_statements = on', 'auto_explain.log_verbose = on', 'auto_explain.log_analyze = on',
      // Every role's default here: parameters of failing statements are logged in full.
      'log_parameter_max_length_on_error = -1', 'log_error_verbosity = verbose', 'log_min_error_statement = error',
    ],
  });
  const admin = cluster.urlFor('postgres');
  // From PostgreSQL 16 on, auto_explain logs every statement's parameters unless told not to: the
  // DBA setting docs/security.md asks for where auto_explain runs (it does not exist before 16).
  const dba = new pg.Client({ connectionString: admin });
  await dba.connect();
  const version = Number((await dba.query('SHOW server_version_num')).rows[0]?.server_version_num);
  if (version >= 160000) await dba.query('ALTER SYSTEM SET auto_explain.log_parameter_max_length = 0');
  await dba.end();
  if (version >= 160000) {
    cluster.stop();
    cluster.start();
  }
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query('CREATE DATABASE logs');
    await migrate({ connectionString: cluster.urlFor('logs'), log: false });
    await c.query(`CREATE ROLE app LOGIN PASSWORD 'pw' IN ROLE session_client`);
    await c.query(`CREATE ROLE ops LOGIN PASSWORD 'pw' IN ROLE session_admin`);
  } finally {
    await c.end();
  }
  appUrl = databaseUrl(cluster.urlFor('logs'), 'logs', { user: 'app', password: 'pw' });
  opsUrl = databaseUrl(cluster.urlFor('logs'), 'logs', { user: 'ops', password: 'pw' });
});
after(() => cluster?.destroy());

const serverLog = () => readFileSync(cluster.logFile, 'utf8');
const framework = (label: string) => `${label}_${'x'.repeat(40)}`.slice(0, 44);

async function rejection(p: Promise<unknown>): Promise<SessionError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof SessionError, String(err));
    return err;
  }
  throw new Error('expected a rejection');
}

describe('keys in logs and errors', { timeout: 60_000 }, () => {
  test('every API call through the client, successes and errors: no key in the log or in util.inspect(error)', async (t) => {
    const store: SessionStore = connect({ connectionString: appUrl });
    const admin: SessionStore = connect({ connectionString: opsUrl, connections: 1 });
    const keys: string[] = [];
    const inspected: string[] = [];
    try {
      // More than five calls of each: past the point where PostgreSQL would switch plans.
      for (let i = 0; i < 8; i += 1) {
        const key = await store.generate({ value: `v${i}` });
        keys.push(key, await store.generate());
        assert.ok((await store.get(key)).ok);
        assert.equal(await store.set(key, `w${i}`, { expiry: 600 }), true);
        assert.equal(await store.touch(key, { expiry: 900 }), true);
        const own = framework(`put${i}`);
        keys.push(own, `missing-key-${i}-${'m'.repeat(30)}`);
        assert.equal(await store.put(own, '{}'), true);
        assert.deepEqual(await store.get(keys[keys.length - 1]!), { ok: false, error: 'not_found' });
        await store.clear(key);
        assert.equal(await store.set(key, 'after clear'), false);
      }
      const errorKey = await store.generate({ value: 'kept' });
      keys.push(errorKey);
      for (const [call, code] of [
        [() => store.set(errorKey, 'x'.repeat(1_048_577)), 'value_too_large'],
        [() => store.set(errorKey, 'x', { expiry: 3_155_760_001 }), 'invalid_parameter'],
        [() => store.touch(errorKey, { expiry: -3_155_760_001 }), 'invalid_parameter'],
        [() => store.put(`${errorKey}!`, 'x'), 'invalid_parameter'],
        [() => store.put(errorKey, 'x'.repeat(1_048_577)), 'value_too_large'],
      ] as const) {
        const err = await rejection(call());
        assert.equal(err.code, code);
        inspected.push(inspect(err, { depth: 10 }));
      }
      keys.push(`${errorKey}!`);
      assert.ok((await store.count()) >= 1);
      await store.defaultPeriod();
      await admin.purge();
      await admin.setDefaultPeriod(604800);
    } finally {
      await store.close();
      await admin.close();
    }

    const log = serverLog();
    // The log is the one auto_explain writes to: every call left a plan there.
    assert.match(log, /Query Text: SELECT value, period FROM session\.session_get\(\$1::text\)/);
    assert.match(log, /unnamed portal|Query Text: UPDATE session\.sessions/);
    for (const key of keys) assert.ok(!log.includes(key), `a key is in the server log (${key.slice(0, 6)}…)`);
    for (const text of inspected) for (const key of keys) assert.ok(!text.includes(key), 'a key is in util.inspect(error)');
    t.diagnostic(`${keys.length} keys, ${inspected.length} errors, ${log.split('\n').length} log lines with auto_explain (nested, verbose): no key`);
  });

  test('a role that raises log_parameter_max_length_on_error itself: the error object still holds no key', async () => {
    // The caller's own options win over the client's; the server then sends the key back in `where`.
    const store = connect({ connectionString: appUrl, options: '-c log_parameter_max_length_on_error=-1' });
    try {
      const key = await store.generate({ value: 'kept' });
      const err = await rejection(store.set(key, 'x'.repeat(1_048_577)));
      assert.equal(err.code, 'value_too_large');
      const raw = new pg.Client({ connectionString: appUrl, options: '-c log_parameter_max_length_on_error=-1' });
      await raw.connect();
      try {
        // What the driver alone would hand to an application's error logger.
        const driverError = await raw.query('SELECT session.session_set($1, $2)', [key, 'x'.repeat(1_048_577)]).then(() => undefined, (e: unknown) => e);
        assert.ok(inspect(driverError).includes(key), 'the server did not send the parameters back: this test proves nothing');
      } finally {
        await raw.end();
      }
      assert.ok(!inspect(err, { depth: 10 }).includes(key));
      assert.ok(!JSON.stringify(err).includes(key));
      assert.ok(!String(err.stack).includes(key));
    } finally {
      await store.close();
    }
  });

  test('a literal key in SQL text is logged like any literal (what the docs warn DBAs about)', async () => {
    const literal = `literal_${'l'.repeat(40)}`;
    const c = new pg.Client({ connectionString: appUrl });
    await c.connect();
    try {
      await c.query(`SELECT * FROM session.session_get('${literal}')`);
    } finally {
      await c.end();
    }
    assert.ok(serverLog().includes(literal));
  });
});
