// FastifySessionStore in a real Fastify 5 app with @fastify/session over real HTTP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { connect, type SessionStore } from '../src/index.js';
import { FastifySessionStore } from '../src/fastify.js';
import { withSessions } from './apps.js';
import { freshDatabase, type TestDatabase } from './helpers.js';
import { Browser, sessionIdOf } from './web.js';

declare module 'fastify' {
  interface Session {
    n?: number;
  }
}

let db: TestDatabase;
let shared: SessionStore;
let app: FastifyInstance;
let base: string;
let store: FastifySessionStore;

before(async () => {
  db = await freshDatabase('fastify');
  shared = connect({ connectionString: await db.clientRole() });
  store = new FastifySessionStore({ store: shared });
  app = Fastify();
  await withSessions(app, store);
  app.post('/login', async (req) => {
    req.session.user = 'alice';
    return 'ok';
  });
  app.get('/whoami', async (req) => req.session.user ?? 'nobody');
  app.post('/count', async (req) => {
    req.session.n = (req.session.n ?? 0) + 1;
    return String(req.session.n);
  });
  app.post('/regenerate', async (req) => {
    const user = req.session.user;
    await req.session.regenerate();
    if (user !== undefined) req.session.user = user;
    return 'ok';
  });
  app.post('/logout', async (req) => {
    await req.session.destroy();
    return 'bye';
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await app.close();
  await shared.close();
  await db.drop();
});

const cookieName = 'sessionId';

describe('@fastify/session with FastifySessionStore', () => {
  test('login sets a cookie and a counter survives across requests', async () => {
    const b = new Browser(base);
    assert.equal((await b.get('/whoami')).body, 'nobody');
    await b.post('/login');
    assert.ok(b.cookies.has(cookieName));
    assert.equal((await b.get('/whoami')).body, 'alice');
    for (let i = 1; i <= 3; i += 1) assert.equal((await b.post('/count')).body, String(i));
  });

  test('two clients stay independent', async () => {
    const a = new Browser(base);
    const b = new Browser(base);
    await a.post('/count');
    await a.post('/count');
    assert.equal((await b.post('/count')).body, '1');
    assert.equal((await a.post('/count')).body, '3');
  });

  test('regenerate issues a new id and the old one stops working', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const old = b.cookies.get(cookieName);
    await b.post('/regenerate');
    assert.notEqual(b.cookies.get(cookieName), old);
    assert.equal((await b.get('/whoami')).body, 'alice');
    const stale = new Browser(base);
    stale.cookies.set(cookieName, old ?? '');
    assert.equal((await stale.get('/whoami')).body, 'nobody');
    assert.deepEqual(await shared.get(sessionIdOf(old)), { ok: false, error: 'not_found' });
  });

  test('destroy logs out', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const sid = sessionIdOf(b.cookies.get(cookieName));
    await b.post('/logout');
    assert.equal((await b.get('/whoami')).body, 'nobody');
    assert.deepEqual(await shared.get(sid), { ok: false, error: 'not_found' });
  });

  test('concurrent requests on one session do not corrupt it', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const results = await Promise.all(Array.from({ length: 20 }, () => b.post('/count')));
    for (const r of results) assert.equal(r.status, 200);
    const next = Number((await b.post('/count')).body);
    assert.ok(next >= 2 && next <= 21, `counter ${next}`);
    assert.equal((await b.get('/whoami')).body, 'alice');
  });

  test('rolling saves of an unchanged session write nothing while more than half the period remains', async () => {
    const b = new Browser(base);
    await b.post('/login');
    const sid = sessionIdOf(b.cookies.get(cookieName));
    const before = { ...store.sessions.stats };
    for (let i = 0; i < 20; i += 1) assert.equal((await b.get('/whoami')).body, 'alice');
    assert.equal(store.sessions.stats.written - before.written, 0);
    assert.equal(store.sessions.stats.skipped - before.skipped, 20);
    const r = await shared.get(sid);
    assert.ok(r.ok && r.period <= 3600 && r.period > 3590, JSON.stringify(r));
  });
});
