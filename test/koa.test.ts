// KoaSessionStore in a real Koa 3 app with koa-session 7 over real HTTP.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { SessionError } from '../src/index.js';
import { KoaSessionStore } from '../src/koa.js';
import { appFixture, koaApp, rowOf, type TestApp } from './apps.js';
import { Browser } from './web.js';

const f = appFixture('koa');

async function started(store: KoaSessionStore, opts: Parameters<typeof koaApp>[1] = {}): Promise<TestApp> {
  const app = await koaApp(store, opts);
  f.keep(app);
  return app;
}

const row = (sid: string) => rowOf(f.db, sid);

const whoami = async (b: Browser) => {
  const body = (await b.get('/whoami')).body;
  return body === 'nobody' ? body : (JSON.parse(body) as { user: string; role: string }).user;
};

describe('koa-session with KoaSessionStore', () => {
  let app: TestApp;
  let store: KoaSessionStore;
  before(async () => {
    store = new KoaSessionStore({ store: f.shared });
    app = await started(store);
  });

  test('login sets a cookie with an id from genid, and a counter survives across requests', async () => {
    const b = new Browser(app.base);
    assert.equal(await whoami(b), 'nobody');
    assert.equal(b.cookies.size, 0, 'no cookie before anything is stored');
    await b.post('/login');
    const sid = app.sidOf(b);
    assert.match(sid, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(await whoami(b), 'alice');
    for (let i = 1; i <= 3; i += 1) assert.equal((await b.post('/count')).body, String(i));
    assert.equal((await row(sid))?.cleared, false);
  });

  test('two clients stay independent', async () => {
    const a = new Browser(app.base);
    const b = new Browser(app.base);
    await a.post('/count');
    await a.post('/count');
    assert.equal((await b.post('/count')).body, '1');
    assert.equal((await a.post('/count')).body, '3');
  });

  test('regenerate issues a new id, keeps the data, and the old id stops working', async () => {
    const b = new Browser(app.base);
    await b.post('/login');
    const old = new Browser(app.base);
    old.cookies = new Map(b.cookies);
    const oldSid = app.sidOf(b);
    await b.post('/regenerate');
    assert.notEqual(app.sidOf(b), oldSid);
    assert.equal(await whoami(b), 'alice');
    assert.equal(await whoami(old), 'nobody');
    const tombstone = await row(oldSid);
    assert.equal(tombstone?.cleared, true);
    assert.equal(tombstone?.value, null);
  });

  test('logout (ctx.session = null) ends the session', async () => {
    const b = new Browser(app.base);
    await b.post('/login');
    const sid = app.sidOf(b);
    const old = new Browser(app.base);
    old.cookies = new Map(b.cookies);
    await b.post('/logout');
    assert.equal(await whoami(b), 'nobody');
    assert.equal(await whoami(old), 'nobody');
    assert.equal((await row(sid))?.cleared, true);
  });

  test('concurrent requests on one session do not corrupt it', async () => {
    const b = new Browser(app.base);
    await b.post('/login');
    const results = await Promise.all(Array.from({ length: 20 }, () => b.post('/count')));
    for (const r of results) assert.equal(r.status, 200);
    const next = Number((await b.post('/count')).body);
    assert.ok(next >= 2 && next <= 21, `counter ${next}`);
    assert.equal(await whoami(b), 'alice');
  });

  test('a stale _expire in the stored value does not end a live session: the database decides', async () => {
    const b = new Browser(app.base);
    await b.post('/login');
    const sid = app.sidOf(b);
    const value = JSON.parse((await row(sid))?.value ?? '{}') as { _expire: number };
    value._expire = Date.now() - 60_000; // what touches leave behind: they never rewrite the value
    assert.equal(await f.shared.set(sid, JSON.stringify(value), { expiry: 3600 }), true);
    assert.equal(await whoami(b), 'alice');
  });
});

describe('koa-session rolling: unchanged sessions are touched, never rewritten', () => {
  test('with the default threshold, read-only requests write nothing', async () => {
    const store = new KoaSessionStore({ store: f.shared });
    const app = await started(store, { rolling: true });
    const b = new Browser(app.base);
    await b.post('/login');
    const sid = app.sidOf(b);
    const version = (await row(sid))?.version;
    const before = { ...store.sessions.stats };
    for (let i = 0; i < 10; i += 1) assert.equal(await whoami(b), 'alice');
    assert.equal(store.sessions.stats.written - before.written, 0);
    assert.equal(store.sessions.stats.skipped - before.skipped, 10);
    assert.equal((await row(sid))?.version, version, 'the row was rewritten');
  });

  test('with touchThreshold 1, every read-only request moves the expiry and leaves the value as it was', async () => {
    const store = new KoaSessionStore({ store: f.shared, touchThreshold: 1 });
    const app = await started(store, { rolling: true, maxAge: 60_000 });
    const b = new Browser(app.base);
    await b.post('/login');
    const sid = app.sidOf(b);
    const first = await row(sid);
    const before = store.sessions.stats.written;
    for (let i = 0; i < 3; i += 1) assert.equal(await whoami(b), 'alice');
    assert.equal(store.sessions.stats.written - before, 3);
    const now = await row(sid);
    assert.notEqual(now?.version, first?.version, 'nothing was touched');
    assert.equal(now?.value, first?.value, 'a touch rewrote the value');
  });
});

describe('koa-session maxAge becomes the expiry', () => {
  test("a number of milliseconds: the cookie age plus koa-session's 10 s margin", async () => {
    const app = await started(new KoaSessionStore({ store: f.shared }), { maxAge: 60_000 });
    const b = new Browser(app.base);
    await b.post('/login');
    const r = await f.shared.get(app.sidOf(b));
    assert.ok(r.ok && r.period <= 70 && r.period >= 68, JSON.stringify(r));
  });

  test('"session": the database\'s default period', async () => {
    const app = await started(new KoaSessionStore({ store: f.shared }), { maxAge: 'session' });
    const b = new Browser(app.base);
    await b.post('/login');
    const r = await f.shared.get(app.sidOf(b));
    const period = await f.shared.defaultPeriod();
    assert.ok(r.ok && r.period <= period && r.period >= period - 2, JSON.stringify(r));
  });
});

describe('KoaSessionStore ids', () => {
  test("koa-session's default UUID ids are accepted; a prefix with other characters is refused", async () => {
    const store = new KoaSessionStore({ store: f.shared });
    const uuid = randomUUID();
    await store.set(uuid, { user: 'alice' }, 60_000, { changed: true, ctx: {} });
    assert.equal((await store.get(uuid))?.user, 'alice');
    await assert.rejects(
      store.set(`sess:${randomUUID()}`, { user: 'alice' }, 60_000, { changed: true, ctx: {} }),
      (err) => err instanceof SessionError && err.code === 'invalid_parameter',
    );
  });
});

describe('KoaSessionStore called without a ctx', () => {
  test('set updates first and creates only when no live session exists; never revives a cleared one', async () => {
    const store = new KoaSessionStore({ store: f.shared });
    const key = store.genid();
    await store.set(key, { user: 'alice' }, 60_000);
    assert.equal((await store.get(key))?.user, 'alice');
    await store.set(key, { user: 'bob' }, 60_000, { changed: true });
    assert.equal((await store.get(key))?.user, 'bob');
    await store.destroy(key);
    await store.set(key, { user: 'mallory' }, 60_000);
    assert.equal(await store.get(key), null);
  });
});
