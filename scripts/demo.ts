// `npm run demo`: a throwaway PostgreSQL (or $DATABASE_URL), migrated; a walk through the API;
// then ocaml-session's counter example as a web page, until Ctrl-C (which removes the database).
// `npm run demo -- --once` stops after the walk-through.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { connect, migrate, type GetResult, type SessionStore } from '../src/index.js';
import { startCluster, type Cluster } from '../test/harness/cluster.js';
import { databaseUrl } from '../test/harness/urls.js';

const show = (r: GetResult) => (r.ok ? `value ${JSON.stringify(r.value)}, ${r.period} s left` : r.error);
// Keys are secrets: even the demo shows only their beginning.
const masked = (key: string) => `${key.slice(0, 6)}… (${key.length} characters)`;

async function walkThrough(store: SessionStore, admin: SessionStore): Promise<void> {
  console.log(`default period: ${await store.defaultPeriod()} s`);
  const key = await store.generate();
  console.log(`generate()                      → ${masked(key)}`);
  console.log(`get(key)                        → ${show(await store.get(key))}`);
  console.log(`set(key, "visits=1")            → ${await store.set(key, 'visits=1')}`);
  console.log(`get(key)                        → ${show(await store.get(key))}`);
  console.log(`set(key, "visits=2", 60 s)      → ${await store.set(key, 'visits=2', { expiry: 60 })}`);
  console.log(`get(key)                        → ${show(await store.get(key))}`);
  await store.clear(key);
  console.log('clear(key)                      → done');
  console.log(`get(key)                        → ${show(await store.get(key))}`);
  console.log(`set(key, "x") after clear       → ${await store.set(key, 'x')}  (set never creates a session)`);
  const expired = await store.generate({ expiry: 0, value: 'gone' });
  console.log(`get(generate(expiry 0))         → ${show(await store.get(expired))}`);
  // Purging and the default period affect every session: they are the admin role's calls.
  console.log(`purge() as the admin role       → ${await admin.purge()} expired session(s) deleted`);
  console.log(`purge() as the app role         → ${await store.purge().then(() => 'allowed?!', (e: { code?: string }) => e.code)}`);
}

const cookieName = 'session';
const keyFrom = (req: IncomingMessage) =>
  /(?:^|;\s*)session=([A-Za-z0-9_-]+)/.exec(req.headers.cookie ?? '')?.[1];
// Like ocaml-session's HTTP layer: the cookie lives exactly as long as the session.
const cookie = (key: string, period: number) => `${cookieName}=${key}; Max-Age=${period}; Path=/; HttpOnly; SameSite=Lax`;

function page(visits: number, period: number): string {
  return `<!doctype html><meta charset="utf-8"><title>session-postgresql counter</title>
<style>body{font:16px system-ui;max-width:36em;margin:3em auto}button{font:inherit;margin-right:.5em}</style>
<h1>Visits in this session: <span id="visits">${visits}</span></h1>
<p>The session expires in <span id="period">${period}</span> s unless you come back.</p>
<form method="post" style="display:inline" action="/reset"><button>Reset (clear)</button></form>
<form method="post" style="display:inline" action="/regenerate"><button>Regenerate the key</button></form>
<p><small>The key is in an HttpOnly cookie; the database only has its SHA-256.</small></p>`;
}

async function counter(store: SessionStore, period: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const key = keyFrom(req);
  const found = key === undefined ? undefined : await store.get(key);
  if (req.method === 'POST') {
    if (key !== undefined && req.url === '/reset') await store.clear(key);
    if (key !== undefined && req.url === '/regenerate' && found?.ok) {
      // A new key for the same data (what an app does at login), and the old key ends.
      const fresh = await store.generate({ value: found.value });
      await store.clear(key);
      res.setHeader('set-cookie', cookie(fresh, found.period));
    }
    res.writeHead(303, { location: '/' }).end();
    return;
  }
  if (req.url !== '/') {
    res.writeHead(404).end('not found');
    return;
  }
  let visits = 1;
  let current = key;
  if (current !== undefined && found?.ok) {
    visits = Number(found.value) + 1;
    await store.set(current, String(visits));
  } else {
    current = await store.generate({ value: '1' });
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': cookie(current, period) });
  res.end(page(visits, period));
}

/**
 * As superuser of a throwaway cluster: the app connects as a login role granted session_client,
 * the operator as one granted session_admin (what a DBA does once per database).
 */
async function demoRoles(url: string): Promise<{ app: string; ops: string }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const [role, granted] of [['demo_app', 'session_client'], ['demo_ops', 'session_admin']] as const) {
      await c.query(`DROP ROLE IF EXISTS ${role}`);
      await c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'demo' IN ROLE ${granted}`);
    }
  } finally {
    await c.end();
  }
  const database = new URL(url).pathname.slice(1);
  return {
    app: databaseUrl(url, database, { user: 'demo_app', password: 'demo' }),
    ops: databaseUrl(url, database, { user: 'demo_ops', password: 'demo' }),
  };
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  let cluster: Cluster | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    console.log('Starting a throwaway PostgreSQL…');
    cluster = await startCluster({ cron: false });
    url = cluster.url;
  }
  const cleanup = () => {
    if (cluster) {
      cluster.destroy();
      console.log('Throwaway PostgreSQL removed.');
      cluster = undefined;
    }
  };
  try {
    const ran = await migrate({ connectionString: url, log: false });
    console.log(ran.length ? `Migrated: ${ran.join(', ')}` : 'Schema already up to date');
    const roles = cluster ? await demoRoles(url) : { app: url, ops: url };
    const store = connect({ connectionString: roles.app });
    const admin = connect({ connectionString: roles.ops, connections: 1 });
    await walkThrough(store, admin);
    await admin.close();
    if (once) {
      await store.close();
      cleanup();
      return;
    }
    const period = await store.defaultPeriod();
    const server = createServer((req, res) => {
      counter(store, period, req, res).catch((err: unknown) => {
        console.error('request failed:', (err as Error).message);
        if (!res.headersSent) res.writeHead(500);
        res.end('internal error');
      });
    });
    // PORT and HOST let a container publish the page (docker/compose.yaml); locally: loopback only.
    const port = Number(process.env.PORT ?? 0);
    const host = process.env.HOST ?? '127.0.0.1';
    server.listen(port, host, () => {
      const address = server.address();
      const actual = typeof address === 'object' && address ? address.port : port;
      console.log(`\nCounter demo: http://127.0.0.1:${actual}/   (Ctrl-C stops it${cluster ? ' and removes the database' : ''})`);
    });
    const stop = () => {
      server.close();
      server.closeAllConnections();
      store.close().finally(() => {
        cleanup();
        process.exit(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    cleanup();
    throw err;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
