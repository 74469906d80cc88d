// session-pg import connect-pg-simple: an Express app switches from connect-pg-simple to
// ExpressSessionStore, and the browsers' cookies keep working, over real HTTP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import { connect, type SessionStore } from '../src/index.js';
import { ExpressSessionStore } from '../src/express.js';
import { importConnectPgSimple, importReport, type ImportProgress } from '../src/import.js';
import { cli, errorCode, freshDatabase, type TestDatabase } from './helpers.js';
import { baseUrl, Browser, sessionIdOf } from './web.js';

declare module 'express-session' {
  interface SessionData {
    user?: string;
    cart?: string[];
    n?: number;
  }
}

/** connect-pg-simple 10's store (it ships no types). */
interface PgStore extends session.Store {
  close(): Promise<void>;
}
type PgStoreClass = new (options: {
  conString: string;
  schemaName: string;
  tableName: string;
  createTableIfMissing: boolean;
  pruneSessionInterval: false;
}) => PgStore;
const connectPgSimple = createRequire(import.meta.url)('connect-pg-simple') as (s: typeof session) => PgStoreClass;

const secret = 'the app secret, unchanged by the switch';
let db: TestDatabase;
let appUrl: string;
const servers: Server[] = [];
const closers: (() => Promise<void>)[] = [];

/** The same app, on either store. */
async function startApp(store: session.Store): Promise<string> {
  const app = express();
  app.use(session({ store, secret, resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } }));
  app.post('/login/:user', (req, res) => {
    req.session.user = req.params.user;
    req.session.cart = [`book for ${req.params.user}`, 'pen'];
    res.send('ok');
  });
  app.get('/me', (req, res) => {
    res.json({ user: req.session.user ?? null, cart: req.session.cart ?? null, n: req.session.n ?? 0 });
  });
  app.post('/count', (req, res) => {
    req.session.n = (req.session.n ?? 0) + 1;
    res.send(String(req.session.n));
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.send('bye')));
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  servers.push(server);
  return baseUrl(server);
}

/** Every source row's content and row version: any write to the table changes it. */
async function checksum(table: string): Promise<string> {
  const r = await db.query<{ sum: string }>(
    `SELECT count(*) || ':' || md5(coalesce(string_agg(format('%s|%s|%s|%s', sid, sess, expire, xmin), E'\\n' ORDER BY sid), '')) AS sum FROM ${table}`,
  );
  return r.rows[0]?.sum ?? '';
}

const ours = async (sid: string) =>
  (
    await db.query<{ value: string | null; cleared: boolean; expires: number; live: boolean }>(
      `SELECT value, cleared, extract(epoch FROM expires_at)::float8 AS expires, expires_at > clock_timestamp() AS live
     FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
      [sid],
    )
  ).rows[0];

before(async () => {
  db = await freshDatabase('import');
  // Not UTC: expire has no time zone, and connect-pg-simple writes it in the connection's zone.
  await db.query(`ALTER DATABASE ${db.name} SET TimeZone = 'America/New_York'`);
  await db.query('CREATE SCHEMA cps');
  appUrl = await db.clientRole();
});
after(async () => {
  for (const s of servers) s.close();
  for (const close of closers) await close();
  await db.drop();
});

describe('switching an Express app from connect-pg-simple', () => {
  test('the same cookies keep their sessions after import, function and CLI, and a second run imports nothing', async () => {
    const PGStore = connectPgSimple(session);
    // connect-pg-simple creates its table from its table.sql, in schema cps.
    const cps = new PGStore({
      conString: db.url,
      schemaName: 'cps',
      tableName: 'session',
      createTableIfMissing: true,
      pruneSessionInterval: false,
    });
    closers.push(() => cps.close());
    const oldBase = await startApp(cps);
    const alice = new Browser(oldBase);
    const bob = new Browser(oldBase);
    await alice.post('/login/alice');
    await alice.post('/count');
    await bob.post('/login/bob');
    const aliceBefore = (await alice.get('/me')).body;
    assert.deepEqual(JSON.parse(aliceBefore), { user: 'alice', cart: ['book for alice', 'pen'], n: 1 });
    assert.equal(alice.cookies.size, 1);
    const before = await checksum('cps.session');

    const seen: ImportProgress[] = [];
    const first = await importConnectPgSimple({ connectionString: db.url, schema: 'cps', table: 'session' }, (p) => {
      seen.push(p);
    });
    assert.equal(first.live, 2);
    assert.equal(first.imported, 2);
    assert.equal(first.replaced + first.kept + first.cleared + first.expired + first.tooLarge + first.badIds, 0);
    assert.equal(seen.length, first.batches);
    assert.deepEqual(seen.at(-1), first);

    // A session created in the old store after the first import: the CLI run brings it over.
    const carol = new Browser(oldBase);
    await carol.post('/login/carol');
    const beforeCli = await checksum('cps.session');
    const r = cli(['import', 'connect-pg-simple', '--schema', 'cps', '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^imported 1 of 3 live sessions \(3 looked at, 1 batches, [\d.]+ s\)$/m);
    assert.match(r.stdout, /^Done: 1 new, 0 replaced an expired session, from 3 rows read\.$/m);
    assert.match(r.stdout, /^ {2}2 kept: a live session with that id was already here$/m);
    assert.equal(await checksum('cps.session'), beforeCli, 'the CLI import only read the source');
    assert.notEqual(beforeCli, before, 'carol was added by the old app');

    for (const b of [alice, bob, carol]) {
      const sid = sessionIdOf([...b.cookies.values()][0]);
      const row = await ours(sid);
      assert.ok(row?.live, 'imported live');
      const source = (
        await db.query<{ sess: string; expire: number }>(
          `SELECT sess::text AS sess, extract(epoch FROM expire AT TIME ZONE 'America/New_York')::float8 AS expire FROM cps.session WHERE sid = $1`,
          [sid],
        )
      ).rows[0];
      assert.equal(row.value, source?.sess, 'the value is the JSON text connect-pg-simple stored');
      assert.equal(row.expires, source?.expire, "the expiry is expire, read in the database's time zone");
      // A touch by connect-pg-simple moves expire but not the JSON, so the cookie in the JSON may be
      // a little behind; read in the wrong zone, expire would be hours off.
      const cookieExpires = Date.parse((JSON.parse(row.value ?? '{}') as { cookie: { expires: string } }).cookie.expires) / 1000;
      assert.ok(Math.abs(row.expires - cookieExpires) < 60, `expiry ${row.expires} vs cookie ${cookieExpires}`);
    }

    // The app restarts on our store (as the application's role): same cookies, same data.
    const store = new ExpressSessionStore({ connectionString: appUrl });
    closers.push(() => store.close());
    const newBase = await startApp(store);
    const [alice2, bob2, carol2] = [alice, bob, carol].map((b) => {
      const moved = new Browser(newBase);
      moved.cookies = new Map(b.cookies);
      return moved;
    }) as [Browser, Browser, Browser];
    assert.equal((await alice2.get('/me')).body, aliceBefore);
    assert.deepEqual(JSON.parse((await bob2.get('/me')).body), { user: 'bob', cart: ['book for bob', 'pen'], n: 0 });
    assert.equal(JSON.parse((await carol2.get('/me')).body).user, 'carol');
    const cookie = [...alice2.cookies.values()][0];
    assert.equal((await alice2.post('/count')).body, '2', 'the imported session can be written');
    assert.equal([...alice2.cookies.values()][0], cookie, 'the same cookie all along');
    assert.equal(JSON.parse((await alice2.get('/me')).body).n, 2);
    await bob2.post('/logout');
    assert.equal(JSON.parse((await bob2.get('/me')).body).user, null);

    // Again: nothing new, alice's newer session of ours and bob's logout stand.
    const again = cli([
      'import',
      'connect-pg-simple',
      '--schema=cps',
      '--table=session',
      '--batch-size=2',
      '--database-url',
      db.url,
    ]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^Done: 0 new, 0 replaced an expired session, from 3 rows read\.$/m);
    assert.match(again.stdout, /^ {2}2 kept: a live session with that id/m);
    assert.match(again.stdout, /^ {2}1 kept: the user had logged out here$/m);
    assert.match(again.stderr, /^imported 0 of 3 live sessions \(2 looked at, 1 batches/m);
    assert.match(again.stderr, /^imported 0 of 3 live sessions \(3 looked at, 2 batches/m);
    assert.equal(JSON.parse((await alice2.get('/me')).body).n, 2);
    assert.equal(JSON.parse((await bob2.get('/me')).body).user, null);
    assert.equal(await checksum('cps.session'), beforeCli);
  });
});

describe('which rows are imported', () => {
  let store: SessionStore;
  const sid = () => randomBytes(24).toString('base64url');
  const sess = (label: string, minutes: number) =>
    JSON.stringify({
      cookie: {
        originalMaxAge: minutes * 60_000,
        expires: new Date(Date.now() + minutes * 60_000).toISOString(),
        httpOnly: true,
        path: '/',
      },
      label,
    });
  // Written as connect-pg-simple does: local time in the database's zone (this pool's connections
  // may predate the ALTER DATABASE).
  const localNow = `(now() AT TIME ZONE 'America/New_York')`;
  const insert = (table: string, rows: [string, string, number][]) =>
    db.query(
      `INSERT INTO ${table} (sid, sess, expire) SELECT r.sid, r.sess::json, ${localNow} + make_interval(mins => r.minutes)
       FROM json_to_recordset($1::json) AS r(sid text, sess text, minutes int)`,
      [JSON.stringify(rows.map(([s, v, minutes]) => ({ sid: s, sess: v, minutes })))],
    );

  before(async () => {
    store = connect({ connectionString: appUrl });
    await db.query('CREATE TABLE cps.edge (sid varchar NOT NULL PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)');
  });
  after(async () => {
    await store.close();
  });

  test('expired, oversized and badly named rows are skipped and counted; ours wins when live or logged out', async () => {
    const fresh = Array.from({ length: 7 }, sid);
    const [expired, newerOurs, loggedOut, expiredOurs, large, , last] = fresh as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const badId = 'short-id';
    await insert('cps.edge', [
      ...fresh.map((s, i): [string, string, number] => [s, sess(`source ${i}`, 60), 60]),
      [badId, sess('bad id', 60), 60],
    ]);
    await db.query(`UPDATE cps.edge SET expire = ${localNow} - interval '1 minute' WHERE sid = $1`, [expired]);
    await db.query(`UPDATE cps.edge SET sess = json_build_object('pad', repeat('x', 3000)) WHERE sid = $1`, [large]);
    await store.put(newerOurs, sess('ours, newer', 30), { expiry: 1800 });
    await store.put(loggedOut, sess('ours, logged out', 30), { expiry: 1800 });
    await store.clear(loggedOut);
    await store.put(expiredOurs, sess('ours, expired', 0), { expiry: -10 });
    const before = await checksum('cps.edge');
    await db.query('UPDATE session.config SET max_value_bytes = 2000');
    let done: ImportProgress;
    try {
      done = await importConnectPgSimple({ connectionString: db.url, schema: 'cps', table: 'edge', batchSize: 3 });
    } finally {
      await db.query('UPDATE session.config SET max_value_bytes = DEFAULT');
    }
    assert.deepEqual(
      { ...done, elapsedMs: 0 },
      {
        live: 7,
        scanned: 8,
        imported: 2,
        replaced: 1,
        kept: 1,
        cleared: 1,
        expired: 1,
        tooLarge: 1,
        tooFar: 0,
        badIds: 1,
        batches: 3,
        elapsedMs: 0,
      },
    );
    assert.equal(await checksum('cps.edge'), before, 'the source is untouched');

    assert.equal(await ours(expired), undefined);
    assert.equal(await ours(large), undefined);
    assert.equal(await ours(badId), undefined);
    const newer = await store.get(newerOurs);
    assert.ok(newer.ok && /ours, newer/.test(newer.value), 'a live session of ours is not overwritten');
    const tomb = await ours(loggedOut);
    assert.equal(tomb?.cleared, true);
    assert.equal(tomb?.value, null);
    assert.equal((await store.get(loggedOut)).ok, false, 'a logout with our store stays a logout');
    const revived = await store.get(expiredOurs);
    assert.ok(revived.ok && /source 3/.test(revived.value), 'an expired session of ours gives way to a live source one');
    const got = await store.get(last);
    assert.ok(got.ok && /source 6/.test(got.value));
    assert.ok(got.period > 3500 && got.period <= 3600, `period ${got.period}`);
  });

  test('imported sessions obey the absolute lifetime and the 100-year bound, as generated ones do', async () => {
    await db.query('CREATE TABLE cps.capped (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)');
    const [week, far, replaced, minute] = Array.from({ length: 4 }, sid) as [string, string, string, string];
    await insert('cps.capped', [
      [week, sess('a week', 7 * 1440), 7 * 1440],
      [far, sess('far', 60), 60],
      [replaced, sess('replaces ours', 60), 60],
      [minute, sess('a minute', 1), 1],
    ]);
    await db.query(`UPDATE cps.capped SET expire = ${localNow} + interval '200 years' WHERE sid = $1`, [far]);
    // An expired session of ours, with a subject and an end of life already past: replaced by the
    // source's session, it must become a new session, not keep the old end or owner.
    await db.query(
      `INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at, subject, label, handle)
                    VALUES (sha256(convert_to($1, 'UTF8')), now() - interval '1 hour', '{}', now() - interval '2 days',
                            now() - interval '1 hour', now() - interval '1 hour', 'old-user', 'old device', gen_random_uuid())`,
      [replaced],
    );
    await db.query('UPDATE session.config SET absolute_lifetime = 600');
    let done: ImportProgress;
    try {
      done = await importConnectPgSimple({ connectionString: db.url, schema: 'cps', table: 'capped' });
    } finally {
      await db.query('UPDATE session.config SET absolute_lifetime = NULL');
    }
    assert.deepEqual(
      { imported: done.imported, replaced: done.replaced, tooFar: done.tooFar },
      { imported: 2, replaced: 1, tooFar: 1 },
    );
    assert.match(importReport(done), /^ {2}1 skipped: "expire" is more than 100 years ahead/m);
    assert.equal(await ours(far), undefined, 'an expire 200 years ahead is not imported');
    const rows = await db.query<{
      sid: string;
      left: number;
      life: number;
      subject: string | null;
      label: string | null;
      handle: string | null;
    }>(
      `SELECT c.sid, extract(epoch FROM s.expires_at - clock_timestamp())::float8 AS left,
              extract(epoch FROM s.ends_at - s.created_at)::float8 AS life, s.subject, s.label, s.handle::text AS handle
         FROM cps.capped c JOIN session.sessions s ON s.digest = sha256(convert_to(c.sid, 'UTF8'))`,
    );
    const bySid = new Map(rows.rows.map((r) => [r.sid, r]));
    for (const s of [week, replaced]) {
      const r = bySid.get(s);
      assert.ok(r !== undefined && r.life === 600, `ends 600 s after the import: ${JSON.stringify(r)}`);
      assert.ok(r.left > 500 && r.left <= 600, `the expiry is capped by the end: ${r.left} s left`);
      assert.deepEqual([r.subject, r.label, r.handle], [null, null, null], 'a replaced row keeps nothing of the old session');
    }
    const short = bySid.get(minute);
    assert.ok(short !== undefined && short.left <= 60 && short.life === 600, 'an expiry before the end stays as it was');
    // Extending an imported session never passes its end, as for a generated one.
    assert.equal(await store.touch(week, { expiry: 7200 }), true);
    const got = await store.get(week);
    assert.ok(got.ok && got.period <= 600, `period ${got.ok ? got.period : 'none'} after a touch of 7200 s`);
  });

  test('no session id reaches the server log, even with every statement logged with its parameters', async (t) => {
    const log =
      (
        await db.query<{ path: string }>(
          `SELECT regexp_replace(current_setting('data_directory'), '/[^/]+$', '') || '/server.log' AS path`,
        )
      ).rows[0]?.path ?? '';
    const size = async () =>
      Number(
        (await db.query<{ size: string | null }>(`SELECT (pg_stat_file($1, true)).size AS size`, [log])).rows[0]?.size ?? -1,
      );
    const start = await size();
    if (start < 0) {
      t.skip(`the server log is not at ${log} (a server not started by the test harness); not checked`);
      return;
    }
    await db.query('CREATE TABLE cps.logged (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)');
    const sids = Array.from({ length: 10 }, sid);
    await insert(
      'cps.logged',
      sids.map((s): [string, string, number] => [s, sess('logged', 60), 60]),
    );
    const done = await importConnectPgSimple({
      connectionString: db.url,
      schema: 'cps',
      table: 'logged',
      batchSize: 3,
      options: '-c log_min_duration_statement=0',
    });
    assert.equal(done.imported, 10);
    assert.equal(done.batches, 4);
    const text =
      (await db.query<{ text: string }>(`SELECT pg_read_file($1, $2, $3) AS text`, [log, start, (await size()) - start])).rows[0]
        ?.text ?? '';
    assert.equal(
      text.match(/LOG: {2}duration: [\d.]+ ms {2}execute <unnamed>: -- Template\. \$1: the batch size/g)?.length,
      4,
      'each batch was logged',
    );
    for (const s of sids) assert.ok(!text.includes(s), 'a session id is in the server log');
  });

  test('--time-zone reads expire in that zone; many rows go in batches with a progress line each', async () => {
    await db.query('CREATE TABLE cps.many (sid text PRIMARY KEY, sess jsonb NOT NULL, expire timestamp NOT NULL)');
    await db.query(`INSERT INTO cps.many SELECT encode(sha256(i::text::bytea), 'base64'), '{"cookie":{},"i":1}',
                           (now() AT TIME ZONE 'UTC') + interval '2 hours' FROM generate_series(1, 2500) i`);
    // base64 with + and /: not ids our store can save. Make them base64url.
    await db.query(`UPDATE cps.many SET sid = translate(sid, '+/=', '-_')`);
    const before = await checksum('cps.many');
    const r = cli([
      'import',
      'connect-pg-simple',
      '--schema',
      'cps',
      '--table',
      'many',
      '--batch-size',
      '1000',
      '--time-zone',
      'UTC',
      '--database-url',
      db.url,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => l.replace(/, [\d.]+ s\)$/, '')),
      [
        'imported 1000 of 2500 live sessions (1000 looked at, 1 batches',
        'imported 2000 of 2500 live sessions (2000 looked at, 2 batches',
        'imported 2500 of 2500 live sessions (2500 looked at, 3 batches',
      ],
    );
    assert.match(r.stdout, /^Done: 2500 new/m);
    assert.equal(await checksum('cps.many'), before);
    // Read in UTC, as written: two hours from now, not two hours shifted by New York's offset.
    const period =
      (
        await db.query<{ p: number }>(
          `SELECT extract(epoch FROM max(expires_at) - clock_timestamp())::float8 AS p FROM session.sessions
        WHERE digest IN (SELECT sha256(convert_to(sid, 'UTF8')) FROM cps.many)`,
        )
      ).rows[0]?.p ?? 0;
    assert.ok(period > 7000 && period <= 7200, `${period} s left`);
  });

  test("a table that is not connect-pg-simple's, a role that is not the owner, wrong usage: clear errors, exit 1 or 2", async () => {
    await db.query('CREATE TABLE cps.other (id text PRIMARY KEY, sess json, expire timestamp)');
    await db.query('CREATE TABLE cps.notjson (sid text PRIMARY KEY, sess text, expire timestamp)');
    await db.query('CREATE TABLE cps.nokey (sid text, sess json, expire timestamp)');
    const refused = (args: string[], pattern: RegExp) => {
      const r = cli(['import', 'connect-pg-simple', '--schema', 'cps', ...args]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    };
    refused(
      ['--table', 'other', '--database-url', db.url],
      /session-pg: database: table "cps"\."other" is not a connect-pg-simple table: .*missing: sid/,
    );
    refused(['--table', 'notjson', '--database-url', db.url], /wrong type: sess is text/);
    refused(['--table', 'nokey', '--database-url', db.url], /no primary key or unique index on sid/);
    refused(['--table', 'absent', '--database-url', db.url], /table "cps"\."absent" does not exist/);
    refused(
      ['--table', 'edge', '--database-url', appUrl],
      /permission_denied: the import writes session\.sessions directly: run it as the owner/,
    );
    refused(['--table', 'edge', '--time-zone', 'Mars/Olympus', '--database-url', db.url], /invalid_parameter/);

    for (const args of [
      ['import'],
      ['import', 'redis'],
      ['import', 'connect-pg-simple', 'extra'],
      ['import', 'connect-pg-simple', '--batch-size', '0'],
      ['import', 'connect-pg-simple', '--batch-size', 'lots'],
      ['import', 'connect-pg-simple', '--table='],
    ]) {
      const r = cli([...args, '--database-url', db.url]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^session-pg import: .*\(see session-pg import --help\)\n$/);
    }
    assert.equal(await errorCode(importConnectPgSimple({ connectionString: db.url, batchSize: 0.5 })), 'invalid_argument');
    assert.equal(await errorCode(importConnectPgSimple({ connectionString: db.url, schema: 'cps', table: 'other' })), 'database');
    assert.match(cli(['import', '--help']).stdout, /^Usage: session-pg import connect-pg-simple/);
  });
});
