// `session-pg sessions SUBJECT` and `session-pg revoke SUBJECT [--handle H]` as support staff run
// them, as the client role: list a user's devices, end one of them, then all.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type SessionStore } from '../src/index.js';
import { cli, freshDatabase, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let url: string;
let store: SessionStore;
before(async () => {
  db = await freshDatabase('cli_sessions');
  url = await db.clientRole();
  store = connect({ connectionString: url });
});
after(async () => {
  await store.close();
  await db.drop();
});

test("sessions lists a user's devices newest first, without keys; revoke --handle ends one, revoke all", async () => {
  const laptop = await store.generate({ value: 'a', subject: 'zoe', label: 'Firefox on Linux' });
  await sleep(5);
  const phone = await store.generate({ value: 'b', subject: 'zoe', label: 'Safari on iOS' });
  const other = await store.generate({ value: 'c', subject: 'yann', label: 'Yann' });

  let r = cli(['sessions', 'zoe'], { DATABASE_URL: url });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, r.stdout);
  assert.match(lines[0] ?? '', /^[0-9a-f-]{36} {2}created \S+Z {2}written \S+Z {2}expires \S+Z {2}Safari on iOS$/);
  assert.match(lines[1] ?? '', /Firefox on Linux$/);
  for (const key of [laptop, phone, other]) assert.ok(!r.stdout.includes(key), 'no session key is printed');

  r = cli(['sessions', 'zoe', '--json'], { DATABASE_URL: url });
  assert.equal(r.status, 0, r.stderr);
  const listed = JSON.parse(r.stdout) as { handle: string; label: string }[];
  assert.deepEqual(
    listed.map((s) => s.label),
    ['Safari on iOS', 'Firefox on Linux'],
  );
  const phoneHandle = listed[0]?.handle ?? '';

  // Another user's name with zoe's handle ends nothing.
  r = cli(['revoke', 'yann', '--handle', phoneHandle], { DATABASE_URL: url });
  assert.equal(r.stdout, 'Ended 0 sessions of "yann".\n');
  assert.ok((await store.get(phone)).ok);
  r = cli(['revoke', 'zoe', '--handle', phoneHandle], { DATABASE_URL: url });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'Ended 1 session of "zoe".\n');
  assert.deepEqual(await store.get(phone), { ok: false, error: 'not_found' });
  assert.ok((await store.get(laptop)).ok);

  r = cli(['revoke', 'zoe'], { DATABASE_URL: url });
  assert.equal(r.stdout, 'Ended 1 session of "zoe".\n');
  assert.deepEqual(await store.get(laptop), { ok: false, error: 'not_found' });
  assert.equal(cli(['sessions', 'zoe'], { DATABASE_URL: url }).stdout, 'No live sessions of "zoe".\n');
  assert.ok((await store.get(other)).ok, "another user's session is untouched");
});

test('bad input: no subject, a malformed handle (exit 2, nothing ended)', async () => {
  const key = await store.generate({ value: 'x', subject: 'walt' });
  let r = cli(['sessions'], { DATABASE_URL: url });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /needs a SUBJECT/);
  r = cli(['revoke', 'walt', '--handle', 'not-a-handle'], { DATABASE_URL: url });
  assert.equal(r.status, 2);
  // Words of the command line, not of the TypeScript API.
  assert.equal(
    r.stderr,
    'session-pg revoke: --handle must be one of the handles that "session-pg sessions SUBJECT" lists, got "not-a-handle" (see session-pg revoke --help)\n',
  );
  assert.ok((await store.get(key)).ok);
});
