// `npm run demo`, as a user runs it: its own throwaway database, the walk-through, the web counter
// with its login, the user's sessions on two devices (two cookie jars), and logging out the others.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Browser } from './web.js';

const script = fileURLToPath(new URL('../scripts/demo.js', import.meta.url));

const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const iphone =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

/** What a browser sees on the page: visits, who is logged in, and the devices listed. */
async function look(b: Browser): Promise<{ visits: string | undefined; user: string | undefined; devices: string[] }> {
  const { body } = await b.get('/');
  return {
    visits: /id="visits">(\d+)</.exec(body)?.[1],
    user: /id="user">([^<]*)</.exec(body)?.[1],
    devices: [...body.matchAll(/class="label">([^<]*)</g)].map((m) => m[1] ?? ''),
  };
}

/** The handle in the page's "Log out this device" form of the device with this label. */
async function handleOf(b: Browser, label: string): Promise<string> {
  const { body } = await b.get('/');
  const m = new RegExp(`class="label">${label}<[\\s\\S]*?name="handle" value="([^"]+)"`).exec(body);
  assert.ok(m?.[1], `no handle for ${label} in:\n${body}`);
  return m[1];
}

async function devices(base: string): Promise<void> {
  const laptop = new Browser(base, { 'user-agent': firefox });
  const phone = new Browser(base, { 'user-agent': iphone });
  assert.deepEqual(await look(laptop), { visits: '1', user: undefined, devices: [] });
  const before = laptop.cookies.get('session');
  assert.equal((await laptop.post('/login', { name: 'alice' })).status, 303);
  assert.notEqual(laptop.cookies.get('session'), before, 'login gives the session a new key');
  // The key from before the login names nothing any more: whoever held it gets a new, anonymous session.
  const stale = new Browser(base);
  stale.cookies.set('session', before ?? '');
  assert.deepEqual(await look(stale), { visits: '1', user: undefined, devices: [] });
  // The count survives the login; both devices see both sessions, newest first.
  assert.deepEqual(await look(laptop), { visits: '2', user: 'alice', devices: ['Firefox on Linux'] });
  await phone.post('/login', { name: 'alice' });
  assert.deepEqual(await look(phone), { visits: '1', user: 'alice', devices: ['Safari on iOS', 'Firefox on Linux'] });
  assert.deepEqual((await look(laptop)).devices, ['Safari on iOS', 'Firefox on Linux']);
  // Log out other devices, from the laptop: the phone's cookie is then not found.
  await laptop.post('/revoke-others');
  assert.deepEqual(await look(phone), { visits: '1', user: undefined, devices: [] });
  assert.deepEqual(await look(laptop), { visits: '4', user: 'alice', devices: ['Firefox on Linux'] });
  // Per-device: the phone logs in again, and the laptop ends the phone's session by its handle.
  await phone.post('/login', { name: 'alice' });
  await laptop.post('/revoke', { handle: await handleOf(laptop, 'Safari on iOS') });
  assert.equal((await look(phone)).user, undefined);
  assert.deepEqual((await look(laptop)).devices, ['Firefox on Linux']);
  // A handle of another user's session ends nothing; a malformed one is ignored.
  const mallory = new Browser(base);
  await mallory.post('/login', { name: 'mallory' });
  await mallory.post('/revoke', { handle: await handleOf(laptop, 'Firefox on Linux') });
  await mallory.post('/revoke', { handle: 'not a handle' });
  assert.equal((await look(laptop)).user, 'alice');
  // Names are shown escaped; a bad name is refused.
  const html = new Browser(base);
  await html.post('/login', { name: '<b>x</b>' });
  assert.match((await html.get('/')).body, /id="user">&#60;b&#62;x&#60;\/b&#62;</);
  assert.equal((await html.post('/login', { name: ' ' })).status, 400);
  // Log out: the next visit starts a new, anonymous session.
  await laptop.post('/logout');
  assert.deepEqual(await look(laptop), { visits: '1', user: undefined, devices: [] });
}

test('the demo counts visits per session, resets, and removes its database on Ctrl-C', { timeout: 120_000 }, async () => {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Counter demo: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      void exited.then(() => reject(new Error(`demo exited early:\n${out}`)));
    });
    assert.match(out, /set\(key, "x"\) after clear {7}→ false/);
    assert.match(out, /get\(key\) {24}→ not_found/);
    assert.match(out, /get\(old key\) → not_found/);
    assert.match(out, /revoke\("alice", except phone\) +→ 1 session\(s\) ended; list → Phone/);
    // Purging: the pg_cron job where pg_cron is installed, else session-pg purge (the embedded build).
    if (/with pg_cron\n/.test(out)) {
      assert.match(
        out,
        /Purging: pg_cron is installed[^\n]*\n {2}\$ session-pg schedule [^\n]*\n {4}Scheduled pg_cron job session-purge-postgres\.\n/,
      );
    } else {
      assert.match(out, /Purging: (the embedded PostgreSQL has no pg_cron|pg_cron is not installed), so session-pg purge/);
      assert.match(out, /\$ session-pg purge\n(?: {4}purged [^\n]*\n)* {4}Done: 3 expired sessions deleted\.\n/);
    }
    const b = new Browser(url.slice(0, -1));
    const visits = async () => /id="visits">(\d+)</.exec((await b.get('/')).body)?.[1];
    assert.equal(await visits(), '1');
    assert.equal(await visits(), '2');
    const other = new Browser(url.slice(0, -1));
    assert.match((await other.get('/')).body, /id="visits">1</);
    await b.post('/reset');
    assert.equal(await visits(), '1');
    await b.post('/regenerate');
    assert.equal(await visits(), '2');
    await devices(url.slice(0, -1));
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, out);
  assert.match(out, /Throwaway PostgreSQL removed\./);
});
