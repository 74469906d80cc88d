/**
 * The stable error codes of {@link SessionError}. Match on these, never on message text.
 *
 * - `invalid_argument`: rejected by the client before any query was sent (wrong type, non-integer
 *   or unsafe integer period, a value PostgreSQL text cannot hold: NUL or a lone surrogate).
 * - `invalid_parameter`: SQLSTATE 22023, e.g. an expiry outside ±3155760000 s or a period ≤ 0.
 * - `null_value`: SQLSTATE 22004, a NULL where the SQL API needs a value.
 * - `value_too_large`: SQLSTATE 22001, the value exceeds `session.config.max_value_bytes`; nothing
 *   was stored.
 * - `permission_denied`: SQLSTATE 42501, the role may not call the function.
 * - `not_installed`: SQLSTATE 42883 / 3F000, the migrations have not been applied to this database.
 * - `newer_schema`: the database has migrations this package does not ship (a newer version applied
 *   them); `migrate` refuses to run. Upgrade the package.
 * - `prerelease_schema`: a pre-release of session-postgresql installed the database; `migrate` and
 *   `migrationStatus` refuse it, changing nothing. Export what you need, run sql/uninstall.sql, install.
 * - `statement_timeout`: SQLSTATE 57014, the statement was cancelled (statement_timeout).
 * - `lock_timeout`: SQLSTATE 55P03, a lock could not be taken in time (lock_timeout).
 * - `conflict`: SQLSTATE SP001, a conditional write (`ifVersion`) found that the session was
 *   written since that version was read; nothing was written. Read it again and write what it holds now.
 * - `not_object`: SQLSTATE SP002, a merge found a session that is not set or whose value is not a
 *   JSON object; nothing was written.
 * - `read_only`: SQLSTATE 25006, a write reached a server that only reads (a hot standby, or
 *   `default_transaction_read_only`); nothing was written. Reads work there.
 * - `timeout`: with `statementTimeoutMs`, the call had no answer within that time plus a margin
 *   (see docs/typescript.md), so the client dropped its connection. The server may have finished
 *   the call anyway: a write may have committed (e.g. one waiting for a synchronous standby). Retry
 *   only what is safe to repeat (`set`, `touch`, `put`, `clear` are; a retried `generate` may leave
 *   an unused session behind) and re-read to learn the outcome.
 * - `connection`: the database could not be reached, the connection broke, connecting timed out, or
 *   the server asked for a password and none was given. If the connection broke after a write was
 *   sent, the write may have committed, as with `timeout`.
 * - `closed`: the store was closed with `close()`.
 * - `database`: any other error reported by PostgreSQL or the driver (see `cause`).
 */
export type SessionErrorCode =
  | 'invalid_argument'
  | 'invalid_parameter'
  | 'null_value'
  | 'value_too_large'
  | 'permission_denied'
  | 'not_installed'
  | 'newer_schema'
  | 'prerelease_schema'
  | 'statement_timeout'
  | 'lock_timeout'
  | 'conflict'
  | 'not_object'
  | 'read_only'
  | 'timeout'
  | 'connection'
  | 'closed'
  | 'database';

/**
 * The only error type the store rejects with. `code` is stable; `cause` keeps the driver's error.
 * Messages never contain a session key.
 */
export class SessionError extends Error {
  override readonly name = 'SessionError';
  readonly code: SessionErrorCode;
  /** The SQLSTATE reported by PostgreSQL, when there was one. */
  readonly sqlState: string | undefined;

  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown; sqlState?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.sqlState = options?.sqlState;
  }
}

const bySqlState: Record<string, SessionErrorCode> = {
  '22023': 'invalid_parameter',
  '22004': 'null_value',
  '22001': 'value_too_large',
  '42501': 'permission_denied',
  '42883': 'not_installed',
  '3F000': 'not_installed',
  '57014': 'statement_timeout',
  '55P03': 'lock_timeout',
  SP001: 'conflict',
  SP002: 'not_object',
  '25006': 'read_only',
  // Server shutting down, crashed, or not yet accepting connections.
  '57P01': 'connection',
  '57P02': 'connection',
  '57P03': 'connection',
};

const networkErrnos = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

/** The fields of a server error that can never hold a parameter of the call (a session key). */
const safeFields = [
  'code',
  'severity',
  'hint',
  'position',
  'schema',
  'table',
  'column',
  'dataType',
  'constraint',
  'file',
  'line',
  'routine',
  'errno',
  'syscall',
  'address',
  'port',
] as const;

/**
 * A copy of the driver's error without `where`, `detail`, `internalQuery` and the like: with
 * log_parameter_max_length_on_error set, the server puts the call's parameters (the key) into
 * `where`, and `detail` can quote a row. `util.inspect(err)` prints the whole cause chain.
 */
function keyFree(err: unknown): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const source = err as Record<string, unknown> & { message?: unknown; name?: unknown; stack?: unknown };
  const copy = new Error(typeof source.message === 'string' ? source.message : String(err)) as Error & Record<string, unknown>;
  if (typeof source.name === 'string') copy.name = source.name;
  if (typeof source.stack === 'string') copy.stack = source.stack;
  for (const field of safeFields) if (source[field] !== undefined) copy[field] = source[field];
  if (source.cause !== undefined) copy.cause = keyFree(source.cause);
  return copy;
}

/** The errors in `err`'s cause chain, outermost first (node-pg-migrate wraps the driver's). */
export function causeChain(err: unknown): { code?: unknown; message?: unknown; hint?: unknown }[] {
  const chain: { code?: unknown; message?: unknown; hint?: unknown }[] = [];
  for (let e: unknown = err; typeof e === 'object' && e !== null && chain.length < 8; e = (e as { cause?: unknown }).cause) {
    chain.push(e as { code?: unknown; message?: unknown; hint?: unknown });
  }
  return chain;
}

/** The first SQLSTATE or socket errno in the cause chain. EPIPE looks like a SQLSTATE (five capitals). */
function findCode(err: unknown): { sqlState?: string; errno?: string } {
  for (const e of causeChain(err)) {
    if (typeof e.code !== 'string') continue;
    if (networkErrnos.has(e.code)) return { errno: e.code };
    if (/^[0-9A-Z]{5}$/.test(e.code)) return { sqlState: e.code };
  }
  return {};
}

// pg gives no code for its own connect timeouts and broken connections: "timeout expired"
// (Client), "timeout exceeded when trying to connect" (Pool), "Connection terminated ...".
// Matched on the first line only: a wrapped error's message may carry a stack trace, whose
// "pg/lib/connection.js" must not turn, say, a permission error into a connection error.
const connectionMessage =
  /^(connect |Connection terminated|timeout exceeded when trying to connect|timeout expired|Query read timeout|Client has encountered a connection error|The server does not support SSL|There was an error establishing an SSL|Connection already failed)/i;

// pg's words when the server asks for a SCRAM password and none was given.
const noPassword = /^SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a (non-empty )?string/;

/** Wraps whatever the driver threw. The driver's message is kept: it never contains parameters. */
export function toSessionError(err: unknown): SessionError {
  if (err instanceof SessionError) return err;
  const e = (err ?? {}) as { message?: unknown };
  let message = typeof e.message === 'string' ? e.message : String(err);
  // PgBouncer's answer to the settings a direct connection sends when it connects.
  if (message.startsWith('unsupported startup parameter'))
    message += ' (through a pooler such as PgBouncer, connect with `pooled: true`)';
  if (noPassword.test(message)) {
    return new SessionError(
      'connection',
      'the server asks for a password (SCRAM authentication) and the connection has none: the URL ' +
        'has no password; give it in the URL (postgresql://user:password@host/db), the password option, PGPASSWORD or ~/.pgpass',
      { cause: keyFree(err) },
    );
  }
  const { sqlState, errno } = findCode(err);
  if (sqlState !== undefined) {
    const mapped = bySqlState[sqlState] ?? (sqlState.startsWith('08') ? 'connection' : 'database');
    return new SessionError(mapped, message, { cause: keyFree(err), sqlState });
  }
  if (errno !== undefined || connectionMessage.test(message.split('\n', 1)[0] ?? '')) {
    return new SessionError('connection', message, { cause: keyFree(err) });
  }
  return new SessionError('database', message, { cause: keyFree(err) });
}
