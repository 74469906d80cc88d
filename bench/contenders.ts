// The Node contenders, each with the same four operations on its own table of the same size:
// ours (the connect() client, default options), ours-pool10 (the same client over a pg.Pool of 10),
// raw (a plain pg.Pool with named prepared statements on a plain table), raw-fn (a plain pg.Pool
// calling our SQL functions, prepared) and connect-pg-simple 10 (through express-session's API).
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import session from 'express-session';
import pg from 'pg';
import { connect } from '../src/index.js';
import { benchKey, benchValue, expressSession, generatedMarker } from './data.js';

export type NodeContenderName = 'ours' | 'ours-pool10' | 'raw' | 'raw-fn' | 'cps';

export interface NodeContender {
  name: NodeContenderName;
  /** Reads session number i. */
  get(i: number): Promise<unknown>;
  /** Replaces the value of session number i. */
  set(i: number): Promise<unknown>;
  /** Creates a session and resolves its key. */
  generate(): Promise<string>;
  /** Ends the session with this key. */
  clear(key: string): Promise<unknown>;
  /** Checks that reads and writes really hit live sessions (once, before measuring). */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** Keys of the loaded sessions, made once so that no contender pays for building them. */
export function keyTable(sessions: number): string[] {
  return Array.from({ length: sessions + 1 }, (_, i) => benchKey(i));
}

function expect(condition: boolean, what: string): void {
  if (!condition) throw new Error(`benchmark sanity check failed: ${what}`);
}

export function ours(url: string, keys: string[]): NodeContender {
  return oursWith(connect({ connectionString: url }), 'ours', keys, async () => {});
}

/** ours over a pg.Pool of 10 that the caller owns (`connect({ pool })`). */
export function oursPool10(url: string, keys: string[]): NodeContender {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => {});
  return oursWith(connect({ pool }), 'ours-pool10', keys, () => pool.end());
}

function oursWith(
  store: ReturnType<typeof connect>,
  name: NodeContenderName,
  keys: string[],
  closePool: () => Promise<void>,
): NodeContender {
  const setValue = benchValue('s');
  const generateOptions = { value: benchValue(generatedMarker) };
  return {
    name,
    get: (i) => store.get(keys[i] as string),
    set: (i) => store.set(keys[i] as string, setValue),
    generate: () => store.generate(generateOptions),
    clear: (key) => store.clear(key),
    async check() {
      const r = await store.get(keys[1] as string);
      expect(r.ok && r.value.length === setValue.length, `${name}: get of session 1`);
      expect(await store.set(keys[2] as string, setValue), `${name}: set of session 2`);
    },
    async close() {
      await store.close();
      await closePool();
    },
  };
}

export function raw(url: string, keys: string[]): NodeContender {
  const pool = new pg.Pool({ connectionString: url });
  pool.on('error', () => {});
  const setValue = benchValue('s');
  const generateValue = benchValue(generatedMarker);
  const get = { name: 'raw_get', text: 'SELECT value FROM bench_raw.sessions WHERE sid = $1 AND expires_at > now()' };
  const set = {
    name: 'raw_set',
    text: `UPDATE bench_raw.sessions SET value = $2, expires_at = now() + interval '7 days' WHERE sid = $1 AND expires_at > now()`,
  };
  const insert = {
    name: 'raw_insert',
    text: `INSERT INTO bench_raw.sessions (expires_at, sid, value) VALUES (now() + interval '7 days', $1, $2)`,
  };
  const remove = { name: 'raw_delete', text: 'DELETE FROM bench_raw.sessions WHERE sid = $1' };
  return {
    name: 'raw',
    get: (i) => pool.query({ ...get, values: [keys[i]] }),
    set: (i) => pool.query({ ...set, values: [keys[i], setValue] }),
    async generate() {
      const sid = randomBytes(48).toString('base64url');
      await pool.query({ ...insert, values: [sid, generateValue] });
      return sid;
    },
    clear: (key) => pool.query({ ...remove, values: [key] }),
    async check() {
      expect((await pool.query({ ...get, values: [keys[1]] })).rowCount === 1, 'raw: get of session 1');
      expect((await pool.query({ ...set, values: [keys[2], setValue] })).rowCount === 1, 'raw: set of session 2');
    },
    close: () => pool.end(),
  };
}

/** A plain pg.Pool (default size 10) calling our SQL functions with named prepared statements. */
export function rawFn(url: string, keys: string[]): NodeContender {
  const pool = new pg.Pool({ connectionString: url });
  pool.on('error', () => {});
  const setValue = benchValue('s');
  const generateValue = benchValue(generatedMarker);
  const get = { name: 'fn_get', text: 'SELECT value, period FROM session.session_get($1)' };
  const set = { name: 'fn_set', text: 'SELECT session.session_set($1, $2, $3) AS ok' };
  const generate = { name: 'fn_generate', text: 'SELECT session.session_generate($1, $2) AS key' };
  const clear = { name: 'fn_clear', text: 'SELECT session.session_clear($1)' };
  return {
    name: 'raw-fn',
    get: (i) => pool.query({ ...get, values: [keys[i]] }),
    set: (i) => pool.query({ ...set, values: [keys[i], setValue, null] }),
    async generate() {
      const r = await pool.query<{ key: string }>({ ...generate, values: [null, generateValue] });
      return (r.rows[0] as { key: string }).key;
    },
    clear: (key) => pool.query({ ...clear, values: [key] }),
    async check() {
      expect((await pool.query({ ...get, values: [keys[1]] })).rowCount === 1, 'raw-fn: get of session 1');
      expect(
        (await pool.query<{ ok: boolean }>({ ...set, values: [keys[2], setValue, null] })).rows[0]?.ok === true,
        'raw-fn: set of session 2',
      );
    },
    close: () => pool.end(),
  };
}

/** connect-pg-simple 10's store, as express-session sees it (it ships no types). */
interface PgStore extends session.Store {
  close(): Promise<void>;
}
type PgStoreClass = new (options: {
  conString: string;
  schemaName: string;
  tableName: string;
  pruneSessionInterval: false;
}) => PgStore;
const connectPgSimple = createRequire(import.meta.url)('connect-pg-simple') as (s: typeof session) => PgStoreClass;

const callback = <T>(run: (cb: (err: unknown, result?: T) => void) => void): Promise<T | undefined> =>
  new Promise((resolve, reject) => run((err, result) => (err ? reject(err) : resolve(result))));

/** connect-pg-simple on the table bench_cps.session, with default options but for its pruning timer. */
export function cpsStore(url: string): PgStore {
  const PGStore = connectPgSimple(session);
  // Its pruning timer is off: it adds a DELETE every 15 minutes per process, not a cost per call.
  return new PGStore({ conString: url, schemaName: 'bench_cps', tableName: 'session', pruneSessionInterval: false });
}

export function cps(url: string, keys: string[]): NodeContender {
  const store = cpsStore(url);
  const setSession = expressSession('s') as unknown as session.SessionData;
  const generateSession = expressSession(generatedMarker) as unknown as session.SessionData;
  return {
    name: 'cps',
    get: (i) => callback((cb) => store.get(keys[i] as string, cb)),
    set: (i) => callback((cb) => store.set(keys[i] as string, setSession, cb)),
    async generate() {
      // express-session makes its own ids (24 random bytes) and saves them with set.
      const sid = randomBytes(24).toString('base64url');
      await callback((cb) => store.set(sid, generateSession, cb));
      return sid;
    },
    clear: (key) => callback((cb) => store.destroy(key, cb)),
    async check() {
      const s = await callback<session.SessionData | null>((cb) => store.get(keys[1] as string, cb));
      expect(typeof s === 'object' && s !== null && 'data' in s, 'cps: get of session 1');
    },
    close: () => store.close(),
  };
}

export const nodeContenders = { ours, 'ours-pool10': oursPool10, raw, 'raw-fn': rawFn, cps } as const;

/** connect-redis over node-redis, as its README sets it up (one client, default options). */
export async function redisStore(url: string): Promise<session.Store & { close(): Promise<void> }> {
  const [{ createClient }, { RedisStore }] = await Promise.all([import('redis'), import('connect-redis')]);
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return Object.assign(new RedisStore({ client }), {
    close: async () => {
      await client.quit().catch(() => {});
    },
  });
}
