// `session-pg import connect-pg-simple`: copies the live sessions of a connect-pg-simple table into
// session.sessions, so that an Express app can switch to ExpressSessionStore without logging anyone
// out. The statements are in sql/import/connect-pg-simple.sql; this file runs them in batches.
import { readFileSync } from 'node:fs';
import { withClient, type ConnectionOptions } from './connection.js';
import { SessionError } from './errors.js';

const sqlFile = new URL('../../sql/import/connect-pg-simple.sql', import.meta.url);

/** Source rows read per batch (one short statement each) unless told otherwise. */
export const defaultImportBatchSize = 1000;
export const maxImportBatchSize = 100_000;

/** The batch sizes the import accepts (the CLI checks with this too, to exit 2 on bad usage). */
export const validImportBatchSize = (n: unknown): n is number =>
  typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= maxImportBatchSize;

/** Where the connect-pg-simple table is, and how to read it. */
export interface ConnectPgSimpleImportOptions extends ConnectionOptions {
  /** The table's schema (default `public`: where connect-pg-simple's unqualified table usually lands). */
  schema?: string;
  /** The table (default `session`, connect-pg-simple's default `tableName`). */
  table?: string;
  /** Source rows per batch, 1 to 100000 (default 1000). */
  batchSize?: number;
  /**
   * The time zone in which to read `expire` (a timestamp without time zone, which connect-pg-simple
   * writes and compares in its connection's TimeZone). Default: this connection's, i.e. the
   * database's or role's setting, which is what connect-pg-simple's own connections used unless the
   * app configured another one.
   */
  timeZone?: string;
}

/** Counts of an import so far (after each batch) or in the end. */
export interface ImportProgress {
  /** Live sessions in the source when the import began. */
  live: number;
  /** Source rows read, live or expired. */
  scanned: number;
  /** Sessions written where we had none. */
  imported: number;
  /** Sessions written over an expired (not logged-out) session of ours with the same id. */
  replaced: number;
  /** Left alone: we already hold a live session with that id (written by our store or an earlier import). */
  kept: number;
  /** Left alone: the user logged out with our store (a tombstone); the session stays ended. */
  cleared: number;
  /** Source rows already expired: not imported. */
  expired: number;
  /** Not imported: the value is larger than session.config.max_value_bytes. */
  tooLarge: number;
  /** Not imported: expire is more than 100 years ahead, further than any expiry this store accepts. */
  tooFar: number;
  /** Not imported: the id is not 32 to 1024 base64url characters, which our Express store could not save. */
  badIds: number;
  batches: number;
  elapsedMs: number;
}

/** The statements of the SQL file, by the name on their "-- name:" line. */
function statementsOf(text: string): (name: string) => string {
  const byName = new Map<string, string>();
  for (const part of text.split(/^-- name: /m).slice(1)) {
    const nl = part.indexOf('\n');
    byName.set(part.slice(0, nl).trim(), part.slice(nl + 1));
  }
  return (name) => {
    const s = byName.get(name);
    if (s === undefined) throw new Error(`${sqlFile.pathname} has no statement "${name}"`);
    return s;
  };
}

interface Inspection {
  found: boolean;
  oid: string | null;
  kind: string | null;
  columns: Record<string, string>;
  type_oids: Record<string, number>;
  virtual: string[];
  rls: boolean;
  expressions: string[];
  sid_unique: boolean;
  installed: boolean;
  can_read: boolean;
  can_write: boolean;
}

// PostgreSQL's own types, by oid: a type of the same name in another schema, or a domain over one
// of these, is not accepted (its casts and functions could be the table owner's code).
const accepted: Record<string, { names: string; oids: number[] }> = {
  sid: { names: 'text or varchar', oids: [25, 1043] },
  sess: { names: 'json or jsonb', oids: [114, 3802] },
  expire: { names: 'timestamp', oids: [1114, 1184] },
};

const kinds: Record<string, string> = { v: 'a view', m: 'a materialized view', p: 'a partitioned table', f: 'a foreign table' };

/**
 * Refuses, before reading a row, a source that is not a connect-pg-simple table, one that reading
 * could run its owner's code from, or a role that cannot import.
 */
function check(i: Inspection, name: string): void {
  const fail = (code: 'database' | 'not_installed' | 'permission_denied', sqlState: string, message: string): never => {
    throw new SessionError(code, message, { sqlState });
  };
  if (!i.installed)
    fail(
      'not_installed',
      '42P01',
      'session.sessions is missing or older than migration 005_accounts: run session-pg migrate first',
    );
  if (!i.can_write) {
    fail('permission_denied', '42501', 'the import writes session.sessions directly: run it as the owner of schema session');
  }
  if (!i.found) fail('database', '42P01', `table ${name} does not exist (give the connect-pg-simple table's schema and name)`);
  if (i.kind !== 'r') {
    fail(
      'database',
      '42809',
      `table ${name} is ${kinds[i.kind ?? ''] ?? 'not a table'}, not a plain table: the import reads only plain ` +
        "tables, so that reading them can run no code of the table's owner with this role's rights (a view's definition, a foreign " +
        'table or a partition can call functions); copy its rows into a plain table (as its owner: CREATE TABLE ... AS SELECT sid, sess, ' +
        'expire FROM ..., then a primary key on sid) and import that',
    );
  }
  const wrong = Object.entries(accepted).filter(([col, types]) => !types.oids.includes(i.type_oids[col] ?? 0));
  if (wrong.length > 0) {
    const missing = wrong.filter(([col]) => i.columns[col] === undefined).map(([col]) => col);
    fail(
      'database',
      missing.length > 0 ? '42703' : '42804',
      `table ${name} is not a connect-pg-simple table: it needs columns ${Object.entries(accepted)
        .map(([c, t]) => `${c} (${t.names})`)
        .join(', ')}, ` +
        `of PostgreSQL's own types; ${missing.length > 0 ? `missing: ${missing.join(', ')}` : `wrong type: ${wrong.map(([c]) => `${c} is ${i.columns[c]}`).join(', ')}`}`,
    );
  }
  const virtual = i.virtual.filter((c) => c in accepted);
  if (virtual.length > 0) {
    fail(
      'database',
      '42804',
      `table ${name} computes ${virtual.join(', ')} when read (a virtual generated column, whose expression ` +
        "could call a function of the table's owner): the import does not read it; copy the rows into a plain table and import that",
    );
  }
  if (i.expressions.length > 0) {
    fail(
      'database',
      '42809',
      `table ${name} has an index or statistics object with an expression or a predicate ` +
        `(${i.expressions.join(', ')}): planning a read of the table evaluates such expressions with the reading role's rights, so ` +
        "they could run code of the table's owner. connect-pg-simple creates none: drop them as the table's owner, or copy the rows " +
        'into a plain table, and import again',
    );
  }
  if (!i.sid_unique)
    fail('database', '42P10', `table ${name} has no primary key or unique index on sid alone, as connect-pg-simple creates it`);
  if (!i.can_read) fail('permission_denied', '42501', `this role may not read ${name}`);
  if (i.rls) {
    fail(
      'permission_denied',
      '42501',
      `table ${name} has row-level security, which applies to this role: a policy's expression ` +
        'runs with the rights of the role reading the table, so the import does not read it. connect-pg-simple does not use it: ' +
        `check the policies, then as the table's owner run ALTER TABLE ${name} DISABLE ROW LEVEL SECURITY (and NO FORCE ROW LEVEL SECURITY) ` +
        'and import again, or import as a role with BYPASSRLS',
    );
  }
}

interface BatchRow {
  scanned: string;
  expired: string;
  bad_ids: string;
  too_large: string;
  too_far: string;
  imported: string;
  replaced: string;
  cleared: string;
  kept: string;
}

/**
 * Copies the live sessions of a connect-pg-simple table (sid, sess, expire) into session.sessions:
 * the digest of the sid, the JSON text of sess as the value (what ExpressSessionStore reads), and
 * the expiry from expire, capped by the absolute lifetime (session.config) counted from the import,
 * as for a session generated now. Reads the source in batches in sid order, each written in one
 * statement, and only reads it. Never writes over a live session of ours or a logged-out one
 * (tombstone), so a second run imports nothing again. Must run as the owner of schema session.
 * Reads only a plain table, of PostgreSQL's own column types, without row-level security that
 * applies to this role: nothing the table's owner defined runs with the importer's rights.
 *
 * Errors (SessionError): `invalid_argument` bad batchSize, schema or table; `not_installed`
 * migrations missing; `database` with sqlState 42P01 (no such table), 42809 (a view, materialized
 * view, partitioned or foreign table), 42703 / 42804 (columns missing, of the wrong type or virtual
 * generated), 42P10 (sid not unique), 55000 (the table was replaced during the import);
 * `permission_denied` (not the owner, the source is not readable, or row-level security applies
 * to this role); `invalid_parameter` unknown timeZone; `connection`.
 */
export async function importConnectPgSimple(
  options: ConnectPgSimpleImportOptions = {},
  onProgress?: (p: ImportProgress) => void,
): Promise<ImportProgress> {
  const { schema = 'public', table = 'session', batchSize = defaultImportBatchSize, timeZone, ...connection } = options;
  if (!validImportBatchSize(batchSize)) {
    throw new SessionError('invalid_argument', `batchSize must be a whole number from 1 to ${maxImportBatchSize}`);
  }
  if (typeof schema !== 'string' || typeof table !== 'string' || schema === '' || table === '') {
    throw new SessionError('invalid_argument', 'schema and table must be non-empty strings');
  }
  const sql = statementsOf(readFileSync(sqlFile, 'utf8'));
  const name = `"${schema.replaceAll('"', '""')}"."${table.replaceAll('"', '""')}"`;
  return withClient({ applicationName: 'session-pg import', ...connection }, async (c) => {
    await c.query(sql('setup'), [timeZone ?? null]);
    const inspect = async () => (await c.query<Inspection>(sql('inspect'), [schema, table])).rows[0] as Inspection;
    const first = await inspect();
    check(first, name);
    const fill = async (template: string) =>
      (await c.query<{ text: string }>(sql('fill'), [sql(template), schema, table])).rows[0]?.text ?? '';
    const [lockText, countText, batchText] = [await fill('lock'), await fill('count'), await fill('batch')];
    // Every read in a transaction that locks the table and checks it again first: between the check
    // and the read, its owner cannot turn it into something whose reading runs its code.
    const locked = async <T>(read: () => Promise<T>): Promise<T> => {
      try {
        await c.query(lockText);
        const now = await inspect();
        check(now, name);
        if (now.oid !== first.oid)
          throw new SessionError('database', `table ${name} was replaced during the import: run it again`, { sqlState: '55000' });
        const result = await read();
        // An index or statistics object made during the read (they do not wait for the lock): roll
        // back whatever its expression did in this transaction.
        const after = await inspect();
        check(after, name);
        if (JSON.stringify(after) !== JSON.stringify(now)) {
          throw new SessionError(
            'database',
            `table ${name} changed during the import: nothing of this batch was kept; run it again`,
            { sqlState: '55000' },
          );
        }
        await c.query('COMMIT');
        return result;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    };
    const started = Date.now();
    const live = await locked(async () => Number((await c.query<{ live: string }>(countText)).rows[0]?.live ?? 0));
    const p: ImportProgress = {
      live,
      scanned: 0,
      imported: 0,
      replaced: 0,
      kept: 0,
      cleared: 0,
      expired: 0,
      tooLarge: 0,
      tooFar: 0,
      badIds: 0,
      batches: 0,
      elapsedMs: 0,
    };
    for (;;) {
      // Where to resume stays on the server (sql/import): no session key comes here or goes back.
      const r = await locked(async () => (await c.query<BatchRow>(batchText, [batchSize])).rows[0]);
      if (r === undefined) break;
      p.batches += 1;
      p.scanned += Number(r.scanned);
      p.expired += Number(r.expired);
      p.badIds += Number(r.bad_ids);
      p.tooLarge += Number(r.too_large);
      p.tooFar += Number(r.too_far);
      p.imported += Number(r.imported);
      p.replaced += Number(r.replaced);
      p.cleared += Number(r.cleared);
      p.kept += Number(r.kept);
      p.elapsedMs = Date.now() - started;
      onProgress?.({ ...p });
      if (Number(r.scanned) < batchSize) break;
    }
    return p;
  });
}

/** The progress line: "imported N of M", M being the live sessions the source had at the start. */
export function importLine(p: ImportProgress): string {
  const looked = p.scanned - p.expired;
  return `imported ${p.imported + p.replaced} of ${p.live} live sessions (${looked} looked at, ${p.batches} batches, ${(p.elapsedMs / 1000).toFixed(1)} s)`;
}

/** The report at the end: every session not imported is counted, with why. */
export function importReport(p: ImportProgress): string {
  const lines = [
    `Done: ${p.imported} new, ${p.replaced} replaced an expired session, from ${p.scanned} rows read.`,
    `  ${p.kept} kept: a live session with that id was already here`,
    `  ${p.cleared} kept: the user had logged out here`,
    `  ${p.expired} skipped: expired in the source`,
  ];
  if (p.tooLarge > 0) {
    lines.push(
      `  ${p.tooLarge} skipped: larger than session.config.max_value_bytes; the owner may raise it and run the import again`,
    );
  }
  if (p.tooFar > 0) {
    lines.push(`  ${p.tooFar} skipped: "expire" is more than 100 years ahead, further than this store accepts for any session`);
  }
  if (p.badIds > 0) {
    lines.push(
      `  ${p.badIds} skipped: the id is not 32 to 1024 base64url characters, which this store cannot save; those users start a new session`,
    );
  }
  return lines.join('\n');
}

/**
 * The CLI's arguments: `connect-pg-simple` and the options. Returns the options, or the usage
 * message for wrong usage (exit 2).
 */
export function importArguments(
  args: string[],
  values: Record<string, string | boolean | undefined>,
): ConnectPgSimpleImportOptions | string {
  if (args.length !== 1 || args[0] !== 'connect-pg-simple') return 'import needs the source: session-pg import connect-pg-simple';
  const options: ConnectPgSimpleImportOptions = {};
  const text = (key: string) => (typeof values[key] === 'string' ? values[key] : undefined);
  const batch = text('batch-size');
  if (batch !== undefined) {
    const n = batch.trim() === '' ? NaN : Number(batch);
    if (!validImportBatchSize(n)) return `--batch-size must be a whole number from 1 to ${maxImportBatchSize}`;
    options.batchSize = n;
  }
  for (const [key, field] of [
    ['schema', 'schema'],
    ['table', 'table'],
    ['time-zone', 'timeZone'],
  ] as const) {
    const v = text(key);
    if (v === '') return `--${key} must not be empty`;
    if (v !== undefined) options[field] = v;
  }
  return options;
}

/** Runs the import for the CLI: progress on standard error, the report on standard output. */
export async function importCommand(options: ConnectPgSimpleImportOptions): Promise<void> {
  const tty = process.stderr.isTTY;
  const done = await importConnectPgSimple(options, (p) => {
    if (tty) process.stderr.write(`\r${importLine(p)}\x1b[K`);
    else console.error(importLine(p));
  });
  if (tty) process.stderr.write('\n');
  console.log(importReport(done));
}
