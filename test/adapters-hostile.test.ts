// Hostile stored values, planted with SQL under a live session's id and then read through each
// framework over HTTP: keys that could replace a prototype are dropped, values that are not a
// JSON object are refused with a 500, and neither the process nor Object.prototype is harmed.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ExpressSessionStore } from '../src/express.js';
import { FastifySessionStore } from '../src/fastify.js';
import { KoaSessionStore } from '../src/koa.js';
import { appFixture, expressApp, fastifyApp, koaApp, rowOf, type TestApp } from './apps.js';
import { Browser } from './web.js';

const f = appFixture('adapters_hostile');
const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

async function plant(sid: string, value: string): Promise<void> {
  const r = await f.db.query<{ ok: boolean }>('SELECT session.session_set($1, $2, 3600) AS ok', [sid, value]);
  assert.equal(r.rows[0]?.ok, true);
}

const storedText = async (sid: string) => (await rowOf(f.db, sid))?.value;

function assertUnharmed(): void {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeNames);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined, 'Object.prototype was polluted');
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
}

/** `{` + these members + the rest of the session as stored. */
const withMembers = (original: string, members: string) => `{${members},${original.slice(1)}`;

// Kept: the session loads, without the dropped keys (role stays the stored one, never "root").
const dropped: { name: string; value: (original: string) => string }[] = [
  { name: 'an own top-level __proto__', value: (o) => withMembers(o, '"__proto__":{"polluted":"yes","role":"root"}') },
  {
    name: 'a __proto__ written with a JSON escape',
    value: (o) => withMembers(o, '"\\u005f_proto__":{"polluted":"yes","role":"root"}'),
  },
  { name: 'constructor.prototype', value: (o) => withMembers(o, '"constructor":{"prototype":{"polluted":"yes"}}') },
  {
    name: 'nested __proto__, constructor, toString and valueOf',
    value: (o) =>
      withMembers(
        o,
        '"note":{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"toString":1,"valueOf":1}',
      ),
  },
];

// Refused: the request fails with 500 and the stored value stays as it was.
const refused: { name: string; value: string }[] = [
  { name: 'an array', value: '[{"user":"alice"}]' },
  { name: 'a string', value: '"alice"' },
  { name: 'a number', value: '42' },
  { name: 'null', value: 'null' },
  { name: 'true', value: 'true' },
  { name: 'a value that is not JSON', value: '{"user":' },
];

const frameworks: [string, () => Promise<TestApp>][] = [
  ['express', () => expressApp(new ExpressSessionStore({ store: f.shared }))],
  ['fastify', () => fastifyApp(new FastifySessionStore({ store: f.shared }))],
  ['koa', () => koaApp(new KoaSessionStore({ store: f.shared }))],
];

for (const [name, make] of frameworks) {
  describe(`${name}: hostile stored values`, () => {
    let app: TestApp;
    before(async () => {
      app = await make();
      f.keep(app);
    });

    /** A logged-in browser, its session id and the value the framework stored. */
    async function loggedIn() {
      const b = new Browser(app.base);
      assert.equal((await b.post('/login')).status, 200);
      const sid = app.sidOf(b);
      const original = await storedText(sid);
      assert.ok(typeof original === 'string');
      return { b, sid, original };
    }

    async function stillServing(): Promise<void> {
      const fresh = new Browser(app.base);
      assert.equal((await fresh.get('/whoami')).body, 'nobody');
      const b = new Browser(app.base);
      await b.post('/login');
      assert.equal(JSON.parse((await b.get('/whoami')).body).user, 'alice');
    }

    for (const c of dropped) {
      test(`${c.name}: dropped, the rest of the session loads`, async () => {
        const { b, sid, original } = await loggedIn();
        await plant(sid, c.value(original));
        const res = await b.get('/whoami');
        assert.equal(res.status, 200, res.body);
        const shown = JSON.parse(res.body) as { user: unknown; role: unknown };
        assert.equal(shown.user, 'alice');
        assert.equal(shown.role, 'admin', 'a key under __proto__ leaked into the session');
        assertUnharmed();
        // A change is saved without the dropped keys.
        assert.equal((await b.post('/downgrade')).status, 200);
        const saved = await storedText(sid);
        assert.ok(saved !== null && saved !== undefined && !/__proto__|constructor|polluted|\\u005f/.test(saved), saved ?? '');
        await stillServing();
      });
    }

    for (const c of refused) {
      test(`${c.name}: refused with 500, kept as stored, the process lives`, async () => {
        const { b, sid } = await loggedIn();
        await plant(sid, c.value);
        const res = await b.get('/whoami');
        assert.equal(res.status, 500);
        assertUnharmed();
        assert.equal(await storedText(sid), c.value);
        await stillServing();
      });
    }
  });
}

describe('express: a stored cookie express-session could not use', () => {
  let app: TestApp;
  before(async () => {
    app = await expressApp(new ExpressSessionStore({ store: f.shared }));
    f.keep(app);
  });

  const cookies: { name: string; cookie: string }[] = [
    { name: 'no cookie', cookie: '' },
    { name: 'a string cookie', cookie: '"cookie":"x",' },
    { name: 'maxAge that is not a number', cookie: '"cookie":{"originalMaxAge":3600000,"maxAge":"soon"},' },
    {
      name: 'an invalid sameSite',
      cookie: '"cookie":{"originalMaxAge":3600000,"expires":"2099-01-01T00:00:00.000Z","sameSite":"bogus"},',
    },
    { name: 'expires that is not a date', cookie: '"cookie":{"originalMaxAge":null,"expires":"never"},' },
  ];
  for (const c of cookies) {
    test(`${c.name}: refused with 500, kept as stored`, async () => {
      const b = new Browser(app.base);
      await b.post('/login');
      const sid = app.sidOf(b);
      const value = `{${c.cookie}"user":"alice","role":"admin"}`;
      await plant(sid, value);
      const res = await b.post('/downgrade');
      assert.equal(res.status, 500);
      assert.equal(res.body, 'database');
      assert.equal(await storedText(sid), value);
      assertUnharmed();
    });
  }
});
