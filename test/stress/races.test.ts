// Races, checked against real time: every operation records when it was called and when it
// returned (this process's monotonic clock), and the checks only use orderings that real time
// proves (A returned before B was called). Seeded, so a failure can be replayed: RACE_SEED.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { connect, type SessionStore } from '../../src/index.js';
import { connectAdmin, migrate, type SessionAdmin } from '../../src/admin-index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliPath, freshDatabase, schemaDump, shippedMigrations, type TestDatabase } from '../helpers.js';

const shipped = shippedMigrations();

const seed = Number(process.env.RACE_SEED ?? Date.now() % 1_000_000);
/** mulberry32: a small seeded PRNG, so that a failing interleaving's inputs can be replayed. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;

interface Timed {
  start: number;
  end: number;
}
async function timed<T>(f: () => Promise<T>): Promise<Timed & { result: T }> {
  const start = performance.now();
  const result = await f();
  return { start, end: performance.now(), result };
}
/** a returned before b was called. */
const before_ = (a: Timed, b: Timed) => a.end < b.start;

let db: TestDatabase;
let clientUrl = '';
const stores: SessionStore[] = [];
const open = (n: number) => {
  for (let i = 0; i < n; i += 1) stores.push(connect({ connectionString: clientUrl }));
  return stores.slice(-n);
};
const admins: SessionAdmin[] = [];
const openAdmin = () => {
  admins.push(connectAdmin({ connectionString: clientUrl }));
  return admins.at(-1) as SessionAdmin;
};

before(async () => {
  db = await freshDatabase('races');
  clientUrl = await db.clientRole({ admin: true });
  console.log(`# races: RACE_SEED=${seed}`);
});
after(async () => {
  await Promise.all([...stores, ...admins].map((s) => s.close()));
  await db.drop();
});

describe('races', () => {
  test('concurrent clients on shared keys: reads see only values written to that key, never older than a write or clear that returned', {
    timeout: 300_000,
  }, async (t) => {
    const clients = open(6);
    const keys = Array.from({ length: 6 }, (_, i) => `shared-key-${i}`.padEnd(40, '_'));
    type Op = Timed & {
      key: number;
      kind: 'write' | 'clear' | 'get';
      value?: string | undefined;
      ok: boolean;
      read?: string | null;
      put?: boolean;
    };
    const ops: Op[] = [];
    for (const [i, key] of keys.entries()) {
      const r = await timed(() => (clients[0] as SessionStore).put(key, `k${i}:init`));
      ops.push({ ...r, key: i, kind: 'write', value: `k${i}:init`, ok: r.result });
    }
    const workers = 12;
    const perWorker = Number(process.env.RACE_OPS ?? 800);
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        const store = clients[w % clients.length] as SessionStore;
        for (let n = 0; n < perWorker; n += 1) {
          const k = Math.floor(random() * keys.length);
          const key = keys[k] as string;
          const value = `k${k}:w${w}:${n}`;
          const roll = random();
          if (roll < 0.3) {
            const r = await timed(() => store.put(key, value));
            ops.push({ ...r, key: k, kind: 'write', value, ok: r.result, put: true });
          } else if (roll < 0.5) {
            const r = await timed(() => store.set(key, value));
            ops.push({ ...r, key: k, kind: 'write', value, ok: r.result });
          } else if (roll < 0.55 && n >= perWorker * 0.8) {
            // Clears only in the last fifth: a cleared key stays dead (its tombstone refuses every
            // write), so earlier clears would leave little to race.
            const r = await timed(() => store.clear(key));
            ops.push({ ...r, key: k, kind: 'clear', ok: true });
          } else {
            const r = await timed(() => store.get(key));
            const read = r.result.ok ? r.result.value : r.result.error === 'not_found' ? null : 'NOT_SET';
            ops.push({ ...r, key: k, kind: 'get', ok: true, read });
          }
        }
      }),
    );
    // Final reads, after every writer returned.
    for (const [i, key] of keys.entries()) {
      const r = await timed(() => (clients[1] as SessionStore).get(key));
      ops.push({
        ...r,
        key: i,
        kind: 'get',
        ok: true,
        read: r.result.ok ? r.result.value : r.result.error === 'not_found' ? null : 'NOT_SET',
      });
    }

    let reads = 0;
    let notFound = 0;
    for (let k = 0; k < keys.length; k += 1) {
      const mine = ops.filter((o) => o.key === k);
      const writes = mine.filter((o) => o.kind === 'write');
      const changes = mine.filter((o) => (o.kind === 'write' && o.ok) || o.kind === 'clear');
      const clears = mine.filter((o) => o.kind === 'clear');
      // put creates a missing session, but never writes over a cleared one (its tombstone).
      for (const p of writes.filter((x) => x.put === true && !x.ok)) {
        assert.ok(
          clears.some((c) => c.start < p.end),
          `key ${k}: put refused although no clear had been called`,
        );
      }
      for (const g of mine.filter((o) => o.kind === 'get')) {
        reads += 1;
        assert.notEqual(g.read, 'NOT_SET');
        if (g.read === null) {
          notFound += 1;
          // Not found: every successful write that returned before this get was called must be
          // followed (or overlapped) by a clear that was called before this get returned.
          for (const w of writes.filter((x) => x.ok && before_(x, g))) {
            assert.ok(
              clears.some((c) => !before_(c, w) && c.start < g.end),
              `key ${k}: not found, yet ${w.value} was written and never cleared`,
            );
          }
          continue;
        }
        const w = writes.find((x) => x.value === g.read);
        assert.ok(w !== undefined, `key ${k}: read ${g.read}, which nobody wrote to this key`);
        assert.ok(w.ok && w.start < g.end, `key ${k}: read ${g.read} from a write that failed or came later`);
        const newer = changes.find((o) => o !== w && before_(w, o) && before_(o, g));
        assert.equal(
          newer,
          undefined,
          `key ${k}: read the stale ${g.read} although ${newer?.kind} ${newer?.value ?? ''} returned before the read`,
        );
      }
    }
    const writes = ops.filter((o) => o.kind === 'write');
    const line = `shared keys: ${workers} workers on 6 stores, ${ops.length} operations (${writes.length} writes, ${writes.filter((w) => !w.ok).length} writes refused on cleared keys, ${ops.filter((o) => o.kind === 'clear').length} clears, ${reads} reads of which ${notFound} not found), 0 stale or foreign reads`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });

  test('purge in a loop against set extending sessions at their expiry: no acknowledged extension is deleted', {
    timeout: 300_000,
  }, async (t) => {
    const [extender] = open(1) as [SessionStore];
    const purger = openAdmin();
    const earlier = Number(
      (await db.query('SELECT count(*)::int AS n FROM session.sessions WHERE expires_at > now()')).rows[0]?.n,
    );
    // Expired filler spread over many pages, so that each purge call sweeps and deletes for real.
    await db.query(`INSERT INTO session.sessions (digest, expires_at, value)
                    SELECT sha256(('filler' || i)::bytea), now() - interval '1 s', repeat('f', 200) FROM generate_series(1, 20000) i`);
    let purging = true;
    let purgeCalls = 0;
    let purged = 0;
    const purgeLoop = (async () => {
      while (purging) {
        purged += await purger.purge({ batchSize: pick([50, 500, 10000]) });
        purgeCalls += 1;
      }
    })();
    const rounds = Number(process.env.RACE_ROUNDS ?? 8);
    const perRound = 300;
    const acknowledged: string[] = [];
    const refused: string[] = [];
    try {
      for (let round = 0; round < rounds; round += 1) {
        const born = await Promise.all(
          Array.from({ length: perRound }, (_, i) => timed(() => extender.generate({ expiry: 1, value: `r${round}:${i}` }))),
        );
        // Each session is extended at a random moment around its expiry (1 s after it was born).
        await Promise.all(
          born.map(async ({ end, result: key }) => {
            await sleep(Math.max(0, end + 700 + random() * 600 - performance.now()));
            ((await extender.set(key, `extended:${key}`, { expiry: 3600 })) ? acknowledged : refused).push(key);
          }),
        );
      }
    } finally {
      purging = false;
      await purgeLoop;
    }
    while ((await purger.purge()) > 0);
    for (const key of acknowledged) {
      const r = await extender.get(key);
      assert.ok(r.ok && r.value === `extended:${key}`, `an acknowledged extension was lost: ${JSON.stringify(r)}`);
    }
    for (const key of refused) assert.deepEqual(await extender.get(key), { ok: false, error: 'not_found' });
    // Exactly the extended sessions (and the live ones of earlier tests) are left: purge deleted the rest.
    const left = await db.query<{ value: string | null; expired: boolean }>(
      `SELECT value, expires_at <= now() AS expired FROM session.sessions WHERE value LIKE 'r%:%' OR value LIKE 'extended:%'`,
    );
    const extended = new Set(acknowledged.map((k) => `extended:${k}`));
    assert.deepEqual(
      left.rows.filter((r) => r.value === null || !extended.has(r.value)),
      [],
      'rows left besides the extended sessions',
    );
    assert.equal(left.rows.length, acknowledged.length);
    assert.equal((await db.query('SELECT count(*)::int AS n FROM session.sessions')).rows[0]?.n, earlier + acknowledged.length);
    assert.ok(acknowledged.length > 0 && refused.length > 0, 'the extensions did not straddle the expiry');
    const line = `purge vs extension: ${rounds * perRound} sessions extended around their 1 s expiry while ${purgeCalls} purge calls deleted ${purged} rows; ${acknowledged.length} extensions acknowledged, all kept; ${refused.length} too late (not found)`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });

  test('set_default_period concurrent with generate: every new session gets the old or the new period', {
    timeout: 300_000,
  }, async (t) => {
    const generators = open(3);
    const setter = openAdmin();
    // Periods 100000 s apart: the period a session got is recognisable however long we take to read it.
    const periods = [100000, 200000, 300000, 400000, 500000];
    const initial = periods[0] as number;
    await setter.setDefaultPeriod(initial);
    const changes: (Timed & { period: number })[] = [];
    let running = true;
    const setterLoop = (async () => {
      while (running) {
        const period = pick(periods);
        changes.push({ ...(await timed(() => setter.setDefaultPeriod(period))), period });
      }
    })();
    const born: (Timed & { result: string })[] = [];
    try {
      await Promise.all(
        generators.flatMap((g) =>
          [0, 1].map(async () => {
            for (let i = 0; i < 500; i += 1) born.push(await timed(() => g.generate()));
          }),
        ),
      );
    } finally {
      running = false;
      await setterLoop;
    }
    const reader = generators[0] as SessionStore;
    let mixed = 0;
    for (const b of born) {
      const r = await timed(() => reader.get(b.result));
      assert.ok(r.result.ok === false && r.result.error === 'not_set');
      // The session's expiry, read as the owner, minus the generate call's bracket gives its period.
      const exp = Number(
        (
          await db.query(
            `SELECT extract(epoch FROM expires_at - now()) AS s FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
            [b.result],
          )
        ).rows[0]?.s,
      );
      const got = periods.find((p) => Math.abs(exp + (performance.now() - b.start) / 1000 - p) < 60);
      assert.ok(got !== undefined, `a session got a period of about ${exp} s, which nobody set`);
      const inForce = changes.filter((c) => before_(c, b)).at(-1)?.period ?? initial;
      const allowed = new Set([inForce, ...changes.filter((c) => !before_(c, b) && !before_(b, c)).map((c) => c.period)]);
      assert.ok(allowed.has(got), `a session got ${got} s, while only ${[...allowed].join(' or ')} was possible`);
      if (allowed.size > 1) mixed += 1;
    }
    await setter.setDefaultPeriod(604800);
    const line = `default period vs generate: ${born.length} sessions generated during ${changes.length} changes of the default period; ${mixed} overlapped a change; every one got the old or the new period`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });

  test('5 concurrent `session-pg migrate` processes on an empty database, 3 times: all succeed, one applies, same schema as one run', {
    timeout: 300_000,
  }, async (t) => {
    const reference = await freshDatabase('single', { empty: true });
    try {
      await migrate({ connectionString: reference.url, log: false });
      const expected = schemaDump(reference.url);
      for (let round = 0; round < 3; round += 1) {
        const racy = await freshDatabase('racy', { empty: true });
        try {
          const runs = await Promise.all(
            Array.from(
              { length: 5 },
              () =>
                new Promise<{ code: number | null; out: string }>((resolve) => {
                  const child = spawn(process.execPath, [cliPath, 'migrate', '--database-url', racy.url], {
                    stdio: ['ignore', 'pipe', 'pipe'],
                  });
                  let out = '';
                  child.stdout.on('data', (d: Buffer) => {
                    out += String(d);
                  });
                  child.stderr.on('data', (d: Buffer) => {
                    out += String(d);
                  });
                  child.on('exit', (code) => resolve({ code, out }));
                }),
            ),
          );
          for (const r of runs) assert.equal(r.code, 0, r.out);
          assert.equal(
            runs.filter((r) => r.out.includes(`Applied: ${shipped.join(', ')}`)).length,
            1,
            runs.map((r) => r.out).join('\n---\n'),
          );
          // Each migration recorded exactly once.
          assert.equal(
            (await racy.query(`SELECT string_agg(name, ' ' ORDER BY id) AS names FROM public.session_migrations`)).rows[0]?.names,
            shipped.join(' '),
          );
          assert.equal(schemaDump(racy.url), expected);
        } finally {
          await racy.drop();
        }
      }
    } finally {
      await reference.drop();
    }
    const line =
      'concurrent migrations: 3 rounds of 5 OS processes, 15 exits 0, 3 applied once each, schema identical to a single run';
    t.diagnostic(line);
    console.log(`# ${line}`);
  });
});
