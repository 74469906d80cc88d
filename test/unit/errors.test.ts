// How errors become SessionErrors: by SQLSTATE and errno in the cause chain (moved from
// cli-migrate.test.ts and faults.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toSessionError } from '../../src/errors.js';

test('errors are classified by the SQLSTATE in their cause chain, never by a stack trace in the message', () => {
  const denied = Object.assign(new Error('permission denied for schema public'), { code: '42501' });
  const wrapped = toSessionError(
    new Error('Error loading migration files: permission denied for schema public', { cause: denied }),
  );
  assert.equal(wrapped.code, 'permission_denied');
  assert.equal(wrapped.sqlState, '42501');
  // node-pg-migrate's "Unable to ensure migrations table: ${error.stack}" keeps no cause: the stack
  // names pg/lib/connection.js, which once made this a `connection` error.
  const withStack = toSessionError(
    new Error(
      'Unable to ensure migrations table: error: permission denied for schema public\n' +
        '    at /app/node_modules/pg/lib/client.js:545:17\n    at Connection.parseE (/app/node_modules/pg/lib/connection.js:116:11)',
    ),
  );
  assert.equal(withStack.code, 'database');
  assert.equal(
    toSessionError(new Error('x', { cause: Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }) })).code,
    'connection',
  );
  assert.equal(toSessionError(new Error('Connection terminated unexpectedly')).code, 'connection');
});

test('socket errors are `connection`, even EPIPE, whose errno looks like a SQLSTATE', () => {
  for (const errno of ['EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT']) {
    const err = toSessionError(Object.assign(new Error(`write ${errno}`), { code: errno }));
    assert.equal(err.code, 'connection', errno);
    assert.equal(err.sqlState, undefined, errno);
  }
  assert.equal(toSessionError(new Error('timeout expired')).code, 'connection');
});
