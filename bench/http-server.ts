// A minimal Express 5 app with express-session, run as a child process by bench/http.ts and
// bench/redis.ts: `node http-server.js <ours|cps|redis> <database or redis:// url> <sessions>`.
// It creates `sessions` sessions with the ids sessionId(i) (none when 0: the caller loaded them),
// then reports its port over IPC. GET / reads the session and answers its data's length (410 when
// the session was not found): a read-only request, which express-session ends with the store's
// touch. GET /w also changes the session, which express-session saves with the store's set.
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { ExpressSessionStore } from '../src/express.js';
import { cpsStore, redisStore } from './contenders.js';
import { expressSession, httpSecret, httpSessionId } from './data.js';

type ClosableStore = session.Store & { close(): Promise<void> };

async function storeOf(kind: string | undefined, url: string): Promise<ClosableStore> {
  if (kind === 'ours') return new ExpressSessionStore({ connectionString: url });
  if (kind === 'cps') return cpsStore(url);
  if (kind === 'redis') return redisStore(url);
  throw new Error('usage: http-server.js <ours|cps|redis> <url> <sessions>');
}

async function main(): Promise<void> {
  const [kind, url, count] = process.argv.slice(2);
  if (url === undefined) throw new Error('usage: http-server.js <ours|cps|redis> <url> <sessions>');
  const store = await storeOf(kind, url);
  const seed = expressSession('h') as unknown as session.SessionData;
  const n = Number(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        const sid = httpSessionId(next++);
        await new Promise<void>((resolve, reject) => store.set(sid, seed, (err) => (err ? reject(err as Error) : resolve())));
      }
    }),
  );

  const app = express();
  app.use(session({ store, secret: httpSecret, resave: false, saveUninitialized: false, cookie: { maxAge: 604800000 } }));
  const answer = (req: express.Request, res: express.Response) => {
    const data = (req.session as unknown as { data?: unknown }).data;
    if (typeof data !== 'string') res.status(410).end();
    else res.type('text').send(String(data.length));
  };
  app.get('/', answer);
  app.get('/w', (req, res) => {
    const s = req.session as unknown as { n?: number };
    s.n = (s.n ?? 0) + 1;
    answer(req, res);
  });
  const server = app.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as AddressInfo).port });
  });
  process.on('disconnect', () => {
    server.close();
    void store.close().finally(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
