// Users and devices through the framework stores, over real HTTP: the `subject` and `label`
// options write whose session it is when a save changes it (and only then); route handlers list
// the user's sessions and end the others, one by handle, or all. Express, Fastify and Koa.
import assert from 'node:assert/strict';
import type { IncomingMessage, Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import Koa from 'koa';
import koaSession from 'koa-session';
import { ExpressSessionStore } from '../src/express.js';
import { FastifySessionStore } from '../src/fastify.js';
import type { FrameworkStore } from '../src/framework.js';
import type { SessionData } from '../src/session-json.js';
import type { FrameworkStoreOptions } from '../src/write-rules.js';
import { KoaSessionStore } from '../src/koa.js';
import { connect, type SessionInfo, type SessionStore } from '../src/index.js';
import { withSessions } from './apps.js';
import { freshDatabase, type TestDatabase } from './helpers.js';
import { baseUrl, Browser, sessionIdOf } from './web.js';

declare module 'express-session' {
  interface SessionData {
    user?: string;
    visits?: number;
  }
}
declare module 'fastify' {
  interface Session {
    user?: string;
    visits?: number;
  }
}

let db: TestDatabase;
let real: SessionStore;
/** The store the adapters use: the real one, counting the setSubject calls that reach it. */
let counted: SessionStore;
let setSubjectCalls = 0;
before(async () => {
  db = await freshDatabase('adapters_subject');
  real = connect({ connectionString: await db.clientRole() });
  counted = new Proxy(real, {
    get(target, name) {
      if (name === 'setSubject') {
        return (...args: Parameters<SessionStore['setSubject']>) => {
          setSubjectCalls += 1;
          return target.setSubject(...args);
        };
      }
      const v: unknown = Reflect.get(target, name);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
});
after(async () => {
  await real.close();
  await db.drop();
});

/** What a route handler needs, whatever the framework. */
interface Handlers {
  user(): string | undefined;
  setUser(user: string | undefined): void;
  visit(): void;
  /** The current session's id, for revokeOthers. */
  sid(): string;
}

/** The routes, written once over `Handlers`; each answers a string. */
async function route(
  store: FrameworkStore,
  method: string,
  path: string,
  query: URLSearchParams,
  h: Handlers,
): Promise<string | undefined> {
  const user = h.user();
  switch (`${method} ${path}`) {
    case 'GET /me':
      return user ?? 'nobody';
    case 'POST /become':
      h.setUser(query.get('user') ?? undefined);
      return 'ok';
    case 'POST /forget':
      h.setUser(undefined);
      return 'ok';
    case 'POST /visit':
      h.visit();
      return 'ok';
    case 'GET /sessions':
      return user === undefined ? '[]' : JSON.stringify(await store.sessionsOf(user));
    case 'POST /revoke-others':
      return user === undefined ? 'nobody' : String(await store.revokeOthers(user, h.sid()));
    case 'POST /revoke':
      return user === undefined ? 'nobody' : String(await store.revokeHandle(user, query.get('handle') ?? ''));
    case 'POST /revoke-all':
      return user === undefined ? 'nobody' : String(await store.revokeAll(user));
    default:
      return undefined;
  }
}

// The label comes from the request: here its ?device= parameter, so each test browser names itself.
const options: FrameworkStoreOptions = {
  subject: (sess: SessionData) => sess.user as string | undefined,
  label: (_sess: SessionData, req: IncomingMessage | undefined) =>
    new URL(req?.url ?? '/', 'http://x').searchParams.get('device') ?? undefined,
};

interface App {
  base: string;
  sidOf(b: Browser): string;
  close(): Promise<void>;
}

const listen = (app: { listen(port: number, host: string, cb: () => void): Server }) =>
  new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
const closing = (server: Server) => () =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

async function expressApp(store: ExpressSessionStore): Promise<App> {
  const app = express();
  app.use(session({ store, secret: 'test secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } }));
  // Log in as express-session recommends: a new id, then the user.
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = String(req.query.user);
      res.send('ok');
    });
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.send('bye')));
  });
  app.use((req, res, next) => {
    const h: Handlers = {
      user: () => req.session.user,
      setUser: (u) => {
        if (u === undefined) delete req.session.user;
        else req.session.user = u;
      },
      visit: () => {
        req.session.visits = (req.session.visits ?? 0) + 1;
      },
      sid: () => req.sessionID,
    };
    route(store, req.method, req.path, new URL(req.url, 'http://x').searchParams, h).then((body) => {
      if (body === undefined) res.status(404).send('not found');
      else res.send(body);
    }, next);
  });
  // express-session reports a failed save after the response has started: then it is too late to answer.
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    if (res.headersSent) return;
    res.status(500).send(String((err as { code?: unknown }).code ?? 'error'));
  });
  const server = await listen(app);
  return { base: baseUrl(server), sidOf: (b) => sessionIdOf(b.cookies.get('connect.sid')), close: closing(server) };
}

async function fastifyApp(store: FastifySessionStore): Promise<App> {
  const app = Fastify();
  await withSessions(app, store);
  app.post('/login', async (req) => {
    await req.session.regenerate();
    req.session.user = String((req.query as { user?: string }).user);
    return 'ok';
  });
  app.post('/logout', async (req) => {
    await req.session.destroy();
    return 'bye';
  });
  app.setErrorHandler(async (err, _req, reply) => reply.status(500).send(String((err as { code?: unknown }).code ?? 'error')));
  app.all('/*', async (req, reply) => {
    const h: Handlers = {
      user: () => req.session.user,
      setUser: (u) => {
        if (u === undefined) delete req.session.user;
        else req.session.user = u;
      },
      visit: () => {
        req.session.visits = (req.session.visits ?? 0) + 1;
      },
      sid: () => req.session.sessionId,
    };
    const url = new URL(req.url, 'http://x');
    const body = await route(store, req.method, url.pathname, url.searchParams, h);
    return body ?? reply.status(404).send('not found');
  });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  return { base, sidOf: (b) => sessionIdOf(b.cookies.get('sessionId')), close: () => app.close() };
}

async function koaApp(store: KoaSessionStore): Promise<App> {
  const app = new Koa();
  app.keys = ['test key'];
  app.silent = true;
  app.use(koaSession({ store, genid: store.genid, maxAge: 3_600_000 }, app));
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      ctx.status = 500;
      ctx.body = String((err as { code?: unknown }).code ?? 'error');
    }
  });
  app.use(async (ctx) => {
    const s = ctx.session as unknown as { user?: string; visits?: number; externalKey: string; regenerate(): Promise<void> };
    if (ctx.method === 'POST' && ctx.path === '/login') {
      // koa-session's regenerate saves the session as it is under a new key.
      s.user = String(ctx.query.user);
      await s.regenerate();
      ctx.body = 'ok';
      return;
    }
    if (ctx.method === 'POST' && ctx.path === '/logout') {
      ctx.session = null;
      ctx.body = 'bye';
      return;
    }
    const h: Handlers = {
      user: () => s.user,
      setUser: (u) => {
        if (u === undefined) delete s.user;
        else s.user = u;
      },
      visit: () => {
        s.visits = (s.visits ?? 0) + 1;
      },
      sid: () => s.externalKey,
    };
    const body = await route(store, ctx.method, ctx.path, new URLSearchParams(ctx.querystring), h);
    if (body === undefined) ctx.status = 404;
    else ctx.body = body;
  });
  const server = await listen(app);
  return { base: baseUrl(server), sidOf: (b) => decodeURIComponent(b.cookies.get('koa.sess') ?? ''), close: closing(server) };
}

const frameworks = [
  {
    name: 'express',
    make: async () => {
      const store = new ExpressSessionStore({ store: counted, ...options });
      return { store, app: await expressApp(store) };
    },
  },
  {
    name: 'fastify',
    make: async () => {
      const store = new FastifySessionStore({ store: counted, ...options });
      return { store, app: await fastifyApp(store) };
    },
  },
  {
    name: 'koa',
    make: async () => {
      const store = new KoaSessionStore({ store: counted, ...options });
      return { store, app: await koaApp(store) };
    },
  },
];

/** The subject and label of a session's row, as the owner sees them. */
async function rowOf(sid: string): Promise<{ subject: string | null; label: string | null } | undefined> {
  const r = await db.query<{ subject: string | null; label: string | null }>(
    `SELECT subject, label FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8')) AND NOT cleared`,
    [sid],
  );
  return r.rows[0];
}

for (const fw of frameworks) {
  describe(fw.name, () => {
    let app: App;
    before(async () => {
      ({ app } = await fw.make());
    });
    after(async () => {
      await app.close();
    });

    const device = async (user: string, name: string) => {
      const b = new Browser(app.base);
      assert.equal((await b.post(`/login?user=${user}&device=${name}`)).body, 'ok');
      return b;
    };
    const sessions = async (b: Browser) => JSON.parse((await b.get('/sessions')).body) as SessionInfo[];
    const labels = async (b: Browser) => (await sessions(b)).map((s) => s.label);
    const user = `alice-${fw.name}`;

    test('login writes the subject and the label from the request; each device sees both; other users are not listed', async () => {
      const phone = await device(user, 'phone');
      const laptop = await device(user, 'laptop');
      await device(`bob-${fw.name}`, 'bob');
      assert.deepEqual(await rowOf(app.sidOf(phone)), { subject: user, label: 'phone' });
      assert.deepEqual(await labels(phone), ['laptop', 'phone']);
      assert.deepEqual(await labels(laptop), ['laptop', 'phone']);
      for (const s of await sessions(phone)) {
        assert.ok(![app.sidOf(phone), app.sidOf(laptop)].includes(s.handle), 'a handle is not a session id');
        assert.ok(Date.parse(String(s.writtenAt)) <= Date.now() && Date.parse(String(s.expiresAt)) > Date.now());
      }
      // Log out other devices: the laptop's cookie no longer names a session.
      assert.equal((await phone.post('/revoke-others')).body, '1');
      assert.equal((await laptop.get('/me')).body, 'nobody');
      assert.equal((await phone.get('/me')).body, user);
      assert.deepEqual(await labels(phone), ['phone']);
      assert.equal((await phone.post('/logout')).body, 'bye');
      assert.equal(await rowOf(app.sidOf(phone)), undefined);
    });

    test('revoke one device by its handle; another user cannot revoke it', async () => {
      const phone = await device(user, 'phone');
      const tablet = await device(user, 'tablet');
      const mallory = await device(`mallory-${fw.name}`, 'mallory');
      const handle = (await sessions(phone)).find((s) => s.label === 'tablet')?.handle;
      assert.ok(handle !== undefined);
      assert.equal((await mallory.post(`/revoke?handle=${handle}`)).body, 'false');
      assert.equal((await tablet.get('/me')).body, user);
      assert.equal((await phone.post(`/revoke?handle=${handle}`)).body, 'true');
      assert.equal((await tablet.get('/me')).body, 'nobody');
      assert.equal((await phone.post(`/revoke?handle=${handle}`)).body, 'false', 'already ended');
      assert.equal((await phone.post('/revoke-all')).body, '1');
      assert.equal((await phone.get('/me')).body, 'nobody');
    });

    test('an unchanged subject costs no call; a changed or removed one is written; a bad one writes nothing', async () => {
      const b = await device(user, 'desk');
      const sid = app.sidOf(b);
      const calls = setSubjectCalls;
      assert.equal((await b.post('/visit')).body, 'ok');
      assert.equal((await b.post('/visit')).body, 'ok');
      assert.equal(await b.get('/me').then((r) => r.body), user);
      assert.equal(setSubjectCalls, calls, 'saves that keep the subject add no setSubject');
      // A loaded session changes hands without a new id.
      assert.equal((await b.post(`/become?user=carol-${fw.name}`)).body, 'ok');
      assert.deepEqual(await rowOf(sid), { subject: `carol-${fw.name}`, label: 'desk' });
      assert.deepEqual(await labels(b), ['desk']);
      assert.equal(setSubjectCalls, calls + 1);
      // A subject the database would refuse: the save fails before anything is written.
      await b.post(`/become?user=${'x'.repeat(300)}`);
      assert.equal((await b.get('/me')).body, `carol-${fw.name}`);
      assert.deepEqual(await rowOf(sid), { subject: `carol-${fw.name}`, label: 'desk' });
      // Removing the user field makes the session anonymous: it leaves the list.
      assert.equal((await b.post('/forget')).body, 'ok');
      assert.deepEqual(await rowOf(sid), { subject: null, label: null });
      assert.equal((await b.get('/me')).body, 'nobody');
      assert.equal((await real.list(`carol-${fw.name}`)).length, 0);
    });
  });
}

describe('when the subject cannot be written', () => {
  test('express: the session written just before is cleared and the request fails', async () => {
    const store = new ExpressSessionStore({ store: real, ...options });
    const app = await expressApp(store);
    const b = await device(app, 'dave');
    const sid = app.sidOf(b);
    // A real failure: the client role loses EXECUTE on session_set_subject for this step.
    await db.query('REVOKE EXECUTE ON FUNCTION session.session_set_subject(text, text, text) FROM session_client');
    try {
      await b.post('/become?user=erin');
    } finally {
      await db.query('SELECT session.grant_roles()');
      await app.close();
    }
    assert.deepEqual(await real.get(sid), { ok: false, error: 'not_found' });
    assert.deepEqual(await real.list('erin'), []);
    assert.equal((await real.list('dave')).length, 0, 'nor left under the previous subject');
  });

  async function device(app: App, user: string): Promise<Browser> {
    const b = new Browser(app.base);
    assert.equal((await b.post(`/login?user=${user}`)).body, 'ok');
    assert.equal((await b.get('/me')).body, user);
    return b;
  }
});
