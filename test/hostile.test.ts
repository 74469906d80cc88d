// Hostile input: every case is sent once to the SQL functions (as the client role, over the wire,
// as psql or Python would) and once through the TypeScript client. Each must end in a documented
// error code or a plain not-found / false / no-op, and no stored session may change.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { connectAdmin, type SessionAdmin } from '../src/admin-index.js';
import { freshDatabase, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let app: pg.Client;
let store: SessionStore;
let admin: SessionAdmin;
/** Sessions that must come through untouched: live with a value, live unset, expired (not purged), framework id. */
const victim = { live: '', unset: '', expired: '', id: 'V'.repeat(40) };

before(async () => {
  db = await freshDatabase('hostile');
  const url = await db.clientRole({ admin: true });
  app = new pg.Client({ connectionString: url });
  await app.connect();
  store = connect({ connectionString: url });
  admin = connectAdmin({ connectionString: url });
  victim.live = await store.generate({ expiry: 3600, value: 'victim é😀' });
  victim.unset = await store.generate({ expiry: 3600 });
  victim.expired = await store.generate({ expiry: -5, value: 'expired, not purged' });
  assert.equal(await store.put(victim.id, 'framework session', { expiry: 3600 }), true);
});
after(async () => {
  await store.close();
  await admin.close();
  await app.end();
  await db.drop();
});

/** Everything a hostile call could have changed: every row, the settings and the purge cursor. */
async function snapshot(): Promise<string> {
  const r = await db.query(`
    SELECT (SELECT json_agg(json_build_array(encode(digest, 'hex'), value, expires_at) ORDER BY digest) FROM session.sessions)::text
        || (SELECT row_to_json(c)::text FROM session.config c) || (SELECT row_to_json(p)::text FROM session.purge_state p) AS s`);
  return String(r.rows[0]?.s);
}

// ---- outcomes, as strings so that one table can hold them ----
type Outcome = string;
const sqlError = (state: string): Outcome => `sqlstate ${state}`;
const clientError = (code: string): Outcome => `code ${code}`;
const NOT_FOUND = 'not_found';
const FALSE = 'false';
const DONE = 'done';

async function sqlOutcome(text: string, values: unknown[], read: (r: pg.QueryResult) => Outcome): Promise<Outcome> {
  try {
    return read(await app.query(text, values));
  } catch (err) {
    return sqlError(String((err as { code?: unknown }).code));
  }
}
const sqlGet = (key: unknown) =>
  sqlOutcome('SELECT value FROM session.session_get($1)', [key], (r) => (r.rowCount === 0 ? NOT_FOUND : 'found'));
const sqlBool = (fn: 'set' | 'put', key: unknown, value: unknown, expiry: unknown = null) =>
  sqlOutcome(`SELECT session.session_${fn}($1, $2, $3) AS r`, [key, value, expiry], (r) => String(r.rows[0]?.r));
const sqlVoid = (text: string, values: unknown[] = []) => sqlOutcome(text, values, () => DONE);
const sqlGenerate = (expiry: unknown, value: unknown) => sqlVoid('SELECT session.session_generate($1, $2)', [expiry, value]);

async function clientOutcome(call: () => Promise<unknown>): Promise<Outcome> {
  try {
    const r = await call();
    if (typeof r === 'boolean') return String(r);
    if (r !== null && typeof r === 'object' && 'ok' in r) return r.ok ? 'found' : String((r as { error?: unknown }).error);
    return DONE;
  } catch (err) {
    assert.ok(err instanceof SessionError, `rejected with something else than a SessionError: ${String(err)}`);
    return clientError(err.code);
  }
}

// What JavaScript strings become on the wire when sent as bytes: NUL and lone surrogates cannot be
// sent as text by pg (it would replace a surrogate with U+FFFD), so the SQL side gets the raw bytes
// a careless client in another language would send. PostgreSQL refuses them (22021).
const wtf8 = (s: string): Buffer =>
  Buffer.concat(
    [...s].map((ch) => {
      const c = ch.codePointAt(0) ?? 0;
      if (c >= 0xd800 && c <= 0xdfff) return Buffer.from([0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]);
      return Buffer.from(ch, 'utf8');
    }),
  );

const MiB = 1024 * 1024;
const key100k = 'k'.repeat(100_000);
const key10m = 'k'.repeat(10_000_000);
const as = <T>(v: unknown) => v as T;
const unknownKey = 'A'.repeat(64);

interface Case {
  name: string;
  sql: () => Promise<Outcome>;
  client: () => Promise<Outcome>;
  expect: [sql: Outcome, client: Outcome];
}

// `v` is resolved lazily: victims are generated in before().
const v = victim;
/** The live key with its last character swapped for a LIKE wildcard (base64url has `_`, never `%`). */
const likeMiss = () => `${v.live.slice(0, -1)}${v.live.endsWith('_') ? '%' : '_'}`;
const cases: Case[] = [
  // NULL in every parameter (JavaScript's null is a wrong type for the client).
  {
    name: 'get: NULL key',
    sql: () => sqlGet(null),
    client: () => clientOutcome(() => store.get(as(null))),
    expect: [NOT_FOUND, clientError('invalid_argument')],
  },
  {
    name: 'set: NULL key',
    sql: () => sqlBool('set', null, 'x'),
    client: () => clientOutcome(() => store.set(as(null), 'x')),
    expect: [FALSE, clientError('invalid_argument')],
  },
  {
    name: 'set: NULL value on a live session',
    sql: () => sqlBool('set', v.live, null),
    client: () => clientOutcome(() => store.set(v.live, as(null))),
    expect: [sqlError('22004'), clientError('invalid_argument')],
  },
  {
    name: 'clear: NULL key',
    sql: () => sqlVoid('SELECT session.session_clear($1)', [null]),
    client: () => clientOutcome(() => store.clear(as(null))),
    expect: [DONE, clientError('invalid_argument')],
  },
  {
    name: 'put: NULL key',
    sql: () => sqlBool('put', null, 'x'),
    client: () => clientOutcome(() => store.put(as(null), 'x')),
    expect: [sqlError('22004'), clientError('invalid_argument')],
  },
  {
    name: 'put: NULL value on a live framework id',
    sql: () => sqlBool('put', v.id, null),
    client: () => clientOutcome(() => store.put(v.id, as(null))),
    expect: [sqlError('22004'), clientError('invalid_argument')],
  },
  {
    name: 'set_default_period: NULL',
    sql: () => sqlVoid('SELECT session.session_set_default_period($1)', [null]),
    client: () => clientOutcome(() => admin.setDefaultPeriod(as(null))),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'purge: NULL batch size',
    sql: () => sqlVoid('SELECT session.session_purge($1)', [null]),
    client: () => clientOutcome(() => admin.purge({ batchSize: as(null) })),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'generate: NULL options object',
    sql: () => sqlVoid('SELECT session.session_generate(NULL::text)'),
    client: () => clientOutcome(() => store.generate(as(null))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },

  // Empty strings.
  {
    name: 'get: empty key',
    sql: () => sqlGet(''),
    client: () => clientOutcome(() => store.get('')),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: empty key',
    sql: () => sqlBool('set', '', 'x'),
    client: () => clientOutcome(() => store.set('', 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'clear: empty key',
    sql: () => sqlVoid('SELECT session.session_clear($1)', ['']),
    client: () => clientOutcome(() => store.clear('')),
    expect: [DONE, DONE],
  },
  {
    name: 'put: empty key',
    sql: () => sqlBool('put', '', 'x'),
    client: () => clientOutcome(() => store.put('', 'x')),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'set: empty value on an unknown key',
    sql: () => sqlBool('set', unknownKey, ''),
    client: () => clientOutcome(() => store.set(unknownKey, '')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'set: empty value on an expired session',
    sql: () => sqlBool('set', v.expired, ''),
    client: () => clientOutcome(() => store.set(v.expired, '')),
    expect: [FALSE, FALSE],
  },

  // NUL bytes: PostgreSQL text cannot hold them.
  {
    name: 'set: NUL in a value',
    sql: () => sqlBool('set', v.live, 'a\u0000b'),
    client: () => clientOutcome(() => store.set(v.live, 'a\u0000b')),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },
  {
    name: 'generate: value of one NUL',
    sql: () => sqlGenerate(60, '\u0000'),
    client: () => clientOutcome(() => store.generate({ value: '\u0000' })),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },
  {
    name: 'get: live key followed by NUL',
    sql: () => sqlGet(`${v.live}\u0000`),
    client: () => clientOutcome(() => store.get(`${v.live}\u0000`)),
    expect: [sqlError('22021'), NOT_FOUND],
  },
  {
    name: 'set: key with NUL',
    sql: () => sqlBool('set', `\u0000${v.live}`, 'x'),
    client: () => clientOutcome(() => store.set(`\u0000${v.live}`, 'x')),
    expect: [sqlError('22021'), FALSE],
  },
  {
    name: 'put: framework id with NUL',
    sql: () => sqlBool('put', `${v.id}\u0000`, 'x'),
    client: () => clientOutcome(() => store.put(`${v.id}\u0000`, 'x')),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },
  {
    name: 'clear: live key with NUL',
    sql: () => sqlVoid('SELECT session.session_clear($1)', [`${v.live}\u0000`]),
    client: () => clientOutcome(() => store.clear(`${v.live}\u0000`)),
    expect: [sqlError('22021'), DONE],
  },

  // Lone surrogates: UTF-8 cannot encode them.
  {
    name: 'set: lone high surrogate in a value',
    sql: () => sqlBool('set', v.live, wtf8('a\uD800')),
    client: () => clientOutcome(() => store.set(v.live, 'a\uD800')),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },
  {
    name: 'generate: lone low surrogate in a value',
    sql: () => sqlGenerate(60, wtf8('\uDC00x')),
    client: () => clientOutcome(() => store.generate({ value: '\uDC00x' })),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },
  {
    name: 'put: lone surrogate in a value',
    sql: () => sqlBool('put', v.id, wtf8('\uDBFF')),
    client: () => clientOutcome(() => store.put(v.id, '\uDBFF')),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },
  {
    name: 'get: live key with a lone surrogate',
    sql: () => sqlGet(wtf8(`${v.live}\uD800`)),
    client: () => clientOutcome(() => store.get(`${v.live}\uD800`)),
    expect: [sqlError('22021'), NOT_FOUND],
  },
  {
    name: 'set: key with a lone surrogate',
    sql: () => sqlBool('set', wtf8(`\uDFFF${v.live}`), 'x'),
    client: () => clientOutcome(() => store.set(`\uDFFF${v.live}`, 'x')),
    expect: [sqlError('22021'), FALSE],
  },
  {
    name: 'put: framework id with a lone surrogate',
    sql: () => sqlBool('put', wtf8(`${v.id}\uD800`), 'x'),
    client: () => clientOutcome(() => store.put(`${v.id}\uD800`, 'x')),
    expect: [sqlError('22021'), clientError('invalid_argument')],
  },

  // Values under, at and over the 1 MiB limit (bytes, not characters).
  {
    name: 'set: 1 MiB + 1 byte on a live session',
    sql: () => sqlBool('set', v.live, 'x'.repeat(MiB + 1)),
    client: () => clientOutcome(() => store.set(v.live, 'x'.repeat(MiB + 1))),
    expect: [sqlError('22001'), clientError('value_too_large')],
  },
  {
    name: 'set: 2^19 + 1 two-byte characters (under the limit in characters, over in bytes)',
    sql: () => sqlBool('set', v.live, 'é'.repeat(MiB / 2 + 1)),
    client: () => clientOutcome(() => store.set(v.live, 'é'.repeat(MiB / 2 + 1))),
    expect: [sqlError('22001'), clientError('value_too_large')],
  },
  {
    name: 'generate: 1 MiB + 1 byte',
    sql: () => sqlGenerate(60, 'x'.repeat(MiB + 1)),
    client: () => clientOutcome(() => store.generate({ value: 'x'.repeat(MiB + 1) })),
    expect: [sqlError('22001'), clientError('value_too_large')],
  },
  {
    name: 'put: 1 MiB + 1 byte under a new framework id',
    sql: () => sqlBool('put', 'N'.repeat(40), 'x'.repeat(MiB + 1)),
    client: () => clientOutcome(() => store.put('N'.repeat(40), 'x'.repeat(MiB + 1))),
    expect: [sqlError('22001'), clientError('value_too_large')],
  },
  {
    name: 'put: 1 MiB + 1 byte on a live framework id',
    sql: () => sqlBool('put', v.id, 'x'.repeat(MiB + 1)),
    client: () => clientOutcome(() => store.put(v.id, 'x'.repeat(MiB + 1))),
    expect: [sqlError('22001'), clientError('value_too_large')],
  },
  {
    name: 'set: 10 MB value on a live session',
    sql: () => sqlBool('set', v.live, 'x'.repeat(10_000_000)),
    client: () => clientOutcome(() => store.set(v.live, 'x'.repeat(10_000_000))),
    expect: [sqlError('22001'), clientError('value_too_large')],
  },
  {
    name: 'set: exactly 1 MiB on an unknown key',
    sql: () => sqlBool('set', unknownKey, 'x'.repeat(MiB)),
    client: () => clientOutcome(() => store.set(unknownKey, 'x'.repeat(MiB))),
    expect: [FALSE, FALSE],
  },
  {
    name: 'set: 1 MiB - 1 byte on an unknown key',
    sql: () => sqlBool('set', unknownKey, 'x'.repeat(MiB - 1)),
    client: () => clientOutcome(() => store.set(unknownKey, 'x'.repeat(MiB - 1))),
    expect: [FALSE, FALSE],
  },
  {
    name: 'set: exactly 1 MiB on an expired session',
    sql: () => sqlBool('set', v.expired, 'x'.repeat(MiB)),
    client: () => clientOutcome(() => store.set(v.expired, 'x'.repeat(MiB))),
    expect: [FALSE, FALSE],
  },
  {
    name: 'put: exactly 1 MiB on an expired session (never revived)',
    sql: () => sqlBool('put', v.expired, 'x'.repeat(MiB)),
    client: () => clientOutcome(() => store.put(v.expired, 'x'.repeat(MiB))),
    expect: [FALSE, FALSE],
  },

  // Huge keys: not found without hashing megabytes; put refuses them.
  {
    name: 'get: 100 KB key',
    sql: () => sqlGet(key100k),
    client: () => clientOutcome(() => store.get(key100k)),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: 100 KB key',
    sql: () => sqlBool('set', key100k, 'x'),
    client: () => clientOutcome(() => store.set(key100k, 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'put: 100 KB key',
    sql: () => sqlBool('put', key100k, 'x'),
    client: () => clientOutcome(() => store.put(key100k, 'x')),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'get: 10 MB key',
    sql: () => sqlGet(key10m),
    client: () => clientOutcome(() => store.get(key10m)),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: 10 MB key',
    sql: () => sqlBool('set', key10m, 'x'),
    client: () => clientOutcome(() => store.set(key10m, 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'clear: 10 MB key',
    sql: () => sqlVoid('SELECT session.session_clear($1)', [key10m]),
    client: () => clientOutcome(() => store.clear(key10m)),
    expect: [DONE, DONE],
  },
  {
    name: 'get: live key padded to 1025 bytes',
    sql: () => sqlGet(v.live.padEnd(1025, 'x')),
    client: () => clientOutcome(() => store.get(v.live.padEnd(1025, 'x'))),
    expect: [NOT_FOUND, NOT_FOUND],
  },

  // Quotes, backslashes, LIKE wildcards, SQL fragments, near misses of a real key.
  {
    name: 'get: single quote',
    sql: () => sqlGet("'"),
    client: () => clientOutcome(() => store.get("'")),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: double quotes and backslashes',
    sql: () => sqlBool('set', '"\\"\\\\x00', 'x'),
    client: () => clientOutcome(() => store.set('"\\"\\\\x00', 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'get: a live key with its last character replaced by a LIKE wildcard',
    sql: () => sqlGet(likeMiss()),
    client: () => clientOutcome(() => store.get(likeMiss())),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: a live key prefix followed by %',
    sql: () => sqlBool('set', `${v.live.slice(0, 8)}%`, 'x'),
    client: () => clientOutcome(() => store.set(`${v.live.slice(0, 8)}%`, 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'get: bare %',
    sql: () => sqlGet('%'),
    client: () => clientOutcome(() => store.get('%')),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: "get: ' OR '1'='1",
    sql: () => sqlGet("' OR '1'='1"),
    client: () => clientOutcome(() => store.get("' OR '1'='1")),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: ; DROP TABLE',
    sql: () => sqlBool('set', "'; DROP TABLE session.sessions; --", 'x'),
    client: () => clientOutcome(() => store.set("'; DROP TABLE session.sessions; --", 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'clear: ); DELETE FROM',
    sql: () => sqlVoid('SELECT session.session_clear($1)', ["'); DELETE FROM session.sessions; --"]),
    client: () => clientOutcome(() => store.clear("'); DELETE FROM session.sessions; --")),
    expect: [DONE, DONE],
  },
  {
    name: 'get: dollar quoting',
    sql: () => sqlGet('$$ OR true; $$'),
    client: () => clientOutcome(() => store.get('$$ OR true; $$')),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'put: SQL fragment of framework-id length',
    sql: () => sqlBool('put', "'; DELETE FROM session.sessions; --".padEnd(40, '-'), 'x'),
    client: () => clientOutcome(() => store.put("'; DELETE FROM session.sessions; --".padEnd(40, '-'), 'x')),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'get: a live key in upper case',
    sql: () => sqlGet(v.live.toUpperCase()),
    client: () => clientOutcome(() => store.get(v.live.toUpperCase())),
    expect: [NOT_FOUND, NOT_FOUND],
  },
  {
    name: 'set: a live key with a trailing newline',
    sql: () => sqlBool('set', `${v.live}\n`, 'x'),
    client: () => clientOutcome(() => store.set(`${v.live}\n`, 'x')),
    expect: [FALSE, FALSE],
  },
  {
    name: 'get: the digest of a live key, hex-encoded',
    sql: () =>
      sqlOutcome(`SELECT value FROM session.session_get(encode(sha256(convert_to($1::text, 'UTF8')), 'hex'))`, [v.live], (r) =>
        r.rowCount === 0 ? NOT_FOUND : 'found',
      ),
    client: async () =>
      clientOutcome(async () =>
        store.get((await db.query(`SELECT encode(sha256(convert_to($1::text, 'UTF8')), 'hex') AS d`, [v.live])).rows[0]?.d),
      ),
    expect: [NOT_FOUND, NOT_FOUND],
  },

  // Expiries: out of range, beyond int8, fractional, NaN, Infinity, numeric strings.
  {
    name: 'generate: expiry 2^62',
    sql: () => sqlGenerate('4611686018427387904', 'x'),
    client: () => clientOutcome(() => store.generate({ expiry: 2 ** 62 })),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'generate: expiry -2^62',
    sql: () => sqlGenerate('-4611686018427387904', 'x'),
    client: () => clientOutcome(() => store.generate({ expiry: -(2 ** 62) })),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'set: expiry 2^63-1 on a live session',
    sql: () => sqlBool('set', v.live, 'x', '9223372036854775807'),
    client: () => clientOutcome(() => store.set(v.live, 'x', { expiry: 2 ** 63 - 1 })),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'set: expiry -(2^63-1) on a live session',
    sql: () => sqlBool('set', v.live, 'x', '-9223372036854775807'),
    client: () => clientOutcome(() => store.set(v.live, 'x', { expiry: -(2 ** 63 - 1) })),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'put: expiry -2^63 on a live framework id',
    sql: () => sqlBool('put', v.id, 'x', '-9223372036854775808'),
    client: () => clientOutcome(() => store.put(v.id, 'x', { expiry: -(2 ** 63) })),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'generate: expiry 2^63 (beyond int8)',
    sql: () => sqlGenerate('9223372036854775808', 'x'),
    client: () => clientOutcome(() => store.generate({ expiry: 2 ** 63 })),
    expect: [sqlError('22003'), clientError('invalid_argument')],
  },
  {
    name: 'set: expiry 3155760001 (one second past 100 years)',
    sql: () => sqlBool('set', v.live, 'x', 3155760001),
    client: () => clientOutcome(() => store.set(v.live, 'x', { expiry: 3155760001 })),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'put: expiry -3155760001 on a live framework id',
    sql: () => sqlBool('put', v.id, 'x', -3155760001),
    client: () => clientOutcome(() => store.put(v.id, 'x', { expiry: -3155760001 })),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'set: fractional expiry',
    sql: () => sqlBool('set', v.live, 'x', '1.5'),
    client: () => clientOutcome(() => store.set(v.live, 'x', { expiry: 1.5 })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'generate: NaN expiry',
    sql: () => sqlGenerate('NaN', 'x'),
    client: () => clientOutcome(() => store.generate({ expiry: NaN })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'set: Infinity expiry',
    sql: () => sqlBool('set', v.live, 'x', 'Infinity'),
    client: () => clientOutcome(() => store.set(v.live, 'x', { expiry: Infinity })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'put: -Infinity expiry',
    sql: () => sqlBool('put', v.id, 'x', '-Infinity'),
    client: () => clientOutcome(() => store.put(v.id, 'x', { expiry: -Infinity })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'generate: numeric-string expiry',
    sql: () => sqlGenerate('6e1', 'x'),
    client: () => clientOutcome(() => store.generate({ expiry: as('60') })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'set: expiry as an interval string',
    sql: () => sqlBool('set', v.live, 'x', '1 hour'),
    client: () => clientOutcome(() => store.set(v.live, 'x', { expiry: as('1 hour') })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },

  // Default period and batch size.
  {
    name: 'set_default_period: 2^62',
    sql: () => sqlVoid('SELECT session.session_set_default_period($1)', ['4611686018427387904']),
    client: () => clientOutcome(() => admin.setDefaultPeriod(2 ** 62)),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'set_default_period: 0',
    sql: () => sqlVoid('SELECT session.session_set_default_period($1)', [0]),
    client: () => clientOutcome(() => admin.setDefaultPeriod(0)),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'set_default_period: -2^63',
    sql: () => sqlVoid('SELECT session.session_set_default_period($1)', ['-9223372036854775808']),
    client: () => clientOutcome(() => admin.setDefaultPeriod(-(2 ** 63))),
    expect: [sqlError('22023'), clientError('invalid_argument')],
  },
  {
    name: 'set_default_period: fractional',
    sql: () => sqlVoid('SELECT session.session_set_default_period($1)', ['0.5']),
    client: () => clientOutcome(() => admin.setDefaultPeriod(0.5)),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'set_default_period: numeric string',
    sql: () => sqlVoid('SELECT session.session_set_default_period($1)', ['1 week']),
    client: () => clientOutcome(() => admin.setDefaultPeriod(as('604800'))),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
  {
    name: 'purge: batch size 0',
    sql: () => sqlVoid('SELECT session.session_purge($1)', [0]),
    client: () => clientOutcome(() => admin.purge({ batchSize: 0 })),
    expect: [sqlError('22023'), clientError('invalid_parameter')],
  },
  {
    name: 'purge: batch size 2^31 (beyond int4)',
    sql: () => sqlVoid('SELECT session.session_purge($1)', ['2147483648']),
    client: () => clientOutcome(() => admin.purge({ batchSize: 2 ** 31 })),
    expect: [sqlError('22003'), clientError('invalid_argument')],
  },
  {
    name: 'purge: batch size NaN',
    sql: () => sqlVoid('SELECT session.session_purge($1)', ['NaN']),
    client: () => clientOutcome(() => admin.purge({ batchSize: NaN })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },

  // Wrong types: JavaScript types through the client, SQL types through the functions.
  {
    name: 'get: number key',
    sql: () => sqlVoid('SELECT session.session_get(42)'),
    client: () => clientOutcome(() => store.get(as(42))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'get: no key at all',
    sql: () => sqlVoid('SELECT session.session_get()'),
    client: () => clientOutcome(() => as<(k?: string) => Promise<unknown>>(store.get.bind(store))()),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'set: number value',
    sql: () => sqlVoid('SELECT session.session_set($1::text, 42)', [v.live]),
    client: () => clientOutcome(() => store.set(v.live, as(42))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'set: object value with toString',
    sql: () => sqlVoid(`SELECT session.session_set($1::text, '{"a":1}'::json)`, [v.live]),
    client: () => clientOutcome(() => store.set(v.live, as({ toString: () => 'sneaky' }))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'set: Buffer value',
    sql: () => sqlVoid(`SELECT session.session_set($1::text, '\\x00'::bytea)`, [v.live]),
    client: () => clientOutcome(() => store.set(v.live, as(Buffer.from('x')))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'set: array value',
    sql: () => sqlVoid(`SELECT session.session_set($1::text, ARRAY['a'])`, [v.live]),
    client: () => clientOutcome(() => store.set(v.live, as(['a']))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'set: String object key',
    sql: () => sqlVoid(`SELECT session.session_set(ROW($1::text), 'x')`, [v.live]),
    client: () => clientOutcome(() => store.set(as(new String(v.live)), 'x')),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'clear: object key',
    sql: () => sqlVoid(`SELECT session.session_clear('{}'::jsonb)`),
    client: () => clientOutcome(() => store.clear(as({}))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'generate: expiry passed as a number instead of options',
    sql: () => sqlVoid(`SELECT session.session_generate(true)`),
    client: () => clientOutcome(() => store.generate(as(3600))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'set: expiry passed as a number instead of options',
    sql: () => sqlVoid(`SELECT session.session_set($1::text, 'x', true)`, [v.live]),
    client: () => clientOutcome(() => store.set(v.live, 'x', as(60))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'generate: bigint expiry',
    sql: () => sqlVoid(`SELECT session.session_generate(60::numeric)`),
    client: () => clientOutcome(() => store.generate({ expiry: as(60n) })),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'generate: boolean expiry',
    sql: () => sqlVoid(`SELECT session.session_generate(true, 'x')`),
    client: () => clientOutcome(() => store.generate({ expiry: as(true) })),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'generate: number value',
    sql: () => sqlVoid(`SELECT session.session_generate(60, 42)`),
    client: () => clientOutcome(() => store.generate({ value: as(42) })),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'put: array options',
    sql: () => sqlVoid(`SELECT session.session_put($1::text, 'x', ARRAY[60])`, [v.id]),
    client: () => clientOutcome(() => store.put(v.id, 'x', as([60]))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'purge: string options',
    sql: () => sqlVoid(`SELECT session.session_purge(10.5)`),
    client: () => clientOutcome(() => admin.purge(as('10'))),
    expect: [sqlError('42883'), clientError('invalid_argument')],
  },
  {
    name: 'purge: string batch size',
    sql: () => sqlVoid(`SELECT session.session_purge('ten')`),
    client: () => clientOutcome(() => admin.purge({ batchSize: as('10') })),
    expect: [sqlError('22P02'), clientError('invalid_argument')],
  },
];

const tried = { cases: 0, sqlCalls: 0, clientCalls: 0 };

describe(`hostile input catalogue (${cases.length} cases, each at the SQL level and through the client)`, () => {
  let before = '';
  test('the victims are in place', async () => {
    before = await snapshot();
    assert.equal((await db.query('SELECT count(*)::int AS n FROM session.sessions')).rows[0]?.n, 4);
  });
  for (const c of cases) {
    test(c.name, async () => {
      const sqlResult = await c.sql();
      tried.sqlCalls += 1;
      assert.equal(sqlResult, c.expect[0], `SQL level: ${c.name}`);
      assert.equal(await snapshot(), before, `SQL level changed a stored session: ${c.name}`);
      const clientResult = await c.client();
      tried.clientCalls += 1;
      assert.equal(clientResult, c.expect[1], `client: ${c.name}`);
      assert.equal(await snapshot(), before, `client changed a stored session: ${c.name}`);
      tried.cases += 1;
    });
  }
  test('the victims still read as before; figures', async (t) => {
    const live = await store.get(v.live);
    assert.ok(live.ok && live.value === 'victim é😀');
    assert.deepEqual(await store.get(v.unset), { ok: false, error: 'not_set' });
    assert.deepEqual(await store.get(v.expired), { ok: false, error: 'not_found' });
    const id = await store.get(v.id);
    assert.ok(id.ok && id.value === 'framework session');
    assert.equal(await store.defaultPeriod(), 604800);
    assert.equal(tried.cases, cases.length);
    const line = `hostile input: ${tried.cases} cases, ${tried.sqlCalls} SQL calls + ${tried.clientCalls} client calls, 0 stored sessions changed`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });
});
