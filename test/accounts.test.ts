// Sessions that belong to someone: subject and label, list, revoke (all, all but one, by handle),
// rotate, absolute lifetime. Through the client as the app role, and at the SQL level.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, type SessionStore } from '../src/index.js';
import { connectAdmin, type SessionAdmin } from '../src/admin-index.js';
import { errorCode, freshDatabase, sqlState, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let store: SessionStore;
let admin: SessionAdmin;
/** The client role through the admin interface: the server refuses what it may not do. */
let storeAsAdmin: SessionAdmin;
let app: pg.Client;
before(async () => {
  db = await freshDatabase('accounts');
  const url = await db.clientRole();
  store = connect({ connectionString: url });
  admin = connectAdmin({ connectionString: await db.adminRole(), connections: 1 });
  storeAsAdmin = connectAdmin({ connectionString: url, connections: 1 });
  app = new pg.Client({ connectionString: url });
  await app.connect();
});
after(async () => {
  await store.close();
  await admin.close();
  await storeAsAdmin.close();
  await app.end();
  await db.drop();
});

const live = async (key: string) => (await store.get(key)).ok;

describe('subjects, labels and lists', () => {
  test('generate with a subject and label; list is newest first, with a handle that is not the key', async () => {
    const first = await store.generate({ value: 'a', subject: 'alice', label: 'Firefox on Linux' });
    await sleep(5);
    const second = await store.generate({ value: 'b', subject: 'alice', label: 'Phone' });
    await store.generate({ value: 'c', subject: 'bob', label: 'Bob' });
    await store.generate({ value: 'anonymous' });
    const list = await store.list('alice');
    assert.deepEqual(
      list.map((s) => s.label),
      ['Phone', 'Firefox on Linux'],
    );
    for (const s of list) {
      assert.match(s.handle, /^[0-9a-f-]{36}$/);
      assert.ok(s.createdAt instanceof Date && s.writtenAt instanceof Date && s.expiresAt instanceof Date);
      assert.ok(s.expiresAt.getTime() > Date.now());
      // A handle gives no access to the session.
      assert.deepEqual(await store.get(s.handle), { ok: false, error: 'not_found' });
    }
    assert.ok(![first, second].includes(list[0]!.handle));
    assert.deepEqual(await store.list('nobody'), []);
    assert.equal((await store.list('alice', { max: 1 })).length, 1);
    assert.equal(await errorCode(store.list('alice', { max: 0 })), 'invalid_parameter');
  });

  test('setSubject at login; it never creates a session; null makes the session anonymous again', async () => {
    const key = await store.generate({ value: 'cart' });
    assert.equal(await store.setSubject(key, 'carol', 'Laptop'), true);
    assert.deepEqual(
      (await store.list('carol')).map((s) => s.label),
      ['Laptop'],
    );
    assert.equal(await store.setSubject(key, 'carol'), true, 'label kept when omitted');
    assert.deepEqual(
      (await store.list('carol')).map((s) => s.label),
      ['Laptop'],
    );
    const got = await store.get(key);
    assert.ok(got.ok && got.value === 'cart', JSON.stringify(got));
    const unknown = `never-generated-${'u'.repeat(40)}`;
    assert.equal(await store.setSubject(unknown, 'carol'), false);
    assert.equal(
      await db
        .query(`SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [unknown])
        .then((r) => r.rowCount),
      0,
    );
    assert.equal(await store.setSubject(key, null), true);
    assert.deepEqual(await store.list('carol'), []);
    await store.clear(key);
    assert.equal(await store.setSubject(key, 'carol'), false, 'a cleared session gets no subject');
  });
});

describe('revoke', () => {
  test('log out everywhere but this device; the revoked keys stay dead whatever writes follow', async () => {
    const keys = await Promise.all(['A', 'B', 'C', 'D'].map((label) => store.generate({ value: label, subject: 'dave', label })));
    const [mine, ...others] = keys as [string, ...string[]];
    assert.equal(await store.revoke('dave', { except: mine }), 3);
    assert.ok(await live(mine));
    for (const key of others) {
      assert.equal(await live(key), false);
      assert.equal(await store.set(key, 'in flight'), false);
      assert.equal(await store.touch(key), false);
      assert.equal(await store.put(key, 'in flight'), false);
      assert.equal(await store.rotate(key), null);
      assert.equal(await live(key), false);
    }
    assert.deepEqual(
      (await store.list('dave')).map((s) => s.label),
      ['A'],
    );
    assert.equal(await store.revoke('dave'), 1);
    assert.equal(await store.revoke('dave'), 0);
  });

  test("by handle, only within the subject: one user cannot end another's session", async () => {
    const erin = await store.generate({ value: 'e', subject: 'erin', label: 'E' });
    await store.generate({ value: 'f', subject: 'frank', label: 'F' });
    const [frankSession] = await store.list('frank');
    assert.ok(frankSession);
    assert.equal(await store.revokeHandle('erin', frankSession.handle), false);
    assert.equal((await store.list('frank')).length, 1);
    const [erinSession] = await store.list('erin');
    assert.equal(await store.revokeHandle('erin', erinSession!.handle), true);
    assert.equal(await live(erin), false);
    assert.equal(await store.revokeHandle('erin', erinSession!.handle), false);
    assert.equal(await errorCode(store.revokeHandle('erin', 'not-a-handle')), 'invalid_argument');
  });

  test('10,000 sessions of one subject are revoked by one statement', async (t) => {
    await db.query(`SELECT session.session_generate(3600, 'v', 'busy', 'bot ' || i) FROM generate_series(1, 10000) i`);
    await db.query('ANALYZE session.sessions');
    // What session_list runs, for another subject: an index scan in list order, no sort.
    const plan = (
      await db.query(`EXPLAIN SELECT * FROM session.sessions s WHERE s.subject = 'alice' AND s.expires_at > now()
                                   AND NOT s.cleared ORDER BY s.created_at DESC LIMIT 100`)
    ).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    assert.match(plan, /Index Scan using sessions_subject/);
    assert.doesNotMatch(plan, /Sort/);
    const started = Date.now();
    assert.equal(await store.revoke('busy'), 10000);
    t.diagnostic(`revoked 10000 sessions in ${Date.now() - started} ms`);
    assert.deepEqual(await store.list('busy'), []);
  });
});

describe('rotate', () => {
  test('a new key for the same session; the old key is dead from the moment it returns', async () => {
    const old = await store.generate({ value: 'role=user', subject: 'gina', label: 'Tablet', expiry: 600 });
    const [before] = await store.list('gina');
    const fresh = await store.rotate(old);
    assert.ok(fresh && fresh !== old && /^[A-Za-z0-9_-]{64}$/.test(fresh));
    const got = await store.get(fresh);
    assert.ok(got.ok && got.value === 'role=user' && got.period > 590 && got.period <= 600, JSON.stringify(got));
    const [after] = await store.list('gina');
    assert.deepEqual({ ...after, writtenAt: undefined }, { ...before, writtenAt: undefined });
    assert.equal(await live(old), false);
    for (const write of [() => store.set(old, 'role=admin'), () => store.touch(old), () => store.put(old, 'role=admin')]) {
      assert.equal(await write(), false);
    }
    assert.equal(await store.rotate(old), null);
    assert.equal(await store.rotate(`unknown-${'k'.repeat(40)}`), null);
    const anonymous = await store.generate({ value: 'x' });
    assert.ok(await store.rotate(anonymous));
  });
});

describe('absolute lifetime', () => {
  test('per session: set and touch never extend it past its end, get never reports more', async () => {
    const key = await store.generate({ value: 'v', lifetime: 2 });
    assert.equal(await store.set(key, 'w', { expiry: 3600 }), true);
    assert.equal(await store.touch(key, { expiry: 3600 }), true);
    const got = await store.get(key);
    assert.ok(got.ok && got.period <= 2, JSON.stringify(got));
    await sleep(2100);
    assert.equal(await live(key), false);
    assert.equal(await store.set(key, 'again'), false);
  });

  test('configured by the admin role for new sessions; existing ones keep theirs', async () => {
    const before = await store.generate({ value: 'old' });
    assert.equal(await store.absoluteLifetime(), null);
    assert.equal(await errorCode(storeAsAdmin.setAbsoluteLifetime(60)), 'permission_denied');
    await admin.setAbsoluteLifetime(60);
    try {
      assert.equal(await store.absoluteLifetime(), 60);
      const key = await store.generate({ value: 'new' });
      await store.set(key, 'newer', { expiry: 86400 });
      const got = await store.get(key);
      assert.ok(got.ok && got.period <= 60, JSON.stringify(got));
      const framework = 'f'.repeat(40);
      assert.equal(await store.put(framework, '{}', { expiry: 86400 }), true);
      const put = await store.get(framework);
      assert.ok(put.ok && put.period <= 60, JSON.stringify(put));
      const old = await store.get(before);
      await store.set(before, 'still long', { expiry: 86400 });
      const extended = await store.get(before);
      assert.ok(old.ok && extended.ok && extended.period > 86000, JSON.stringify(extended));
      assert.equal(await errorCode(admin.setAbsoluteLifetime(0)), 'invalid_parameter');
      assert.equal(await errorCode(store.generate({ lifetime: 3155760001 })), 'invalid_parameter');
    } finally {
      await admin.setAbsoluteLifetime(null);
    }
  });
});

describe('hostile subjects and labels', () => {
  const big = 'x'.repeat(1024 * 1024);
  test('documented errors, nothing stored', async () => {
    const cases: [string, () => Promise<unknown>, string][] = [
      ['empty subject', () => store.generate({ subject: '' }), 'invalid_parameter'],
      ['257-byte subject', () => store.generate({ subject: 's'.repeat(257) }), 'value_too_large'],
      ['1 MB subject', () => store.generate({ subject: big }), 'value_too_large'],
      ['1 MB label', () => store.generate({ subject: 'h', label: big }), 'value_too_large'],
      ['NUL in a subject', () => store.generate({ subject: 'a\u0000b' }), 'invalid_argument'],
      ['lone surrogate in a label', () => store.generate({ subject: 'a', label: '\ud800' }), 'invalid_argument'],
      ['a number as subject', () => store.list(42 as unknown as string), 'invalid_argument'],
      ['setSubject to empty', async () => store.setSubject(await store.generate(), ''), 'invalid_parameter'],
      ['setSubject 1 MB label', async () => store.setSubject(await store.generate(), 's', big), 'value_too_large'],
      ['revoke a NUL subject', () => store.revoke('\u0000'), 'invalid_argument'],
    ];
    const before = Number(
      await db.query('SELECT count(*) AS n FROM session.sessions WHERE subject IS NOT NULL').then((r) => r.rows[0]?.n),
    );
    for (const [what, call, code] of cases) assert.equal(await errorCode(call()), code, what);
    assert.equal(
      Number(await db.query('SELECT count(*) AS n FROM session.sessions WHERE subject IS NOT NULL').then((r) => r.rows[0]?.n)),
      before,
    );
  });

  test('injection strings and a 256-byte subject are stored and matched verbatim', async () => {
    for (const subject of [
      `'; DROP TABLE session.sessions; --`,
      'Robert"); DROP ROLE x;--',
      '%',
      '_',
      'é'.repeat(128),
      'ß'.repeat(128),
    ]) {
      const key = await store.generate({ value: 'v', subject, label: subject });
      assert.deepEqual(
        (await store.list(subject)).map((s) => s.label),
        [subject],
        subject,
      );
      assert.equal(await store.revoke(subject), 1);
      assert.equal(await live(key), false);
    }
    assert.deepEqual(await store.list('%'), []);
  });

  test('at the SQL level: NULL subject lists and revokes nothing; SQLSTATEs as documented', async () => {
    assert.equal((await app.query('SELECT * FROM session.session_list(NULL)')).rowCount, 0);
    assert.equal((await app.query('SELECT session.session_revoke(NULL) AS n')).rows[0]?.n, '0');
    assert.equal(await sqlState(app.query(`SELECT session.session_generate(subject => '')`)), '22023');
    assert.equal(await sqlState(app.query(`SELECT session.session_generate(subject => repeat('s', 257))`)), '22001');
    assert.equal(await sqlState(app.query(`SELECT session.session_generate(lifetime => 0)`)), '22023');
    assert.equal(await sqlState(app.query(`SELECT * FROM session.session_list('a', 10001)`)), '22023');
    assert.equal(await sqlState(app.query(`SELECT session.session_set_absolute_lifetime(10)`)), '42501');
    assert.equal(await sqlState(app.query(`SELECT session.session_revoke_handle('a', 'nope')`)), '22P02');
    // Existing calls keep working with the wider session_generate.
    const key = (await app.query(`SELECT session.session_generate(60, 'v') AS k`)).rows[0]?.k as string;
    assert.equal((await app.query(`SELECT value FROM session.session_get($1)`, [key])).rows[0]?.value, 'v');
    assert.ok((await app.query(`SELECT session.session_generate(value => 'named') AS k`)).rows[0]?.k);
  });
});
