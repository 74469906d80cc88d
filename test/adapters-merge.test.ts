// Merged saves over real HTTP, for every adapter: requests in parallel on one session, each held
// after loading it until all have loaded, then let go together. Each save writes only the fields
// its request changed: changes to different fields all stay, the same field ends with one of the
// values, and a logout while they are in flight stays final.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ExpressSessionStore } from '../src/express.js';
import { FastifySessionStore } from '../src/fastify.js';
import { KoaSessionStore } from '../src/koa.js';
import { appFixture, expressApp, fastifyApp, koaApp, rowOf, type TestApp } from './apps.js';
import { Browser } from './web.js';

const f = appFixture('adapters_merge');

type Make = () => Promise<TestApp>;
const express: Make = async () => expressApp(new ExpressSessionStore({ store: f.shared }));
const fastify: Make = async () => fastifyApp(new FastifySessionStore({ store: f.shared }));
const koa: Make = async () => koaApp(new KoaSessionStore({ store: f.shared }));

/** One app, or two with their own stores (two processes): requests alternate between them. */
const variants: { name: string; apps: number; make: Make }[] = [
  { name: 'express', apps: 1, make: express },
  { name: 'express, two processes', apps: 2, make: express },
  { name: 'fastify', apps: 1, make: fastify },
  { name: 'fastify, two processes', apps: 2, make: fastify },
  { name: 'koa', apps: 1, make: koa },
  { name: 'koa, two processes', apps: 2, make: koa },
];

/** The stored session's fields, without the ones the frameworks rewrite on every save. */
async function fields(sid: string): Promise<Record<string, unknown>> {
  const r = await f.shared.get(sid);
  assert.ok(r.ok, `session not found: ${JSON.stringify(r)}`);
  const { cookie: _cookie, _expire, _maxAge, ...rest } = JSON.parse(r.value) as Record<string, unknown>;
  return rest;
}

const field = (name: string, value?: string, hold = true) =>
  `/field?f=${name}${value === undefined ? '' : `&v=${value}`}${hold ? '&hold=1' : ''}`;

for (const v of variants) {
  describe(`${v.name}: parallel requests on one session`, () => {
    let apps: TestApp[];
    before(async () => {
      apps = [];
      for (let i = 0; i < v.apps; i += 1) apps.push(f.keep(await v.make()));
    });

    /** A logged-in browser on the first app, and its session id. */
    async function login(): Promise<{ user: Browser; sid: string }> {
      const user = new Browser(apps[0]!.base);
      assert.equal((await user.post('/login')).status, 200);
      return { user, sid: apps[0]!.sidOf(user) };
    }

    /**
     * Sends the held requests (`paths`) with the user's cookie, request i to app i mod n; waits
     * until every one has loaded the session; runs `middle`; lets them all go; resolves their
     * responses.
     */
    async function overlap(user: Browser, paths: string[], middle = async () => {}) {
      const gates = paths.map((_, i) => apps[i % apps.length]!.gate.arm());
      const sent = paths.map((path, i) => {
        const b = new Browser(apps[i % apps.length]!.base);
        b.cookies = new Map(user.cookies);
        return b.post(path);
      });
      await Promise.all(gates.map((g) => g.entered));
      await middle();
      for (const g of gates) g.release();
      return Promise.all(sent);
    }

    test('12 requests setting different fields: all 12 are kept', async () => {
      const { user, sid } = await login();
      const k = 12;
      const res = await overlap(
        user,
        Array.from({ length: k }, (_, i) => field(`f${i}`, `v${i}`)),
      );
      assert.deepEqual(
        res.map((r) => r.status),
        Array(k).fill(200),
      );
      const expected: Record<string, unknown> = { user: 'alice', role: 'admin' };
      for (let i = 0; i < k; i += 1) expected[`f${i}`] = `v${i}`;
      assert.deepEqual(await fields(sid), expected);
    });

    test('removing field a while another request sets c: both take effect', async () => {
      const { user, sid } = await login();
      await user.post(field('a', '1', false));
      await user.post(field('b', '2', false));
      const res = await overlap(user, [field('a'), field('c', '3')]);
      assert.deepEqual(
        res.map((r) => r.status),
        [200, 200],
      );
      assert.deepEqual(await fields(sid), { user: 'alice', role: 'admin', b: '2', c: '3' });
    });

    test('requests setting the same field: it ends with one of their values, without error', async () => {
      const { user, sid } = await login();
      const values = ['x1', 'x2', 'x3', 'x4'];
      const res = await overlap(
        user,
        values.map((x) => field('x', x)),
      );
      assert.deepEqual(
        res.map((r) => r.status),
        values.map(() => 200),
      );
      const stored = await fields(sid);
      assert.ok(values.includes(stored.x as string), `x is ${JSON.stringify(stored.x)}`);
      assert.deepEqual(stored, { user: 'alice', role: 'admin', x: stored.x });
    });

    test('a request that only moved a field to the end of the keys writes nothing', async () => {
      const { user, sid } = await login();
      const before = await rowOf(f.db, sid);
      assert.equal((await user.post('/field?f=user&v=alice&readd=1')).status, 200);
      assert.equal((await rowOf(f.db, sid))?.version, before?.version, 'the row was written');
      assert.deepEqual(await fields(sid), { user: 'alice', role: 'admin' });
    });

    test('a save that nothing raced is written whole at the next version; a raced one is merged', async () => {
      const { user, sid } = await login();
      const stored = async () =>
        (
          await f.db.query<{ value: string; version: string }>(
            `SELECT value, version::text FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
            [sid],
          )
        ).rows[0] as { value: string; version: string };
      const before = await stored();
      assert.equal((await user.post(field('w', '1', false))).status, 200);
      const whole = await stored();
      assert.equal(BigInt(whole.version), BigInt(before.version) + 1n);
      // The framework's own JSON, not jsonb's text of a merge (a space after every colon).
      assert.equal(JSON.parse(whole.value).w, '1');
      assert.ok(!whole.value.includes('": '), whole.value);
      // Both load the same version; the first save is written whole, the second finds the version
      // moved and merges its change into the first one's.
      const res = await overlap(user, [field('y', '1'), field('z', '2')]);
      assert.deepEqual(
        res.map((r) => r.status),
        [200, 200],
      );
      const raced = await stored();
      assert.equal(BigInt(raced.version), BigInt(whole.version) + 2n);
      assert.ok(raced.value.includes('": '), raced.value);
      assert.deepEqual(await fields(sid), { user: 'alice', role: 'admin', w: '1', y: '1', z: '2' });
    });

    test('a merged save restarts the expiry from the cookie (one hour)', async () => {
      const { user, sid } = await login();
      await f.db.query(
        `UPDATE session.sessions SET expires_at = now() + interval '1 minute' WHERE digest = sha256(convert_to($1, 'UTF8'))`,
        [sid],
      );
      assert.equal((await user.post(field('e', '1', false))).status, 200);
      const r = await f.shared.get(sid);
      // From one minute left back to about an hour (koa-session gives the store 10 s more than the cookie).
      assert.ok(r.ok && r.period > 3000 && r.period <= 3610, JSON.stringify(r.ok && r.period));
      assert.equal((await fields(sid)).e, '1');
    });

    test('a NUL character, which jsonb cannot hold, in a change and then in the stored value: written whole', async () => {
      const { user, sid } = await login();
      assert.equal((await user.post(field('n', '%00', false))).status, 200);
      assert.equal((await user.post(field('m', 'x', false))).status, 200);
      assert.deepEqual(await fields(sid), { user: 'alice', role: 'admin', n: '\u0000', m: 'x' });
    });

    test('a logout while merges are in flight stays final', async () => {
      const { user, sid } = await login();
      const old = new Browser(apps[0]!.base);
      old.cookies = new Map(user.cookies);
      const res = await overlap(
        user,
        ['p', 'q', 'r', 's'].map((name) => field(name, '1')),
        async () => {
          assert.equal((await user.post('/logout')).body, 'bye');
        },
      );
      assert.deepEqual(
        res.map((r) => r.status),
        [200, 200, 200, 200],
      );
      assert.deepEqual(await f.shared.get(sid), { ok: false, error: 'not_found' });
      const row = await rowOf(f.db, sid);
      assert.deepEqual(row && { cleared: row.cleared, value: row.value }, { cleared: true, value: null });
      assert.equal((await old.get('/whoami')).body, 'nobody', 'the old cookie works again');
    });
  });
}

describe("fastify: a save without the request's own copy", () => {
  test('is written whole, as a store without merges does', async () => {
    const store = new FastifySessionStore({ store: f.shared });
    const sid = await f.shared.generate({ value: JSON.stringify({ cookie: { originalMaxAge: 3_600_000 }, user: 'alice' }) });
    const sess = await new Promise<Record<string, unknown>>((resolve, reject) =>
      store.get(sid, (err, s) => (err ? reject(err) : resolve(s as Record<string, unknown>))),
    );
    assert.ok(await f.shared.merge(sid, { set: { other: '1' } }));
    // A plain object, not a Session built from what get returned: the store only remembers the id.
    await new Promise<void>((resolve, reject) =>
      store.set(sid, { ...sess, note: 'x' }, (err) => (err ? reject(err) : resolve())),
    );
    assert.deepEqual(await fields(sid), { user: 'alice', note: 'x' });
  });
});
