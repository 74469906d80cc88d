// A minimal Express 5 app with express-session, run as a child process by bench/http.ts:
// `node http-server.js <ours|cps> <database url> <sessions>`. It creates `sessions` sessions with
// the ids sessionId(i), then reports its port over IPC. GET / reads the session and answers its
// data's length (410 when the session was not found): a read-only request.
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { ExpressSessionStore } from '../src/express.js';
import { cpsStore } from './contenders.js';
import { expressSession, httpSecret, httpSessionId } from './data.js';

async function main(): Promise<void> {
  const [kind, url, count] = process.argv.slice(2);
  if ((kind !== 'ours' && kind !== 'cps') || url === undefined) throw new Error('usage: http-server.js <ours|cps> <url> <sessions>');
  const store: session.Store & { close(): Promise<void> } =
    kind === 'ours' ? new ExpressSessionStore({ connectionString: url }) : cpsStore(url);
  const seed = expressSession('h') as unknown as session.SessionData;
  const n = Number(count);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < n) {
      const sid = httpSessionId(next++);
      await new Promise<void>((resolve, reject) => store.set(sid, seed, (err) => (err ? reject(err as Error) : resolve())));
    }
  }));

  const app = express();
  app.use(session({ store, secret: httpSecret, resave: false, saveUninitialized: false, cookie: { maxAge: 604800000 } }));
  app.get('/', (req, res) => {
    const data = (req.session as unknown as { data?: unknown }).data;
    if (typeof data !== 'string') res.status(410).end();
    else res.type('text').send(String(data.length));
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
