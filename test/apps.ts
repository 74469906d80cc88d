// The same small app in Express, Fastify and Koa, for the adapter tests: log in as an admin,
// downgrade, add a note, log out, regenerate, and routes that stop at a gate the test opens, so
// that other requests can run to completion while they hold a loaded session. `POST /field?f=F&v=V`
// sets field F to V (without `v`: removes F); with `&hold=1` it first stops at the gate; with
// `&readd=1` it removes F before setting it, which moves F to the end of the session's keys.
import type { Server } from 'node:http';
import { after, before } from 'node:test';
import express from 'express';
import session from 'express-session';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Koa from 'koa';
import koaSession from 'koa-session';
import type { ExpressSessionStore } from '../src/express.js';
import type { FastifySessionStore } from '../src/fastify.js';
import type { KoaSessionStore } from '../src/koa.js';
import { connect, type SessionStore } from '../src/index.js';
import { freshDatabase, type TestDatabase } from './helpers.js';
import { baseUrl, type Browser, sessionIdOf } from './web.js';

declare module 'express-session' {
  interface SessionData {
    user?: string;
    role?: string;
    note?: string;
  }
}
declare module 'fastify' {
  interface Session {
    user?: string;
    role?: string;
    note?: string;
  }
}

/** Holds requests at `hold()` until the test releases them, one arming per held request. */
export class Gate {
  private readonly armed: (() => Promise<void>)[] = [];

  /** The next request that reaches `hold()` stops there: `entered` resolves, `release` lets it go. */
  arm(): { entered: Promise<void>; release: () => void } {
    let enter = (): void => {};
    let release = (): void => {};
    const entered = new Promise<void>((resolve) => {
      enter = resolve;
    });
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.armed.push(async () => {
      enter();
      await released;
    });
    return { entered, release };
  }

  hold(): Promise<void> {
    const wait = this.armed.shift();
    if (wait === undefined) throw new Error('a held route was called without arming the gate');
    return wait();
  }
}

export interface TestApp {
  name: string;
  base: string;
  gate: Gate;
  /** The session id a browser's cookie names. */
  sidOf(b: Browser): string;
  close(): Promise<void>;
}

interface Data {
  user?: unknown;
  role?: unknown;
  note?: unknown;
}

/** What `POST /field` does to a session, given its query: stop at the gate if asked, then set or remove one field. */
async function changeField(gate: Gate, session: object, query: unknown): Promise<void> {
  const { f, v, hold, readd } = query as { f?: unknown; v?: unknown; hold?: unknown; readd?: unknown };
  if (typeof f !== 'string' || !/^[a-z][a-z0-9]*$/.test(f)) throw new Error('f must name a plain field');
  if (hold !== undefined) await gate.hold();
  const fields = session as Record<string, unknown>;
  if (readd !== undefined) delete fields[f];
  if (typeof v === 'string') fields[f] = v;
  else delete fields[f];
}
const show = (s: Data | null | undefined) =>
  s?.user === undefined ? 'nobody' : JSON.stringify({ user: s.user, role: s.role ?? null, note: s.note ?? null });

const listen = (app: { listen(port: number, host: string, cb: () => void): Server }) =>
  new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

export async function expressApp(store: ExpressSessionStore, opts: { resave?: boolean } = {}): Promise<TestApp> {
  const gate = new Gate();
  const app = express();
  app.use(
    session({
      store,
      secret: 'test secret',
      resave: opts.resave ?? false,
      saveUninitialized: false,
      cookie: { maxAge: 3_600_000 },
    }),
  );
  app.post('/login', (req, res) => {
    req.session.user = 'alice';
    req.session.role = 'admin';
    res.send('ok');
  });
  app.get('/whoami', (req, res) => {
    res.send(show(req.session));
  });
  app.post('/downgrade', (req, res) => {
    req.session.role = 'user';
    res.send('ok');
  });
  app.post('/note', (req, res) => {
    req.session.note = 'B';
    res.send('ok');
  });
  app.get('/hold', async (req, res) => {
    await gate.hold();
    res.send(show(req.session));
  });
  app.post('/hold-change', async (req, res) => {
    await gate.hold();
    req.session.note = 'A';
    res.send('ok');
  });
  app.post('/field', async (req, res) => {
    await changeField(gate, req.session, req.query);
    res.send('ok');
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.send('bye')));
  });
  app.post('/regenerate', (req, res, next) => {
    const { user, role } = req.session;
    req.session.regenerate((err) => {
      if (err) return next(err);
      Object.assign(req.session, { user, role });
      res.send('ok');
    });
  });
  // Answer errors without express's stack trace on stderr.
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send(String((err as { code?: unknown }).code ?? 'error'));
  });
  const server = await listen(app);
  return {
    name: 'express',
    base: baseUrl(server),
    gate,
    sidOf: (b) => sessionIdOf(b.cookies.get('connect.sid')),
    close: () => closeServer(server),
  };
}

/** @fastify/session over `store`, saving only initialized sessions, with a one-hour cookie. */
export async function withSessions(app: FastifyInstance, store: FastifySessionStore): Promise<void> {
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: 'a secret with at least 32 characters!!',
    store: store as unknown as fastifySession.SessionStore,
    saveUninitialized: false,
    cookie: { secure: false, maxAge: 3_600_000 },
  });
}

export async function fastifyApp(store: FastifySessionStore): Promise<TestApp> {
  const gate = new Gate();
  const app = Fastify();
  await withSessions(app, store);
  app.post('/login', async (req) => {
    req.session.user = 'alice';
    req.session.role = 'admin';
    return 'ok';
  });
  app.get('/whoami', async (req) => show(req.session));
  app.post('/downgrade', async (req) => {
    req.session.role = 'user';
    return 'ok';
  });
  app.post('/note', async (req) => {
    req.session.note = 'B';
    return 'ok';
  });
  app.get('/hold', async (req) => {
    await gate.hold();
    return show(req.session);
  });
  app.post('/hold-change', async (req) => {
    await gate.hold();
    req.session.note = 'A';
    return 'ok';
  });
  app.post('/field', async (req) => {
    await changeField(gate, req.session, req.query);
    return 'ok';
  });
  app.post('/logout', async (req) => {
    await req.session.destroy();
    return 'bye';
  });
  app.post('/regenerate', async (req) => {
    const { user, role } = req.session;
    await req.session.regenerate();
    Object.assign(req.session, { user, role });
    return 'ok';
  });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  return { name: 'fastify', base, gate, sidOf: (b) => sessionIdOf(b.cookies.get('sessionId')), close: () => app.close() };
}

export async function koaApp(
  store: KoaSessionStore,
  opts: { rolling?: boolean; maxAge?: number | 'session' } = {},
): Promise<TestApp> {
  const gate = new Gate();
  const app = new Koa();
  app.keys = ['test key'];
  app.silent = true;
  app.use(koaSession({ store, genid: store.genid, maxAge: opts.maxAge ?? 3_600_000, rolling: opts.rolling ?? false }, app));
  app.use(async (ctx) => {
    const s = ctx.session as unknown as Data & { n?: number; regenerate(): Promise<void> };
    switch (`${ctx.method} ${ctx.path}`) {
      case 'POST /login':
        Object.assign(s, { user: 'alice', role: 'admin' });
        ctx.body = 'ok';
        break;
      case 'GET /whoami':
        ctx.body = show(s);
        break;
      case 'POST /downgrade':
        s.role = 'user';
        ctx.body = 'ok';
        break;
      case 'POST /note':
        s.note = 'B';
        ctx.body = 'ok';
        break;
      case 'POST /count':
        s.n = (s.n ?? 0) + 1;
        ctx.body = String(s.n);
        break;
      case 'GET /hold':
        await gate.hold();
        ctx.body = show(s);
        break;
      case 'POST /hold-change':
        await gate.hold();
        s.note = 'A';
        ctx.body = 'ok';
        break;
      case 'POST /field':
        await changeField(gate, s, ctx.query);
        ctx.body = 'ok';
        break;
      case 'POST /logout':
        ctx.session = null;
        ctx.body = 'bye';
        break;
      case 'POST /regenerate':
        await s.regenerate();
        ctx.body = 'ok';
        break;
      default:
        ctx.status = 404;
    }
  });
  const server = await listen(app);
  return {
    name: 'koa',
    base: baseUrl(server),
    gate,
    sidOf: (b) => decodeURIComponent(b.cookies.get('koa.sess') ?? ''),
    close: () => closeServer(server),
  };
}

/**
 * Per test file: a fresh database, a store on a client role, and the apps to close at the end.
 * `db` and `shared` are set once the file's `before` hooks have run.
 */
export function appFixture(label: string): { db: TestDatabase; shared: SessionStore; keep(app: TestApp): TestApp } {
  const apps: TestApp[] = [];
  const f = {
    db: undefined as unknown as TestDatabase,
    shared: undefined as unknown as SessionStore,
    keep(app: TestApp): TestApp {
      apps.push(app);
      return app;
    },
  };
  before(async () => {
    f.db = await freshDatabase(label);
    f.shared = connect({ connectionString: await f.db.clientRole() });
  });
  after(async () => {
    for (const app of apps) await app.close();
    await f.shared.close();
    await f.db.drop();
  });
  return f;
}

/** A session's row as the owner sees it: a cleared session keeps a tombstone until its expiry; xmin changes on every write. */
export async function rowOf(
  db: TestDatabase,
  sid: string,
): Promise<{ cleared: boolean; value: string | null; version: string } | undefined> {
  const r = await db.query<{ cleared: boolean; value: string | null; version: string }>(
    `SELECT cleared, value, xmin::text AS version FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
    [sid],
  );
  return r.rows[0];
}
