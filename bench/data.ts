// The benchmark's tables and data, loaded with SQL (generate_series) for speed. Keys are made from
// numbers so that Node, pgbench and SQL all derive the same key for session number i:
// lpad(i, 64, 'k'), 64 characters like a real key. Values are 200 bytes.
import { createHash } from 'node:crypto';
import type { BenchDatabase } from './setup.js';
import { appRole } from './setup.js';

export const valueBytes = 200;
/** Values of sessions created by a benchmark's generate: the marker lets us find them afterwards. */
export const generatedMarker = 'g';

/** The key of session number i, the same in Node, pgbench (`lpad(:id::text, 64, 'k')`) and SQL. */
export const benchKey = (i: number): string => String(i).padStart(64, 'k');
export const sqlKey = (expr: string) => `lpad((${expr})::text, 64, 'k')`;

/** A value of exactly `valueBytes` ASCII bytes starting with `first`. */
export const benchValue = (first: string): string => first + 'x'.repeat(valueBytes - first.length);

/**
 * express-session's object for a session whose JSON is `valueBytes` long, as connect-pg-simple
 * stores it. `data` starts with `first` (the marker of generated sessions).
 */
export function expressSession(first: string): { cookie: object; data: string } {
  const cookie = {
    originalMaxAge: 604800000,
    expires: new Date(Date.now() + 604800000).toISOString(),
    httpOnly: true,
    path: '/',
  };
  const shell = JSON.stringify({ cookie, data: '' }).length;
  return { cookie, data: benchValue(first).slice(0, valueBytes - shell) };
}

/** The same JSON written by SQL, for loading connect-pg-simple's table. */
function sqlExpressSession(first: string): string {
  const s = expressSession(first);
  return `json_build_object('cookie', json_build_object('originalMaxAge', 604800000,
            'expires', to_char(now() AT TIME ZONE 'UTC' + interval '7 days', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'httpOnly', true, 'path', '/'), 'data', '${s.data}')`;
}

export type Table = 'ours' | 'raw' | 'cps';

/** The "write SQL yourself" baseline's table and connect-pg-simple's table (its table.sql). */
export async function createPeerTables(db: BenchDatabase): Promise<void> {
  await db.sql(`
    CREATE SCHEMA bench_raw;
    CREATE TABLE bench_raw.sessions (expires_at timestamptz NOT NULL, sid text PRIMARY KEY, value text);
    CREATE SCHEMA bench_cps;
    CREATE TABLE bench_cps.session (sid varchar NOT NULL COLLATE "default", sess json NOT NULL, expire timestamp(6) NOT NULL);
    ALTER TABLE bench_cps.session ADD CONSTRAINT session_pkey PRIMARY KEY (sid) NOT DEFERRABLE INITIALLY IMMEDIATE;
    CREATE INDEX "IDX_session_expire" ON bench_cps.session (expire);
    GRANT USAGE ON SCHEMA bench_raw, bench_cps TO ${appRole};
    GRANT SELECT, INSERT, UPDATE, DELETE ON bench_raw.sessions, bench_cps.session TO ${appRole};`);
}

/** Expiry expressions for loadSessions (SQL, may use the session number `i`). */
export const expiries = {
  week: `now() + interval '7 days'`,
  /** Spread over the coming week, as if the sessions had been written over the past one. */
  spread: 'now() + make_interval(secs => 3600 + floor(random() * 601200)::int)',
  /** Every other session expired within the last day, the others spread over the coming week. */
  halfExpired: `CASE WHEN i % 2 = 0 THEN now() - make_interval(secs => 1 + floor(random() * 86400)::int)
                ELSE now() + make_interval(secs => 3600 + floor(random() * 601200)::int) END`,
};

/**
 * Inserts sessions number `from`..`to` into a table with values starting with `first`.
 * `randomIds`: the peers' tables get random 32-character ids (as express-session makes) instead of
 * benchKey(i), for size measurements where the order of insertion into the index matters.
 */
export async function loadSessions(
  db: BenchDatabase,
  table: Table,
  from: number,
  to: number,
  options: { first?: string; expires?: string; randomIds?: boolean } = {},
): Promise<void> {
  const first = options.first ?? 'v';
  const expires = options.expires ?? expiries.week;
  const key = options.randomIds
    ? `translate(encode(substr(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 1, 24), 'base64'), '+/', '-_')`
    : sqlKey('i');
  const range = `generate_series(${from}::bigint, ${to}::bigint) i`;
  const value = `'${benchValue(first)}'`;
  if (table === 'ours') {
    await db.sql(`INSERT INTO session.sessions (expires_at, digest, value)
                  SELECT ${expires}, sha256(convert_to(${key}, 'UTF8')), ${value} FROM ${range}`);
  } else if (table === 'raw') {
    await db.sql(`INSERT INTO bench_raw.sessions (expires_at, sid, value) SELECT ${expires}, ${key}, ${value} FROM ${range}`);
  } else {
    await db.sql(`INSERT INTO bench_cps.session (sid, sess, expire)
                  SELECT ${key}, ${sqlExpressSession(first)}, (${expires})::timestamp FROM ${range}`);
  }
}

/** Deletes the sessions a benchmark's generate created (their values carry the marker) and tombstones. */
export async function deleteGenerated(db: BenchDatabase, table: Table): Promise<void> {
  const like = `'${generatedMarker}%'`;
  // A clear leaves a tombstone (value NULL, cleared): those of generated sessions go too.
  if (table === 'ours') await db.sql(`DELETE FROM session.sessions WHERE value LIKE ${like} OR cleared`);
  else if (table === 'raw') await db.sql(`DELETE FROM bench_raw.sessions WHERE value LIKE ${like}`);
  else await db.sql(`DELETE FROM bench_cps.session WHERE sess->>'data' LIKE ${like}`);
}

export const tableNames: Record<Table, string> = {
  ours: 'session.sessions',
  raw: 'bench_raw.sessions',
  cps: 'bench_cps.session',
};

/** The HTTP scenario's cookie secret. */
export const httpSecret = 'session-bench-secret';

/** The id of the HTTP scenario's i-th session, shaped like express-session's (24 bytes, base64url). */
export const httpSessionId = (i: number): string => createHash('sha256').update(`http-${i}`).digest('base64url').slice(0, 32);
