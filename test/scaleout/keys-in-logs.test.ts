// Through a PL/Proxy proxy, with auto_explain logging every plan (nested statements, verbose) on
// the proxy's and the partitions' server: a plain driver that sets nothing sees no key in any
// statement that the proxy's functions, PL/Proxy or the partitions' functions run. And the batch
// functions take arrays of any shape as a partition does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { deploy, type Deployment } from './deployment.js';

let d: Deployment;
let app: pg.Client;
before(async () => {
  d = await deploy({
    partitions: 2,
    servers: 1,
    settings: [
      `shared_preload_libraries = 'auto_explain'`,
      'auto_explain.log_min_duration = 0',
      'auto_explain.log_nested_statements = on',
      'auto_explain.log_verbose = on',
    ],
  });
  app = new pg.Client({ connectionString: d.clientUrl });
  await app.connect();
});
after(async () => {
  await app?.end();
  await d?.destroy();
});

const mark = '/* caller */';
const q = async (c: pg.Client, text: string, values: unknown[] = []) => (await c.query(`${mark} ${text}`, values)).rows;
const sqlState = (p: Promise<unknown>) =>
  p.then(
    () => 'no error',
    (err: unknown) => String((err as { code?: unknown }).code),
  );
const putKey = (label: string) => `${label}_${'p'.repeat(44)}`.slice(0, 44);

describe('keys in logs through the proxy', { timeout: 300_000 }, () => {
  test('a plain driver that sets nothing: no key in any statement run on the proxy or a partition', async (t) => {
    const log = (d.clusters[0] as { logFile: string }).logFile;
    const from = readFileSync(log, 'utf8').length;
    const keys: string[] = [];
    for (const [round, options] of [undefined, '-c plan_cache_mode=force_custom_plan'].entries()) {
      const c = new pg.Client({ connectionString: d.clientUrl, ...(options === undefined ? {} : { options }) });
      await c.connect();
      try {
        for (let i = 0; i < 7; i += 1) {
          const key = (await q(c, 'SELECT session.session_generate($1, $2) AS k', [600, `v${i}`]))[0]?.k as string;
          const own = putKey(`own${round}${i}`);
          keys.push(key, own);
          await q(c, 'SELECT * FROM session.session_get($1)', [key]);
          await q(c, 'SELECT session.session_set($1, $2, $3)', [key, 'w', 600]);
          await q(c, 'SELECT session.session_touch($1, $2)', [key, 900]);
          await q(c, 'SELECT session.session_put($1, $2, $3)', [own, '{}', null]);
          assert.equal(await sqlState(q(c, 'SELECT session.session_put($1, $2, $3)', [`${own}!`, '{}', null])), '22023');
          await q(c, 'SELECT session.session_set_subject($1, $2, $3)', [key, `user${i}`, 'laptop']);
          await q(c, 'SELECT * FROM session.session_get_batch($1::text[])', [[key, own, null, key]]);
          // Merges and conditional writes: a write, a conflict (SP001) and a value that is no object (SP002).
          const v = (await q(c, 'SELECT version FROM session.session_get($1)', [own]))[0]?.version as string;
          await q(c, 'SELECT session.session_merge($1, $2::jsonb, $3::text[], $4, $5)', [own, '{"m": 1}', ['x'], 600, v]);
          assert.equal(
            await sqlState(q(c, 'SELECT session.session_merge($1, $2::jsonb, NULL, NULL, $3)', [own, '{"m": 2}', v])),
            'SP001',
          );
          assert.equal(await sqlState(q(c, 'SELECT session.session_merge($1, $2::jsonb)', [key, '{"m": 3}'])), 'SP002');
          assert.equal(await sqlState(q(c, 'SELECT session.session_put($1, $2, NULL, $3)', [own, '{}', v])), 'SP001');
          const written = await q(
            c,
            'SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])',
            [
              ['set', 'generate', 'put', 'touch', 'merge', 'merge'],
              [key, null, own, key, own, own],
              ['a', 'g', 'b', null, '{"set": {"n": 1}}', '{"unset": ["n"]}'],
              [null, null, null, 60, null, null],
              [null, null, null, null, null, '1'],
            ],
          );
          keys.push(...written.map((r) => r.key as string | null).filter((k): k is string => k !== null));
          const rotated = (await q(c, 'SELECT session.session_rotate($1) AS k', [key]))[0]?.k as string;
          keys.push(rotated);
          await q(c, 'SELECT session.session_revoke($1, $2)', [`user${i}`, rotated]);
          await q(c, 'SELECT session.session_clear($1)', [own]);
        }
      } finally {
        await c.end();
      }
    }
    const entries = readFileSync(log, 'utf8')
      .slice(from)
      .split(/\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)/);
    const caller = (e: string) => e.includes(mark);
    const nested = entries.filter((e) => /Query Text:/.test(e) && !caller(e));
    assert.ok(
      nested.some((e) => /session\.partition_write_batch|session\.session_get\(/.test(e)),
      'no PL/Proxy query in the log',
    );
    assert.ok(
      nested.some((e) => /session\.sessions/.test(e)),
      'no partition statement in the log',
    );
    assert.ok(
      entries.some((e) => caller(e) && keys.some((k) => e.includes(k))),
      "the caller's own plans hold no key: this test proves nothing",
    );
    for (const e of entries.filter((x) => !caller(x))) {
      for (const key of keys)
        assert.ok(!e.includes(key), `a key (${key.slice(0, 6)}…) is in the log:\n${e.replaceAll(key, '<key>').slice(0, 1500)}`);
    }
    t.diagnostic(`${keys.length} keys, ${nested.length} plans of the proxy's and partitions' statements: no key`);
  });

  test('a partition conninfo without generic plans and quiet errors is refused, with what to add', async () => {
    const [conninfo] = (
      await d.query<{ c: string }>(d.proxyUrl, 'SELECT conninfo AS c FROM session_proxy.partitions() WHERE part = 0')
    ).rows.map((r) => r.c);
    assert.match(conninfo ?? '', /plan_cache_mode=force_generic_plan/);
    const bare = (conninfo ?? '').replace(/\s*options='[^']*'/, '');
    for (const c of [
      bare,
      `${bare} options='-c plan_cache_mode=force_generic_plan'`,
      `${bare} options='-c log_parameter_max_length_on_error=0'`,
    ]) {
      const err = await d.query(d.proxyUrl, 'SELECT session_proxy.set_partition(0, $1)', [c]).then(
        () => undefined,
        (e: unknown) => e as { code?: string; hint?: string },
      );
      assert.equal(err?.code, '22023', c);
      assert.match(err?.hint ?? '', /plan_cache_mode=force_generic_plan/);
    }
    await d.query(d.proxyUrl, 'SELECT session_proxy.set_partition(0, $1)', [conninfo]);
    assert.equal((await q(app, 'SELECT session.session_count() AS n'))[0]?.n >= 0, true);
  });

  test('batch arrays of any lower bound give the results of arrays numbered from 1; more dimensions: 22023 or flattened', async () => {
    const shaped = (lo: number, items: (string | number | null)[]) =>
      `[${lo}:${lo + items.length - 1}]={${items.map((v) => (v === null ? 'NULL' : `"${String(v)}"`)).join(',')}}`;
    const run = async (lows: number[]) => {
      const live = (await q(app, 'SELECT session.session_generate(600, $1) AS k', ['orig']))[0]?.k as string;
      const ops = [
        ['set', 'short-key!', 'ok', null],
        ['put', 'x', 'x'.repeat(2_000_000), 100_000_000_000],
        ['set', live, 'new', null],
        ['generate', null, 'g', 5],
      ];
      const rows = await q(
        app,
        'SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])',
        [0, 1, 2, 3].map((a) =>
          shaped(
            lows[a] as number,
            ops.map((o) => o[a] as string | number | null),
          ),
        ),
      );
      const value = (await q(app, 'SELECT value FROM session.session_get($1)', [live]))[0]?.value;
      return {
        rows: rows.map((r) => [r.ord, r.sqlstate, r.ok, r.key === null ? null : /^[A-Za-z0-9_-]{64}$/.test(r.key)]),
        value,
      };
    };
    const plain = await run([1, 1, 1, 1]);
    assert.deepEqual(plain, {
      rows: [
        [1, null, false, null],
        [2, '22023', null, null],
        [3, null, true, null],
        [4, null, true, true],
      ],
      value: 'new',
    });
    for (const lows of [
      [0, 0, 0, 0],
      [-2, 5, 0, 1],
    ])
      assert.deepEqual(await run(lows), plain, `lower bounds ${lows.join(', ')}`);
    assert.equal(
      await sqlState(q(app, `SELECT * FROM session.session_write_batch('{{set}}', '{{k}}', '{{v}}', '{{NULL}}')`)),
      '22023',
    );
    const a = (await q(app, 'SELECT session.session_generate(600, $1) AS k', ['a']))[0]?.k as string;
    const got = await q(app, 'SELECT ord, value FROM session.session_get_batch($1::text[])', [
      `[0:1][3:4]={{${a},nope},{NULL,${a}}}`,
    ]);
    assert.deepEqual(got, [
      { ord: 1, value: 'a' },
      { ord: 4, value: 'a' },
    ]);
  });
});
