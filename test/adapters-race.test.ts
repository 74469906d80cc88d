// Forced interleavings over real HTTP, for every adapter: request A loads the session and stops at
// a gate; request B (logout, regenerate, downgrade, a change) runs to completion; then A finishes.
// A must never bring a cleared session back, never write back a copy it did not change, and when
// both changed the session (different fields) both changes stay.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ExpressSessionStore } from '../src/express.js';
import { FastifySessionStore } from '../src/fastify.js';
import { KoaSessionStore } from '../src/koa.js';
import type { FrameworkSessions } from '../src/write-rules.js';
import { appFixture, expressApp, fastifyApp, koaApp, rowOf, type TestApp } from './apps.js';
import { Browser } from './web.js';

const f = appFixture('adapters_race');

/** Cleared: a tombstone, no value. */
async function row(sid: string): Promise<{ cleared: boolean; value: string | null } | undefined> {
  const r = await rowOf(f.db, sid);
  return r && { cleared: r.cleared, value: r.value };
}

async function stored(sid: string): Promise<string> {
  const r = await f.shared.get(sid);
  assert.ok(r.ok, `session not found: ${JSON.stringify(r)}`);
  return r.value;
}

/** A second browser with the same cookies: what an attacker holding the old cookie has. */
function twin(b: Browser, base: string): Browser {
  const t = new Browser(base);
  t.cookies = new Map(b.cookies);
  return t;
}

// touchThreshold 1: an unchanged request always tries its touch, so the race is exercised, not skipped.
const options = { touchThreshold: 1 };

interface Variant {
  name: string;
  /** A runs on `a`, B on `b` (another process when they differ). */
  setup(): Promise<{ a: TestApp; b: TestApp; sessions: FrameworkSessions }>;
  /** Whether the framework saves an unchanged session at all (koa-session without rolling does not). */
  savesUnchanged: boolean;
  /** Runs after B and before A finishes: makes the Fastify store forget A's session. */
  between?: (app: TestApp) => Promise<void>;
}

// Another browser, logged in beforehand, loads its own session: with memoSize 1 the store forgets A's.
const evictors = new Map<TestApp, Browser>();
async function evict(app: TestApp): Promise<void> {
  const c = evictors.get(app);
  assert.ok(c !== undefined);
  assert.notEqual((await c.get('/whoami')).body, 'nobody');
}

type Make = (o: typeof options & { memoSize?: number }) => Promise<{ app: TestApp; sessions: FrameworkSessions }>;
const express =
  (appOptions: { resave?: boolean } = {}): Make =>
  async (o) => {
    const store = new ExpressSessionStore({ store: f.shared, ...o });
    return { app: await expressApp(store, appOptions), sessions: store.sessions };
  };
const fastify: Make = async (o) => {
  const store = new FastifySessionStore({ store: f.shared, ...o });
  return { app: await fastifyApp(store), sessions: store.sessions };
};
const koa =
  (appOptions: { rolling?: boolean } = {}): Make =>
  async (o) => {
    const store = new KoaSessionStore({ store: f.shared, ...o });
    return { app: await koaApp(store, appOptions), sessions: store.sessions };
  };

/** A and B on one app (one process). */
const one = (name: string, make: Make, savesUnchanged = true): Variant => ({
  name,
  savesUnchanged,
  async setup() {
    const { app, sessions } = await make(options);
    f.keep(app);
    return { a: app, b: app, sessions };
  },
});

/** A on one app, B on another with its own store: two processes. */
const two = (name: string, make: Make, savesUnchanged = true): Variant => ({
  name,
  savesUnchanged,
  async setup() {
    const [a, b] = [await make(options), await make(options)];
    f.keep(a.app);
    f.keep(b.app);
    return { a: a.app, b: b.app, sessions: a.sessions };
  },
});

const variants: Variant[] = [
  one('express', express()),
  one('express with resave: true', express({ resave: true })),
  two('express, B in another process', express()),
  one('fastify', fastify),
  two('fastify, B in another process', fastify),
  {
    name: 'fastify, A forgotten by the store (memoSize 1)',
    savesUnchanged: true,
    async setup() {
      const { app, sessions } = await fastify({ ...options, memoSize: 1 });
      f.keep(app);
      const c = new Browser(app.base);
      await c.post('/login');
      evictors.set(app, c);
      return { a: app, b: app, sessions };
    },
    between: evict,
  },
  one('koa', koa(), false),
  one('koa with rolling: true', koa({ rolling: true })),
  two('koa with rolling: true, B in another process', koa({ rolling: true })),
];

/**
 * Logs in on `b`, starts A (`path`) on `a` with the same cookie and waits until A holds its loaded
 * session; runs `middle` (B) to completion; releases A and waits for it.
 */
async function interleave(v: Variant, s: { a: TestApp; b: TestApp }, path: string, middle: (user: Browser) => Promise<void>) {
  const user = new Browser(s.b.base);
  assert.equal((await user.post('/login')).status, 200);
  const held = twin(user, s.a.base);
  const gate = s.a.gate.arm();
  const a = path === '/hold' ? held.get(path) : held.post(path);
  await gate.entered;
  const sid = s.a.sidOf(user);
  const old = twin(user, s.b.base);
  await middle(user);
  await v.between?.(s.a);
  gate.release();
  const res = await a;
  return { user, old, sid, res };
}

for (const v of variants) {
  describe(`${v.name}: a request in flight`, () => {
    let s: { a: TestApp; b: TestApp; sessions: FrameworkSessions };
    before(async () => {
      s = await v.setup();
    });

    for (const path of ['/hold', '/hold-change']) {
      const what = path === '/hold' ? 'read-only' : 'changing';
      test(`a ${what} request in flight during logout does not bring the session back`, async () => {
        const { old, sid, res } = await interleave(v, s, path, async (user) => {
          assert.equal((await user.post('/logout')).body, 'bye');
        });
        assert.equal(res.status, 200);
        assert.equal((await old.get('/whoami')).body, 'nobody', 'the old cookie works again');
        assert.deepEqual(await f.shared.get(sid), { ok: false, error: 'not_found' });
        assert.deepEqual(await row(sid), { cleared: true, value: null });
      });

      test(`a ${what} request in flight during regenerate does not bring the old id back`, async () => {
        const { user, old, sid, res } = await interleave(v, s, path, async (u) => {
          assert.equal((await u.post('/regenerate')).body, 'ok');
        });
        assert.equal(res.status, 200);
        assert.notEqual(s.b.sidOf(user), sid);
        assert.equal(JSON.parse((await user.get('/whoami')).body).user, 'alice');
        assert.equal((await old.get('/whoami')).body, 'nobody', 'the old cookie works again');
        assert.deepEqual(await row(sid), { cleared: true, value: null });
      });
    }

    // The purge deletes a tombstone once the session's expiry passes (at most a day after the
    // clear); deleting it at once shows the adapter alone keeps a logged-out session dead (the
    // Fastify store, even when it has forgotten the id: the request's own copy says it was loaded).
    test('even with the tombstone purged, a changing request in flight during logout does not re-create the session', async () => {
      const { old, sid } = await interleave(v, s, '/hold-change', async (user) => {
        const sid = s.b.sidOf(user);
        assert.equal((await user.post('/logout')).body, 'bye');
        await f.db.query(`DELETE FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [sid]);
      });
      assert.equal((await old.get('/whoami')).body, 'nobody', 'the old cookie works again');
      assert.equal(await row(sid), undefined);
    });

    test('a read-only request in flight during a downgrade does not write back its stale copy', async () => {
      let afterB = '';
      let writes = 0;
      const { user, sid, res } = await interleave(v, s, '/hold', async (u) => {
        assert.equal((await u.post('/downgrade')).body, 'ok');
        afterB = await stored(s.b.sidOf(u));
        writes = s.sessions.stats.written;
      });
      assert.equal(JSON.parse(res.body).role, 'admin', 'A did not see its loaded copy');
      if (v.savesUnchanged) assert.ok(s.sessions.stats.written > writes, 'A did not even try to touch the session');
      assert.equal(await stored(sid), afterB, 'A rewrote the value');
      assert.equal(JSON.parse((await user.get('/whoami')).body).role, 'user');
    });

    test('two requests that changed different fields: both changes stay', async () => {
      const { user } = await interleave(v, s, '/hold-change', async (u) => {
        assert.equal((await u.post('/downgrade')).body, 'ok');
      });
      assert.deepEqual(JSON.parse((await user.get('/whoami')).body), { user: 'alice', role: 'user', note: 'A' });
    });

    test('a change saved before a request that changed nothing is kept', async () => {
      const { user } = await interleave(v, s, '/hold', async (u) => {
        assert.equal((await u.post('/note')).body, 'ok');
      });
      assert.deepEqual(JSON.parse((await user.get('/whoami')).body), { user: 'alice', role: 'admin', note: 'B' });
    });
  });
}
