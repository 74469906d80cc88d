// session.session_write_batch called through SQL, as a client in another language would: every
// element behaves as the single call it stands for, one bad element fails alone, the writes of one
// key apply in element order, rows locked elsewhere are skipped (55P03), and concurrent batches
// never deadlock.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { adminQuery, freshDatabase, inTurn, sqlState, uniqueName, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let app: pg.Client;
before(async () => {
  db = await freshDatabase('batchsql');
  app = new pg.Client({ connectionString: await db.clientRole() });
  await app.connect();
});
after(async () => {
  await app.end();
  await db.drop();
});

interface Row {
  ord: number;
  sqlstate: string | null;
  message: string | null;
  ok: boolean | null;
  key: string | null;
}
type Op = [kind: string | null, key: string | null, value: string | null, expiry: number | null, version?: string | null];

const batch = async (ops: Op[], client: pg.Client = app): Promise<Row[]> =>
  (
    await client.query<Row>('SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])', [
      ops.map((o) => o[0]),
      ops.map((o) => o[1]),
      ops.map((o) => o[2]),
      ops.map((o) => o[3]),
    ])
  ).rows;
const one = async <T>(sql: string, values: unknown[] = []): Promise<T> =>
  Object.values((await app.query(sql, values)).rows[0] ?? {})[0] as T;
const generate = (value: string | null = 'v', expiry: number | null = 3600) =>
  one<string>('SELECT session.session_generate($1, $2)', [expiry, value]);
const getValue = async (key: string) =>
  (await app.query<{ value: string | null }>('SELECT value FROM session.session_get($1)', [key])).rows[0]?.value;
const newPutKey = () =>
  uniqueName('put')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .padEnd(40, 'x');

/** Each shape's element run as a single call on a session of its own, generated with value 'orig'. */
async function singlesOf(shapes: ((k: string, fresh: string) => Op)[]) {
  const singles: { sqlstate: string | null; ok: unknown }[] = [];
  const singleKeys: string[] = [];
  for (const shape of shapes) {
    const k = await generate('orig');
    singleKeys.push(k);
    singles.push(await single(shape(k, newPutKey())));
  }
  return { singles, singleKeys };
}

type KeyState = 'live' | 'expired' | 'cleared' | 'new' | 'long';

/** What a single call does with the same arguments: its SQLSTATE, or its result. */
async function single([kind, key, value, expiry, version = null]: Op): Promise<{ sqlstate: string | null; ok: unknown }> {
  const call: Record<string, [string, unknown[]]> = {
    set: ['SELECT session.session_set($1, $2, $3, $4)', [key, value, expiry, version]],
    touch: ['SELECT session.session_touch($1, $2)', [key, expiry]],
    put: ['SELECT session.session_put($1, $2, $3, $4)', [key, value, expiry, version]],
    // A merge element's value is its fields as one JSON object: {"set": {...}, "unset": [...]}.
    merge: [
      `SELECT session.session_merge($1, ($2::jsonb)->'set', ARRAY(SELECT jsonb_array_elements_text(($2::jsonb)->'unset')), $3, $4)`,
      [key, value, expiry, version],
    ],
    clear: ['SELECT session.session_clear($1) IS NULL', [key]],
    generate: ['SELECT session.session_generate($1, $2) IS NOT NULL', [expiry, value]],
  };
  const [text, values] = call[kind as string] as [string, unknown[]];
  try {
    return { sqlstate: null, ok: await one(text, values) };
  } catch (err) {
    return { sqlstate: String((err as { code?: unknown }).code), ok: null };
  }
}

/**
 * Random runs: each starts from twin sets of sessions, one key per entry of `states`; one set gets
 * the single calls, the other the batch (its arrays numbered from various lower bounds); element
 * results and the rows left must match.
 */
interface Odds {
  length: number;
  nullValue: number;
  expiries: (number | null)[];
  /** The first value of every session, and each write's value (random(n) draws 0..n-1); default: plain text. */
  initial?: string;
  value?: (kind: string, random: (n: number) => number) => string | null;
  /** Give sets, puts and merges a version: none, the key's version before the run, or a stale one. */
  versions?: boolean;
}

async function differential(
  states: readonly KeyState[],
  kinds: readonly string[],
  runs: number,
  seed: number,
  odds: Odds = { length: 10, nullValue: 5, expiries: [null, null, 60, 0, -5, 3155760001] },
): Promise<{ compared: number; whole: number }> {
  const prepare = async (): Promise<string[]> =>
    inTurn(states, async (state) => {
      if (state === 'new') return newPutKey();
      if (state === 'long') return 'k'.repeat(1100);
      const k = await generate(odds.initial ?? 'orig', state === 'expired' ? -1 : 3600);
      if (state === 'cleared') await one('SELECT session.session_clear($1)', [k]);
      return k;
    });
  const rowOf = async (key: string) =>
    (
      await db.query<{ value: string | null; cleared: boolean; left: number; written: boolean; version: string }>(
        `SELECT value, cleared, extract(epoch FROM expires_at - now())::float8 AS left, written_at IS NOT NULL AS written, version
       FROM session.sessions WHERE digest = session.key_digest($1)`,
        [key],
      )
    ).rows[0];
  // The low bits of this generator repeat with a short period: use the high ones.
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 65536) % n;
  };
  const { expiries } = odds;
  let compared = 0;
  // Runs whose every element was applied, each to a key of its own: batches written whole by the
  // first statement.
  let whole = 0;
  for (let run = 0; run < runs; run += 1) {
    const plan = Array.from({ length: 2 + random(odds.length) }, () => {
      const kind = kinds[random(kinds.length)] as string;
      return {
        kind,
        slot: random(states.length),
        value: odds.value !== undefined ? odds.value(kind, random) : random(odds.nullValue) === 0 ? null : `v${random(1000)}`,
        expiry: expiries[random(expiries.length)] ?? null,
        version:
          odds.versions === true && ['set', 'put', 'merge'].includes(kind)
            ? (['none', 'before', 'stale'] as const)[random(3)]
            : 'none',
      };
    });
    const singleKeys = await prepare();
    const batchKeys = await prepare();
    const versionsOf = async (keys: string[]) => inTurn(keys, async (k) => (await rowOf(k))?.version ?? null);
    const singleVersions = await versionsOf(singleKeys);
    const batchVersions = await versionsOf(batchKeys);
    const op = (step: (typeof plan)[number], keys: string[], versions: (string | null)[]): Op => [
      step.kind,
      step.kind === 'generate' ? null : (keys[step.slot] as string),
      step.value,
      step.expiry,
      step.version === 'none' ? null : step.version === 'stale' ? '1' : (versions[step.slot] ?? '1'),
    ];
    const singles: { sqlstate: string | null; ok: unknown }[] = [];
    for (const step of plan) singles.push(await single(op(step, singleKeys, singleVersions)));
    // Each array with a lower bound of its own (from -4 to 4), which must change nothing.
    const lows = [0, 1, 2, 3].map((a) => ((run * 7 + a * 3) % 9) - 4) as [number, number, number, number];
    const rows = await shapedBatch(
      plan.map((step) => op(step, batchKeys, batchVersions)),
      lows,
    );
    const what = `run ${run} (lower bounds ${lows.join(', ')}): ${plan.map((s) => `${s.kind}(${states[s.slot]} ${s.slot}, ${s.value}, ${s.expiry}, ${s.version})`).join(', ')}`;
    assert.deepEqual(
      rows.map((r) => r.sqlstate),
      singles.map((x) => x.sqlstate),
      what,
    );
    plan.forEach((step, i) => {
      if (step.kind !== 'clear' && step.kind !== 'generate' && rows[i]?.sqlstate === null)
        assert.equal(rows[i]?.ok, singles[i]?.ok, `${what}: element ${i + 1}`);
    });
    if (rows.every((r) => r.sqlstate === null && r.ok === true) && new Set(plan.map((p) => p.slot)).size === plan.length)
      whole += 1;
    for (let slot = 0; slot < states.length; slot += 1) {
      const a = await rowOf(singleKeys[slot] as string);
      const b = await rowOf(batchKeys[slot] as string);
      assert.equal(b === undefined, a === undefined, `${what}: ${states[slot]} row`);
      if (a === undefined || b === undefined) continue;
      assert.deepEqual([b.value, b.cleared, b.written], [a.value, a.cleared, a.written], `${what}: ${states[slot]} row`);
      // As many writes of the value, so the version moved as far.
      const [sv, bv] = [singleVersions[slot], batchVersions[slot]];
      if (sv != null && bv != null && !a.cleared) {
        assert.equal(BigInt(b.version) - BigInt(bv), BigInt(a.version) - BigInt(sv), `${what}: ${states[slot]} version`);
      }
      assert.ok(Math.abs(b.left - a.left) < 5, `${what}: ${states[slot]} expiry ${b.left} vs ${a.left}`);
      compared += 1;
    }
  }
  return { compared, whole };
}

describe('session_write_batch, element by element', () => {
  test('each element gets the result or SQLSTATE of its single call; the bad ones write nothing, the others commit', async () => {
    const big = 'x'.repeat(1048577);
    // The same calls twice, on twin sessions: once as single calls, once as one batch.
    const shapes: ((k: string, fresh: string) => Op)[] = [
      (k) => ['set', k, 'new', 60],
      (k) => ['set', k, null, null],
      (k) => ['set', k, big, null],
      (k) => ['set', k, 'new', 3155760001],
      (k) => ['touch', k, null, 120],
      (k) => ['touch', k, null, -3155760001],
      () => ['set', 'unknown-key', 'new', null],
      (_, fresh) => ['put', fresh, 'p', null],
      () => ['put', 'short', 'p', null],
      () => ['put', null, 'p', null],
      (k) => ['put', k, null, null],
      () => ['generate', null, big, null],
      () => ['generate', null, 'g', 3155760001],
      () => ['generate', null, 'g', null],
      (k) => ['clear', k, null, null],
      () => ['clear', null, null, null],
    ];
    const { singles, singleKeys } = await singlesOf(shapes);
    const batchKeys: string[] = [];
    for (let i = 0; i < shapes.length; i += 1) batchKeys.push(await generate('orig'));
    const rows = await batch(shapes.map((shape, i) => shape(batchKeys[i] as string, newPutKey())));
    assert.deepEqual(
      rows.map((r) => r.ord),
      shapes.map((_, i) => i + 1),
    );
    assert.deepEqual(
      rows.map((r) => r.sqlstate),
      singles.map((s) => s.sqlstate),
    );
    assert.deepEqual(
      singles.map((s) => s.sqlstate),
      [null, '22004', '22001', '22023', null, '22023', null, null, '22023', '22004', '22004', '22001', '22023', null, null, null],
    );
    rows.forEach((r, i) => {
      const kind = shapes[i]?.('k', 'f')[0];
      if (r.sqlstate !== null) {
        assert.equal(r.ok, null);
        assert.equal(r.key, null, 'a failed generate returns no key');
        assert.ok(r.message !== null && r.message.length > 0);
      } else if (kind === 'generate') {
        assert.match(r.key ?? '', /^[A-Za-z0-9_-]{64}$/);
      } else if (kind !== 'clear') {
        assert.equal(r.ok, singles[i]?.ok, `element ${i + 1} (${kind})`);
      }
    });
    // The sessions end up the same: every failed element left its session as it was.
    for (let i = 0; i < shapes.length; i += 1) {
      assert.equal(
        await getValue(batchKeys[i] as string),
        await getValue(singleKeys[i] as string),
        `session of element ${i + 1}`,
      );
    }
    const generated = rows[13]?.key as string;
    assert.equal(await getValue(generated), 'g');
  });

  test('the writes of one key apply in element order', async () => {
    const k = await generate('v0');
    const rows = await batch([
      ['set', k, 'a', null],
      ['set', k, 'b', null],
      ['touch', k, null, 50],
      ['set', k, 'c', 40],
    ]);
    assert.deepEqual(
      rows.map((r) => r.ok),
      [true, true, true, true],
    );
    assert.equal(await getValue(k), 'c');
    assert.ok(Number(await one('SELECT period FROM session.session_get($1)', [k])) <= 40);
    // A clear in the middle: what follows it finds a tombstone, as consecutive single calls would.
    const k2 = await generate('v0');
    const rows2 = await batch([
      ['set', k2, 'a', null],
      ['clear', k2, null, null],
      ['set', k2, 'b', null],
      ['touch', k2, null, null],
      ['put', k2, 'c', null],
    ]);
    assert.deepEqual(
      rows2.map((r) => r.ok),
      [true, true, false, false, false],
    );
    assert.equal(await getValue(k2), undefined);
    // A put that creates, then a set of the same new key in the same batch.
    const p = newPutKey();
    assert.deepEqual(
      (
        await batch([
          ['put', p, 'one', null],
          ['set', p, 'two', null],
        ])
      ).map((r) => r.ok),
      [true, true],
    );
    assert.equal(await getValue(p), 'two');
  });

  test('random runs of writes over a few keys end as the same single calls, one after another, do', async () => {
    // Every state a key can be in, every kind of write.
    const states = ['live', 'expired', 'cleared', 'new', 'long'] as const;
    const { compared } = await differential(states, ['set', 'set', 'touch', 'put', 'put', 'clear', 'generate'], 40, 7);
    assert.ok(compared > 100, `${compared} rows compared`);
  });

  test('random runs of sets and touches over many live keys (written in one statement) end as the single calls do', async () => {
    // Mostly distinct live keys, so that some batches are written whole by the first statement, and
    // the others mix it with the general way (a key twice, a failed check, a key with no session).
    const states: KeyState[] = [...Array.from({ length: 30 }, (): KeyState => 'live'), 'expired', 'cleared', 'long'];
    const { compared, whole } = await differential(states, ['set', 'set', 'set', 'touch'], 50, 11, {
      length: 6,
      nullValue: 12,
      expiries: [null, null, null, 60, 3600, 0, -5, 3155760001],
    });
    assert.ok(compared > 1000, `${compared} rows compared`);
    assert.ok(whole >= 3, `${whole} batches written whole`);
  });

  test('random runs of merges, conditional writes and the other kinds end as the single calls do', async () => {
    // JSON objects mostly, some values that are not objects, merges of a few fields; each set, put
    // and merge unconditional, conditional on the key's version before the run, or stale.
    const states: KeyState[] = ['live', 'live', 'live', 'live', 'expired', 'cleared', 'new'];
    const fields = ['a', 'b', 'c'];
    const { compared } = await differential(states, ['merge', 'merge', 'merge', 'set', 'put', 'touch', 'clear'], 60, 23, {
      length: 8,
      nullValue: 12,
      expiries: [null, null, 60, 0, 3155760001],
      initial: '{"o": 1}',
      versions: true,
      value: (kind, random) => {
        if (kind === 'merge') {
          const set = Object.fromEntries(fields.filter(() => random(2) === 0).map((f) => [f, random(100)]));
          return JSON.stringify({ set, unset: fields.filter(() => random(3) === 0) });
        }
        return random(6) === 0 ? `[${random(10)}]` : JSON.stringify({ [fields[random(3)] as string]: random(100) });
      },
    });
    assert.ok(compared > 200, `${compared} rows compared`);
  });

  test('random runs of merges, sets and touches over many live keys (written in one statement) end as the single calls do', async () => {
    // Batches of these kinds only, mostly of distinct live keys: many are written whole by the
    // batch's first statement; the others (a stale version, a value that is not an object, bad
    // fields, a key twice, an expired or cleared session) are undone there and go the general way.
    const states: KeyState[] = [...Array.from({ length: 30 }, (): KeyState => 'live'), 'expired', 'cleared'];
    const fields = ['a', 'b', 'c'];
    const { compared, whole } = await differential(states, ['merge', 'merge', 'merge', 'set', 'touch'], 60, 31, {
      length: 6,
      nullValue: 40,
      expiries: [null, null, null, 60, 0, 3155760001],
      initial: '{"o": 1}',
      versions: true,
      value: (kind, random) => {
        if (kind === 'merge') {
          if (random(20) === 0) return '{"set": [1]}';
          const set = Object.fromEntries(fields.filter(() => random(2) === 0).map((f) => [f, random(100)]));
          return JSON.stringify(random(2) === 0 ? { set } : { set, unset: fields.filter(() => random(3) === 0) });
        }
        return random(10) === 0 ? `[${random(10)}]` : JSON.stringify({ [fields[random(3)] as string]: random(100) });
      },
    });
    assert.ok(compared > 1000, `${compared} rows compared`);
    assert.ok(whole >= 3, `${whole} batches written whole`);
  });

  test('a batch of live sets, touches and merges is one statement; any other batch takes the general way', async () => {
    // Which way a batch went, from the owner's view of the functions called in its transaction.
    const ways = async (ops: Op[]) => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query("BEGIN; SET LOCAL track_functions = 'all'");
        const rows = (
          await c.query<Row>(
            'SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])',
            [
              ops.map((o) => o[0]),
              ops.map((o) => o[1]),
              ops.map((o) => o[2]),
              ops.map((o) => o[3]),
              ops.map((o) => o[4] ?? null),
            ],
          )
        ).rows;
        const general = await c.query(
          "SELECT 1 FROM pg_stat_xact_user_functions WHERE schemaname = 'session' AND funcname = 'write_digests'",
        );
        await c.query('COMMIT');
        return { rows: rows.map((r) => [r.sqlstate, r.ok]), general: general.rowCount === 1 };
      } finally {
        await c.end();
      }
    };
    const keys = await inTurn(Array.from({ length: 3 }), () => generate('{"a": 1}'));
    const versionsOf = (ks: string[]) =>
      inTurn(ks, async (k) =>
        String(
          (await db.query('SELECT version FROM session.sessions WHERE digest = session.key_digest($1)', [k])).rows[0]?.version,
        ),
      );
    const before = await versionsOf(keys);
    const live: Op[] = [
      ['set', keys[0] as string, '{"s": 1}', null],
      ['touch', keys[1] as string, null, 60],
      ['merge', keys[2] as string, '{"set": {"m": 2}}', null],
    ];
    assert.deepEqual(await ways(live), {
      rows: [
        [null, true],
        [null, true],
        [null, true],
      ],
      general: false,
    });
    assert.deepEqual(await inTurn(keys, (k) => getValue(k)), ['{"s": 1}', '{"a": 1}', '{"a": 1, "m": 2}']);
    // One element that the first statement cannot write undoes it: the general way writes the
    // others, once each.
    const cleared = await generate('{"a": 1}');
    await one('SELECT session.session_clear($1)', [cleared]);
    assert.deepEqual(await ways([...live, ['merge', cleared, '{"set": {"m": 3}}', null]]), {
      rows: [
        [null, true],
        [null, true],
        [null, true],
        [null, false],
      ],
      general: true,
    });
    assert.deepEqual(await inTurn(keys, (k) => getValue(k)), ['{"s": 1}', '{"a": 1}', '{"a": 1, "m": 2}']);
    // Every value write adds one to the version: the set and the merge were written twice, the touch never.
    assert.deepEqual(
      (await versionsOf(keys)).map((v, i) => BigInt(v) - BigInt(before[i] as string)),
      [2n, 0n, 2n],
    );
    assert.deepEqual(await ways([['put', newPutKey(), 'p', null]]), { rows: [[null, true]], general: true });
    // Versions: a current one is written in the one statement; a stale one, or one given to a
    // touch (which takes none), sends the batch the general way, which reports it.
    const current = (await versionsOf([keys[0] as string]))[0] as string;
    assert.deepEqual(await ways([['set', keys[0] as string, '{"v": 1}', null, current]]), {
      rows: [[null, true]],
      general: false,
    });
    assert.deepEqual(await ways([['set', keys[0] as string, '{"v": 2}', null, current]]), {
      rows: [['SP001', null]],
      general: true,
    });
    const now = (await versionsOf([keys[1] as string]))[0] as string;
    assert.deepEqual(await ways([['touch', keys[1] as string, null, 60, now]]), { rows: [['22023', null]], general: true });
    assert.equal(await getValue(keys[0] as string), '{"v": 1}');
  });

  test('a merge the stored value or its fields refuse fails alone; the batch writes the others', async () => {
    // Keys of their own, so that every good element could go in the batch's one-statement path.
    const keys = await inTurn(Array.from({ length: 12 }), (_, i) =>
      generate(i === 1 ? 'not json {' : i === 3 ? '[1]' : i === 11 ? null : '{"a": 1}'),
    );
    const elements: [fields: string | null, sqlstate: string | null][] = [
      ['{"set": {"b": 2}}', null],
      ['{"set": {"b": 2}}', 'SP002'],
      ['{"set": {"c": 3}, "unset": ["a"]}', null],
      ['{"set": {"b": 2}}', 'SP002'],
      ['{"set": ', '22023'],
      ['{"set": {"d": 4}, "unset": [1]}', '22023'],
      ['{"set": {"d": 4}, "unset": [["a"]]}', '22023'],
      ['{"set": {"d": 4}, "extra": 1}', '22023'],
      ['{"set": [1]}', '22023'],
      [null, '22004'],
      ['{"set": null, "unset": null}', null],
      ['{"set": {"b": 2}}', 'SP002'],
    ];
    const rows = await batch(elements.map(([fields], i): Op => ['merge', keys[i] as string, fields, null]));
    assert.deepEqual(
      rows.map((r) => r.sqlstate),
      elements.map(([, state]) => state),
    );
    assert.deepEqual(await inTurn(keys, (k) => getValue(k)), [
      '{"a": 1, "b": 2}',
      'not json {',
      '{"c": 3}',
      '[1]',
      ...Array.from({ length: 6 }, () => '{"a": 1}'),
      '{"a": 1}',
      null,
    ]);
    // The same batch without the stored value that is not JSON: the good merges, the same results.
    const again = await inTurn(Array.from({ length: 3 }), () => generate('{"a": 1}'));
    const fast = await batch(again.map((k, i): Op => ['merge', k, i === 1 ? '{"set": 1}' : '{"set": {"b": 2}}', null]));
    assert.deepEqual(
      fast.map((r) => [r.sqlstate, r.ok]),
      [
        [null, true],
        ['22023', null],
        [null, true],
      ],
    );
  });

  test('a merge whose result is over the size limit fails alone (22001); the others are written', async () => {
    await db.query('UPDATE session.config SET max_value_bytes = 200');
    try {
      const keys = await inTurn(Array.from({ length: 3 }), () => generate('{"a": 1}'));
      const rows = await batch(
        keys.map((k, i): Op => ['merge', k, JSON.stringify({ set: { b: 'x'.repeat(i === 1 ? 300 : 50) } }), null]),
      );
      assert.deepEqual(
        rows.map((r) => r.sqlstate),
        [null, '22001', null],
      );
      assert.equal(await getValue(keys[1] as string), '{"a": 1}');
      assert.equal(
        await getValue(keys[2] as string),
        JSON.stringify({ a: 1, b: 'x'.repeat(50) })
          .replaceAll(':', ': ')
          .replace(',', ', '),
      );
    } finally {
      await db.query('UPDATE session.config SET max_value_bytes = DEFAULT');
    }
  });

  test('a batch of sets and touches of distinct live keys is written whole: every value and expiry', async () => {
    const keys = await inTurn(Array.from({ length: 40 }), () => generate('old', 60));
    const rows = await batch(
      keys.map((k, i): Op => (i % 4 === 3 ? ['touch', k, 'ignored', 7200] : ['set', k, `new${i}`, i % 2 === 0 ? null : 3600])),
    );
    assert.deepEqual(
      rows.map((r) => [r.ord, r.sqlstate, r.message, r.ok, r.key]),
      keys.map((_, i) => [i + 1, null, null, true, null]),
    );
    const left = await db.query<{ value: string; left: number }>(
      `SELECT s.value, extract(epoch FROM s.expires_at - now())::float8 AS left
         FROM unnest($1::text[]) WITH ORDINALITY k(key, o) JOIN session.sessions s ON s.digest = session.key_digest(k.key) ORDER BY k.o`,
      [keys],
    );
    left.rows.forEach((r, i) => {
      assert.equal(r.value, i % 4 === 3 ? 'old' : `new${i}`);
      const expected = i % 4 === 3 ? 7200 : i % 2 === 0 ? 7 * 86400 : 3600;
      assert.ok(Math.abs(r.left - expected) < 5, `element ${i + 1}: ${r.left} s left, expected ${expected}`);
    });
  });

  test('tombstones and expired sessions are respected', async () => {
    const cleared = await generate('v');
    await one('SELECT session.session_clear($1)', [cleared]);
    const expired = await generate('v', -1);
    const rows = await batch([
      ['set', cleared, 'x', null],
      ['touch', cleared, null, null],
      ['put', cleared, 'x', null],
      ['set', expired, 'x', null],
      ['touch', expired, null, null],
      ['put', expired, 'x', null],
      ['clear', cleared, null, null],
    ]);
    assert.deepEqual(
      rows.map((r) => [r.sqlstate, r.ok]),
      [
        [null, false],
        [null, false],
        [null, false],
        [null, false],
        [null, false],
        [null, false],
        [null, false],
      ],
    );
    assert.equal(await getValue(cleared), undefined);
    assert.equal(await getValue(expired), undefined);
    const tombstone = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM session.sessions WHERE digest = session.key_digest($1) AND cleared AND value IS NULL',
      [cleared],
    );
    assert.equal(tombstone.rows[0]?.n, 1, 'the tombstone is still there');
  });

  test('empty batch, unknown kinds, arrays of different lengths', async () => {
    assert.deepEqual(await batch([]), []);
    const rows = await batch([
      ['bogus', 'k', 'v', null],
      [null, 'k', 'v', null],
    ]);
    assert.deepEqual(
      rows.map((r) => r.sqlstate),
      ['22023', '22023'],
    );
    assert.equal(
      await sqlState(app.query(`SELECT * FROM session.session_write_batch('{set,set}', '{a}', '{v,w}', '{NULL,NULL}')`)),
      '22023',
    );
  });

  test('a row another transaction holds is skipped with 55P03 (with the later elements of its key); the rest commits', async () => {
    const locked = await generate('kept');
    const free = await generate('old');
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM session.sessions WHERE digest = session.key_digest($1) FOR UPDATE', [locked]);
      const rows = await batch([
        ['set', locked, 'a', null],
        ['set', free, 'new', null],
        ['touch', locked, null, null],
        ['clear', locked, null, null],
      ]);
      assert.deepEqual(
        rows.map((r) => r.sqlstate),
        ['55P03', null, '55P03', '55P03'],
      );
      assert.equal(rows[1]?.ok, true);
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    assert.equal(await getValue(locked), 'kept');
    assert.equal(await getValue(free), 'new');
  });
  test('in a batch of sets of distinct keys, a row another transaction holds is skipped with 55P03 alone', async () => {
    const keys = await inTurn(Array.from({ length: 6 }), () => generate('old'));
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM session.sessions WHERE digest = session.key_digest($1) FOR UPDATE', [keys[2]]);
      const rows = await batch(keys.map((k): Op => ['set', k, 'new', null]));
      assert.deepEqual(
        rows.map((r) => [r.sqlstate, r.ok]),
        keys.map((_, i) => (i === 2 ? ['55P03', null] : [null, true])),
      );
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    assert.deepEqual(
      await inTurn(keys, getValue),
      keys.map((_, i) => (i === 2 ? 'old' : 'new')),
    );
  });
});

/** An array literal with the given lower bound: `[lo:hi]={...}` (one dimension). */
const shaped = (lo: number, items: readonly (string | number | null)[]): string | null =>
  items.length === 0
    ? '{}'
    : `[${lo}:${lo + items.length - 1}]={${items.map((v) => (v === null ? 'NULL' : `"${String(v).replace(/[\\"]/g, (c) => `\\${c}`)}"`)).join(',')}}`;
const shapedBatch = async (ops: Op[], lows: readonly [number, number, number, number], client: pg.Client = app): Promise<Row[]> =>
  (
    await client.query<Row>(
      'SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])',
      [
        ...[0, 1, 2, 3].map((a) =>
          shaped(
            lows[a] as number,
            ops.map((o) => o[a] as string | number | null),
          ),
        ),
        ops.some((o) => o[4] != null)
          ? shaped(
              lows[3] - 1,
              ops.map((o) => o[4] ?? null),
            )
          : null,
      ],
    )
  ).rows;

describe('session_write_batch, any array shape', () => {
  test('arrays numbered from 0 (the attack): a short put key, an oversized value and a far expiry are refused as in single calls', async () => {
    // Element 0 passes every check; element 1 fails them. Its kind, value and expiry must not be
    // written under element 0's key.
    const rows = await shapedBatch(
      [
        ['set', 'short-key!', 'ok', null],
        ['put', 'x', 'x'.repeat(3_000_000), 100_000_000_000],
      ],
      [0, 0, 0, 0],
    );
    assert.deepEqual(
      rows.map((r) => [r.ord, r.sqlstate, r.ok]),
      [
        [1, null, false],
        [2, '22023', null],
      ],
    );
    const stored = await db.query(
      `SELECT octet_length(value) AS bytes FROM session.sessions WHERE digest IN (session.key_digest('short-key!'), session.key_digest('x'))`,
    );
    assert.deepEqual(stored.rows, [], 'a session was created');
  });

  test("any lower bounds, the same or different per array: every element gets its single call's result, by position", async () => {
    const big = 'x'.repeat(1048577);
    const shapes: ((k: string, fresh: string) => Op)[] = [
      (k) => ['set', k, 'new', 60],
      (k) => ['set', k, null, null],
      (k) => ['set', k, big, null],
      (k) => ['set', k, 'new', 3155760001],
      (k) => ['touch', k, null, -3155760001],
      (_, fresh) => ['put', fresh, 'p', null],
      () => ['put', 'short', 'p', null],
      () => ['put', null, 'p', null],
      () => ['generate', null, big, null],
      () => ['generate', null, 'g', 3155760001],
      () => ['generate', null, 'g', null],
      (k) => ['touch', k, null, 120],
      (k) => ['clear', k, null, null],
    ];
    const { singles, singleKeys } = await singlesOf(shapes);
    for (const lows of [
      [0, 0, 0, 0],
      [-3, -3, -3, -3],
      [7, 7, 7, 7],
      [0, 5, -2, 1],
      [1, 1, 1, 0],
    ] as const) {
      const batchKeys = await inTurn(shapes, () => generate('orig'));
      const rows = await shapedBatch(
        shapes.map((shape, i) => shape(batchKeys[i] as string, newPutKey())),
        lows,
      );
      const what = `lower bounds ${lows.join(', ')}`;
      assert.deepEqual(
        rows.map((r) => r.ord),
        shapes.map((_, i) => i + 1),
        what,
      );
      assert.deepEqual(
        rows.map((r) => r.sqlstate),
        singles.map((s) => s.sqlstate),
        what,
      );
      rows.forEach((r, i) => {
        const kind = shapes[i]?.('k', 'f')[0];
        if (r.sqlstate === null && kind !== 'clear' && kind !== 'generate')
          assert.equal(r.ok, singles[i]?.ok, `${what}: element ${i + 1}`);
        if (r.sqlstate === null && kind === 'generate') assert.match(r.key ?? '', /^[A-Za-z0-9_-]{64}$/, what);
      });
      for (let i = 0; i < shapes.length; i += 1) {
        assert.equal(
          await getValue(batchKeys[i] as string),
          await getValue(singleKeys[i] as string),
          `${what}: session of element ${i + 1}`,
        );
      }
    }
  });

  test('more than one dimension: 22023, nothing written; NULL arrays are empty; NULL elements are checked one by one', async () => {
    const k = await generate('orig');
    for (const [kinds, keys, vals, expiries] of [
      ['{{set,set}}', `{{${k},${k}}}`, '{{a,b}}', '{{NULL,NULL}}'],
      ['{{set},{set}}', `{${k},${k}}`, '{a,b}', '{NULL,NULL}'],
      ['{set,set}', `{${k},${k}}`, '{a,b}', '{{NULL},{NULL}}'],
    ]) {
      assert.equal(
        await sqlState(
          app.query('SELECT * FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])', [
            kinds,
            keys,
            vals,
            expiries,
          ]),
        ),
        '22023',
      );
    }
    assert.equal(await getValue(k), 'orig');
    assert.deepEqual((await app.query('SELECT * FROM session.session_write_batch(NULL, NULL, NULL, NULL)')).rows, []);
    assert.equal(await sqlState(app.query(`SELECT * FROM session.session_write_batch('{set}', NULL, '{v}', '{NULL}')`)), '22023');
    const rows = await batch([
      [null, k, 'v', null],
      ['set', null, 'v', null],
      ['set', k, null, null],
      ['set', k, 'w', null],
    ]);
    assert.deepEqual(
      rows.map((r) => [r.sqlstate, r.ok]),
      [
        ['22023', null],
        [null, false],
        ['22004', null],
        [null, true],
      ],
    );
    assert.equal(await getValue(k), 'w');
  });

  test('partition_write_batch (what a proxy calls): arrays numbered from 0 give the results of arrays numbered from 1', async () => {
    const proxyKey = () => newPutKey().padEnd(48, 'p');
    const call = async (lows: readonly [number, number, number, number]) => {
      const live = await generate('orig');
      const ops: Op[] = [
        ['put', 'short-key!', 'x', null],
        ['set', live, 'x'.repeat(3_000_000), null],
        ['set', live, 'y', 100_000_000_000],
        ['generate', proxyKey(), 'g', null],
        ['generate', proxyKey(), 'g', 100_000_000_000],
        ['set', live, 'new', null],
      ];
      const r = await db.query<Row>(
        'SELECT * FROM session.partition_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])',
        [0, 1, 2, 3].map((a) =>
          shaped(
            lows[a] as number,
            ops.map((o) => o[a] as string | number | null),
          ),
        ),
      );
      return {
        rows: r.rows.map((x) => [x.ord, x.sqlstate, x.ok, x.key === null ? null : x.key === ops[x.ord - 1]?.[1]]),
        value: await getValue(live),
      };
    };
    const plain = await call([1, 1, 1, 1]);
    assert.deepEqual(plain.rows, [
      [1, '22023', null, null],
      [2, '22001', null, null],
      [3, '22023', null, null],
      [4, null, true, true],
      [5, '22023', null, null],
      [6, null, true, null],
    ]);
    assert.equal(plain.value, 'new');
    for (const lows of [
      [0, 0, 0, 0],
      [-1, 3, 0, 2],
    ] as const)
      assert.deepEqual(await call(lows), plain, `lower bounds ${lows.join(', ')}`);
  });
});

describe('session_get_batch, any array shape', () => {
  test('any lower bound and several dimensions: the elements in order, ord counted from 1', async () => {
    const a = await generate('a');
    const b = await generate('b');
    const expected = [
      { ord: 1, value: 'a' },
      { ord: 3, value: 'b' },
      { ord: 4, value: 'a' },
    ];
    for (const literal of [
      shaped(0, [a, 'nope', b, a]),
      shaped(-7, [a, null, b, a]),
      `{{${a},nope},{${b},${a}}}`,
      `[0:1][5:6]={{${a},nope},{${b},${a}}}`,
    ]) {
      const r = await app.query<{ ord: number; value: string }>('SELECT ord, value FROM session.session_get_batch($1::text[])', [
        literal,
      ]);
      assert.deepEqual(r.rows, expected, String(literal).replace(/[A-Za-z0-9_-]{64}/g, 'KEY'));
    }
  });
});

describe('session_write_batch lock waits', () => {
  test("a lock the batch must wait for fails it after lock_timeout, at most 2 s, leaving the caller's setting as it was", async () => {
    const k = await generate('kept');
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE session.sessions IN SHARE MODE');
      // The server default (0, wait forever) is bounded at 2 s.
      assert.equal(
        await sqlState(
          batch([
            ['set', k, 'a', null],
            ['generate', null, 'g', null],
          ]),
        ),
        '55P03',
      );
      assert.equal((await app.query('SHOW lock_timeout')).rows[0]?.lock_timeout, '0');
      // A shorter setting of the caller applies.
      await app.query(`SET lock_timeout = '300ms'`);
      assert.equal(await sqlState(batch([['set', k, 'a', null]])), '55P03');
      assert.equal((await app.query('SHOW lock_timeout')).rows[0]?.lock_timeout, '300ms');
      await app.query('RESET lock_timeout');
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    // Inside the caller's own transaction, the setting is restored once the batch returns.
    await app.query('BEGIN');
    try {
      await batch([['set', k, 'b', null]]);
      assert.equal((await app.query('SHOW lock_timeout')).rows[0]?.lock_timeout, '0');
    } finally {
      await app.query('ROLLBACK');
    }
    assert.equal(await getValue(k), 'kept');
  });
});

describe('session_write_batch under concurrency', () => {
  test('a new session another transaction creates first: 55P03 for the elements of that key only, nothing of them written', async () => {
    const p = newPutKey();
    const other = await generate('old');
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT session.session_put($1, 'theirs', NULL)`, [p]);
      const appPid = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const pending = batch([
        ['put', p, 'ours', null],
        ['set', other, 'new', null],
        ['set', p, 'ours2', null],
      ]);
      // The batch must be waiting on the uncommitted row when it commits, however slow the machine.
      let waiting = false;
      for (let i = 0; i < 400 && !waiting; i += 1) {
        const r = await db.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [appPid]);
        waiting = r.rows[0]?.wait_event_type === 'Lock';
        if (!waiting) await sleep(25);
      }
      await holder.query('COMMIT');
      assert.ok(waiting, 'the batch never waited for the other transaction');
      const rows = await pending;
      assert.deepEqual(
        rows.map((r) => r.sqlstate),
        ['55P03', null, '55P03'],
      );
      assert.deepEqual(
        rows.map((r) => r.ok),
        [null, true, null],
      );
    } finally {
      await holder.end();
    }
    assert.equal(await getValue(p), 'theirs');
    assert.equal(await getValue(other), 'new');
    // Called again, the put finds the session and writes it, as session_put would.
    assert.deepEqual(
      (await batch([['put', p, 'ours', null]])).map((r) => [r.sqlstate, r.ok]),
      [[null, true]],
    );
    assert.equal(await getValue(p), 'ours');
  });

  test('batches creating the same new sessions in opposite orders never deadlock', async () => {
    const clients = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        return c;
      }),
    );
    let created = 0;
    let raced = 0;
    try {
      for (let round = 0; round < 10; round += 1) {
        const keys = Array.from({ length: 50 }, () => newPutKey());
        await Promise.all(
          clients.map(async (c, w) => {
            const order = w % 2 === 0 ? keys : [...keys].reverse();
            for (const r of await batch(
              order.map((k) => ['put', k, `${w}`, null] as Op),
              c,
            )) {
              if (r.sqlstate === '55P03') raced += 1;
              else {
                assert.equal(r.sqlstate, null);
                assert.equal(r.ok, true);
                created += 1;
              }
            }
          }),
        );
        for (const k of keys) assert.match((await getValue(k)) ?? '', /^[0-3]$/);
      }
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    assert.ok(created >= 500, `${created} puts applied`);
    console.log(
      `# 4 connections x 10 rounds of 50 puts of the same new keys in opposite orders: no deadlock, ${created} applied, ${raced} returned 55P03`,
    );
  });

  test('batches over the same keys in opposite orders never deadlock and lose no write', async () => {
    const keys = (await batch(Array.from({ length: 100 }, (): Op => ['generate', null, '0', 3600]))).map((r) => r.key as string);
    const clients = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        return c;
      }),
    );
    let skipped = 0;
    try {
      await Promise.all(
        clients.map(async (c, w) => {
          for (let round = 0; round < 20; round += 1) {
            const order = w % 2 === 0 ? keys : [...keys].reverse();
            const rows = await batch(
              order.map((k) => ['set', k, `${w}:${round}`, null] as Op),
              c,
            );
            for (const r of rows) {
              if (r.sqlstate === '55P03') skipped += 1;
              else assert.equal(r.ok, true);
            }
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    for (const k of keys) assert.match((await getValue(k)) ?? '', /^[0-3]:\d+$/);
    console.log(
      `# 4 connections x 20 batches of 100 sets over the same keys in opposite orders: no deadlock, ${skipped} elements skipped as locked (55P03)`,
    );
  });
});

describe('session_write_batch is part of the SQL API', () => {
  test('SECURITY DEFINER, pinned search_path, documented', async () => {
    const r = await db.query<{ prosecdef: boolean; proconfig: string[]; comment: string | null }>(
      `SELECT p.prosecdef, p.proconfig, obj_description(p.oid, 'pg_proc') AS comment FROM pg_proc p
        WHERE p.oid = 'session.session_write_batch(text[], text[], text[], bigint[], bigint[])'::regprocedure`,
    );
    const row = r.rows[0];
    assert.equal(row?.prosecdef, true);
    assert.deepEqual(row?.proconfig, ['search_path=pg_catalog, pg_temp']);
    assert.match(row?.comment ?? '', /22004.*22001.*22023.*55P03/s);
  });
  test('the client role may call it; PUBLIC and the admin role may not, nor the private helper', async () => {
    const grants = await db.query<{ role: string; can: boolean }>(
      `SELECT r AS role, has_function_privilege(r, 'session.session_write_batch(text[], text[], text[], bigint[], bigint[])', 'EXECUTE') AS can
         FROM unnest(ARRAY['session_client', 'session_admin']) r`,
    );
    assert.deepEqual(grants.rows, [
      { role: 'session_client', can: true },
      { role: 'session_admin', can: false },
    ]);
    // No ACL entry for PUBLIC ("=X/owner") on any of the functions.
    const acl = await db.query<{ acl: string[] }>(
      `SELECT p.proacl::text[] AS acl FROM pg_proc p WHERE p.oid IN ('session.session_write_batch(text[], text[], text[], bigint[], bigint[])'::regprocedure,
                                                                   'session.write_check(text, text, text, bigint, integer)'::regprocedure,
                                                                   'session.write_problem(text, text, text, bigint, integer)'::regprocedure)`,
    );
    assert.equal(acl.rows.length, 3);
    for (const r of acl.rows)
      assert.deepEqual(
        r.acl.filter((e) => e.startsWith('=')),
        [],
      );
    const stranger = uniqueName('nobody');
    await adminQuery(`CREATE ROLE ${stranger} LOGIN PASSWORD 'pw'`);
    try {
      const url = new URL(db.url);
      url.username = stranger;
      url.password = 'pw';
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      try {
        assert.equal(await sqlState(batch([['generate', null, 'v', null]], c)), '42501');
        assert.equal(await sqlState(c.query(`SELECT * FROM session.write_check('set', 'k', 'v', NULL, 1)`)), '42501');
        assert.equal(await sqlState(c.query(`SELECT session.write_problem('set', 'k', 'v', NULL, 1)`)), '42501');
      } finally {
        await c.end();
      }
      assert.equal(await sqlState(app.query(`SELECT * FROM session.write_check('set', 'k', 'v', NULL, 1)`)), '42501');
    } finally {
      await adminQuery(`DROP ROLE ${stranger}`);
    }
  });
});
