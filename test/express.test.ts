// ExpressSessionStore in a real Express 5 app over real HTTP.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import { connect, type SessionStore } from '../src/index.js';
import { ExpressSessionStore } from '../src/express.js';
import { rowOf } from './apps.js';
import { freshDatabase, type TestDatabase } from './helpers.js';
import { baseUrl, Browser, sessionIdOf } from './web.js';

declare module 'express-session' {
  interface SessionData {
    user?: string;
    n?: number;
  }
}

let db: TestDatabase;
let shared: SessionStore;
const servers: Server[] = [];

async function startApp(store: ExpressSessionStore, cookie: session.CookieOptions = {}): Promise<string> {
  const app = express();
  app.use(session({ store, secret: 'test secret', resave: false, saveUninitialized: false, cookie }));
  app.post('/login', (req, res) => {
    req.session.user = 'alice';
    res.send('ok');
  });
  app.get('/whoami', (req, res) => {
    res.send(req.session.user ?? 'nobody');
  });
  app.post('/count', (req, res) => {
    req.session.n = (req.session.n ?? 0) + 1;
    res.send(String(req.session.n));
  });
  app.post('/regenerate', (req, res, next) => {
    const user = req.session.user;
    req.session.regenerate((err) => {
      if (err) return next(err);
      if (user !== undefined) req.session.user = user;
      res.send('ok');
    });
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

/** xmin changes on every write: equal versions mean nothing was written. */
const rowVersion = async (sid: string) => (await rowOf(db, sid))?.version;
/** A cleared session keeps a tombstone (no value, cleared) until its expiry. */
async function rowState(sid: string) {
  const r = await rowOf(db, sid);
  return r && { cleared: r.cleared, value: r.value };
}

before(async () => {
  db = await freshDatabase('express');
  shared = connect({ connectionString: await db.clientRole() });
});
after(async () => {
  for (const s of servers) s.close();
  await shared.close();
  await db.drop();
});

describe('express-session with ExpressSessionStore', () => {
  let base: string;
  let store: ExpressSessionStore;
  before(async () => {
    store = new ExpressSessionStore({ store: shared });
    base = await startApp(store);
  });

  test('login sets a cookie and a counter survives across requests', async () => {
    const b = new Browser(base);
    assert.equal((await b.get('/whoami')).body, 'nobody');
    assert.equal(b.cookies.size, 0, 'no cookie before anything is stored');
    await b.post('/login');
    assert.equal(b.cookies.size, 1);
    assert.equal((await b.get('/whoami')).body, 'alice');
    for (let i = 1; i <= 3; i += 1) assert.equal((await b.post('/count')).body, String(i));
  });

  test('two clients stay independent', async () => {
    const a = new Browser(base);
    const b = new Browser(base);
    await a.post('/login');
    await a.post('/count');
    await a.post('/count');
    assert.equal((await b.post('/count')).body, '1');
    assert.equal((await b.get('/whoami')).body, 'nobody');
    assert.equal((await a.post('/count')).body, '3');
  });

  test('regenerate issues a new id and the old one stops working', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const oldCookie = b.cookies.get('connect.sid');
    await b.post('/regenerate');
    const newCookie = b.cookies.get('connect.sid');
    assert.notEqual(newCookie, oldCookie);
    assert.equal((await b.get('/whoami')).body, 'alice');
    const stale = new Browser(base);
    stale.cookies.set('connect.sid', oldCookie ?? '');
    assert.equal((await stale.get('/whoami')).body, 'nobody');
    assert.deepEqual(await rowState(sessionIdOf(oldCookie)), { cleared: true, value: null });
  });

  test('destroy logs out', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const sid = sessionIdOf(b.cookies.get('connect.sid'));
    await b.post('/logout');
    assert.equal((await b.get('/whoami')).body, 'nobody');
    assert.deepEqual(await rowState(sid), { cleared: true, value: null });
  });

  test('concurrent requests on one session do not corrupt it', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const results = await Promise.all(Array.from({ length: 20 }, () => b.post('/count')));
    for (const r of results) assert.equal(r.status, 200);
    // Last writer wins: the counter lost increments, but the session is intact and readable.
    const next = Number((await b.post('/count')).body);
    assert.ok(next >= 2 && next <= 21, `counter ${next}`);
    assert.equal((await b.get('/whoami')).body, 'alice');
  });

  test('read-only requests write nothing while more than half the period remains', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const sid = sessionIdOf(b.cookies.get('connect.sid'));
    const version = await rowVersion(sid);
    const before = { ...store.sessions.stats };
    for (let i = 0; i < 20; i += 1) assert.equal((await b.get('/whoami')).body, 'alice');
    assert.equal(await rowVersion(sid), version, 'the row was rewritten');
    assert.equal(store.sessions.stats.written - before.written, 0);
    assert.equal(store.sessions.stats.skipped - before.skipped, 20);
  });

  test('cookie maxAge becomes the expiry; touch extends once less than half remains', async () => {
    const touchy = new ExpressSessionStore({ store: shared, touchThreshold: 1 });
    const base60 = await startApp(touchy, { maxAge: 60_000 });
    const b = new Browser(base60);
    await b.post('/login');
    const sid = sessionIdOf(b.cookies.get('connect.sid'));
    const r = await shared.get(sid);
    assert.ok(r.ok && r.period <= 60 && r.period >= 58, JSON.stringify(r));
    // With touchThreshold 1, "less than all of the period remains" holds at once: every read touches.
    const version = await rowVersion(sid);
    await b.get('/whoami');
    assert.notEqual(await rowVersion(sid), version);
    assert.equal(touchy.sessions.stats.written, 2);
  });

  test('length counts live sessions; a non-JSON value is an error, not a crash', async () => {
    const n = await new Promise<number>((resolve, reject) =>
      store.length((err, len) => (err ? reject(err as Error) : resolve(len ?? -1))),
    );
    assert.ok(n >= 5, `length ${n}`);
    const key = await shared.generate({ value: 'not json' });
    const err = await new Promise<unknown>((resolve) => store.get(key, (e) => resolve(e)));
    assert.ok(err instanceof Error);
  });
});
