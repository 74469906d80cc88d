// Session keys never reach the server log or an error object, even where a DBA logs every plan
// (auto_explain with nested statements and verbose output) and a role raised
// log_parameter_max_length_on_error. Runs on a private cluster that preloads auto_explain.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { connectAdmin, type SessionAdmin } from '../src/admin-index.js';
import type { Cluster } from './harness/cluster.js';
import { startLoggingCluster } from './harness/logs.js';
import { databaseUrl } from './harness/urls.js';

let cluster: Cluster;
let appUrl = '';
let opsUrl = '';
let proxyUrl = '';
before(async () => {
  cluster = await startLoggingCluster('logs', [`CREATE ROLE proxied LOGIN PASSWORD 'pw' IN ROLE session_proxy`]);
  appUrl = databaseUrl(cluster.urlFor('logs'), 'logs', { user: 'app', password: 'pw' });
  opsUrl = databaseUrl(cluster.urlFor('logs'), 'logs', { user: 'ops', password: 'pw' });
  proxyUrl = databaseUrl(cluster.urlFor('logs'), 'logs', { user: 'proxied', password: 'pw' });
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
  // pooled: no settings when connecting, unnamed statements: each statement carries its settings.
  for (const [label, options] of [
    ['', {}],
    [' with pooled: true', { pooled: true }],
  ] as const) {
    test(`every API call through the client${label}, successes and errors: no key in the log or in util.inspect(error)`, async (t) => {
      const store: SessionStore = connect({ connectionString: appUrl, ...options });
      const admin: SessionAdmin = connectAdmin({ connectionString: opsUrl, connections: 1, ...options });
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
          const merged = await store.generate({ value: '{"a":1}' });
          keys.push(merged);
          const { version } = (await store.get(merged)) as { version: number };
          // Alone, then two at once (group commit), then conditional: a write and a conflict.
          assert.equal(await store.merge(merged, { set: { b: i }, unset: ['a'] }, { expiry: 600 }), true);
          assert.deepEqual(await Promise.all([store.merge(merged, { set: { c: i } }), store.merge(merged, { unset: ['c'] })]), [
            true,
            true,
          ]);
          assert.equal(
            await store.set(merged, '{"d":1}', { ifVersion: version + 100 }).then(
              () => 'written',
              (e: SessionError) => e.code,
            ),
            'conflict',
          );
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
          [() => store.merge(errorKey, { set: { a: 1 } }), 'not_object'],
          [() => store.merge(errorKey, { set: { a: 1 } }, { ifVersion: 1 }), 'conflict'],
          [() => store.merge(errorKey, { set: { a: 1 } }, { expiry: 3_155_760_001 }), 'invalid_parameter'],
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
      assert.match(log, /Query Text: SELECT value, period, NULL::integer AS ord, version FROM session\.session_get\(\$1::text\)/);
      assert.match(log, /unnamed portal|Query Text: UPDATE session\.sessions/);
      for (const key of keys) assert.ok(!log.includes(key), `a key is in the server log (${key.slice(0, 6)}…)`);
      for (const text of inspected) for (const key of keys) assert.ok(!text.includes(key), 'a key is in util.inspect(error)');
      t.diagnostic(
        `${keys.length} keys, ${inspected.length} errors, ${log.split('\n').length} log lines with auto_explain (nested, verbose): no key`,
      );
    });
  }

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
        const driverError = await raw.query('SELECT session.session_set($1, $2)', [key, 'x'.repeat(1_048_577)]).then(
          () => undefined,
          (e: unknown) => e,
        );
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

  test('a plain driver that sets nothing: no key in any statement a function runs (single, batch, errors, generated keys)', async (t) => {
    // The caller's own statement (marked) is the caller's business: its custom plan shows its
    // parameters, and so does an error's context here (log_parameter_max_length_on_error = -1).
    const mark = '/* caller */';
    const keys: string[] = [];
    const from = serverLog().length;
    for (const [round, options] of [undefined, '-c plan_cache_mode=force_custom_plan'].entries()) {
      const c = new pg.Client({ connectionString: appUrl, ...(options === undefined ? {} : { options }) });
      // What a PL/Proxy proxy calls on a partition, as its login there.
      const proxy = new pg.Client({ connectionString: proxyUrl, ...(options === undefined ? {} : { options }) });
      await proxy.connect();
      await c.connect();
      const q = async (text: string, values: unknown[]) => (await c.query(`${mark} ${text}`, values)).rows;
      const fails = async (text: string, values: unknown[]) =>
        assert.ok(
          await q(text, values).then(
            () => false,
            () => true,
          ),
          text,
        );
      try {
        // More than five calls of each on this connection: custom plans first, then whatever the server picks.
        for (let i = 0; i < 7; i += 1) {
          const key = (await q('SELECT session.session_generate($1, $2) AS k', [600, `v${i}`]))[0]?.k as string;
          const own = framework(`plain${i}`);
          const missing = `plain-missing-${i}-${'m'.repeat(30)}`;
          keys.push(key, own, missing);
          await q('SELECT * FROM session.session_get($1)', [key]);
          await q('SELECT session.session_set($1, $2, $3)', [key, `w${i}`, 600]);
          await q('SELECT session.session_touch($1, $2)', [key, 900]);
          await q('SELECT session.session_put($1, $2, $3)', [own, '{}', null]);
          await fails('SELECT session.session_put($1, $2, $3)', [`${own}!`, '{}', null]);
          await fails('SELECT session.session_set($1, $2, $3)', [key, 'x', 3_155_760_001]);
          await q('SELECT session.session_set_subject($1, $2, $3)', [key, `user${i}`, 'laptop']);
          await q('SELECT * FROM session.session_get_batch($1::text[])', [[key, own, missing, null, key]]);
          const mk = (await q('SELECT session.session_generate($1, $2) AS k', [600, '{"a": 1}']))[0]?.k as string;
          keys.push(mk);
          const v = (await q('SELECT version FROM session.session_get($1)', [mk]))[0]?.version as string;
          await q('SELECT session.session_merge($1, $2::jsonb, $3::text[], $4, $5)', [mk, '{"m": 1}', ['a'], 600, v]);
          await fails('SELECT session.session_merge($1, $2::jsonb, $3::text[], $4, $5)', [mk, '{"m": 2}', null, null, v]);
          await fails('SELECT session.session_merge($1, $2::jsonb)', [key, '{"m": 3}']);
          await q('SELECT session.session_set($1, $2, $3, $4)', [missing, '{}', null, v]);
          const written = await q(
            'SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])',
            [
              ['set', 'touch', 'put', 'generate', 'put', 'clear', 'set', 'merge', 'merge', 'merge'],
              [key, own, missing, null, 'short', missing, key, mk, mk, key],
              ['a', null, 'b', 'c', 'd', null, 'x'.repeat(1_048_577), '{"set": {"n": 1}}', '{"unset": ["n"]}', '{"set": {}}'],
              [null, 60, null, null, null, null, null, null, null, null],
              [null, null, null, null, null, null, null, null, '1', null],
            ],
          );
          keys.push(...written.map((r) => r.key as string | null).filter((k): k is string => k !== null));
          const rotated = (await q('SELECT session.session_rotate($1) AS k', [key]))[0]?.k as string;
          keys.push(rotated);
          await q('SELECT session.session_revoke($1, $2)', [`user${i}`, rotated]);
          await q('SELECT session.session_clear($1)', [own]);
          const made = [framework(`pgen${round}${i}`), framework(`pbatch${round}${i}`), framework(`prot${round}${i}`)];
          keys.push(...made);
          await proxy.query(`${mark} SELECT session.partition_generate($1, $2, $3)`, [made[0], 600, 'v']);
          await proxy.query(
            `${mark} SELECT * FROM session.partition_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])`,
            [
              ['generate', 'set', 'put', 'merge', 'clear'],
              [made[1], made[0], own, own, made[0]],
              ['g', 's', '{"p": 1}', '{"set": {"q": 2}}', null],
              [null, null, null, null, null],
              [null, null, null, '1', null],
            ],
          );
          await proxy.query(`${mark} SELECT session.partition_rotate($1, $2)`, [made[1], made[2]]);
          assert.ok(
            await proxy.query(`${mark} SELECT session.partition_generate($1)`, ['short']).then(
              () => false,
              () => true,
            ),
          );
        }
      } finally {
        await c.end();
        await proxy.end();
      }
    }
    const entries = serverLog()
      .slice(from)
      .split(/\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)/);
    const caller = (e: string) => e.includes(mark) || /parameters: \$1 = /.test(e);
    const nested = entries.filter((e) => /Query Text:/.test(e) && !caller(e));
    // The statements of the batch functions were logged, nested: the test sees what it checks.
    assert.ok(
      nested.some((e) => /session\.sessions/.test(e)),
      'no nested statement in the log',
    );
    assert.ok(
      entries.some((e) => caller(e) && keys.some((k) => e.includes(k))),
      "the caller's own plans hold no key: this test proves nothing",
    );
    for (const e of entries.filter((x) => !caller(x))) {
      for (const key of keys)
        assert.ok(
          !e.includes(key),
          `a key (${key.slice(0, 6)}…) is in a statement a function ran:\n${e.replaceAll(key, '<key>').slice(0, 1500)}`,
        );
    }
    t.diagnostic(`${keys.length} keys, ${nested.length} nested plans logged: no key outside the caller's own statement`);
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
