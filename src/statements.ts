/**
 * The calls the client makes: one SQL API function each, as named prepared statements so that the
 * server parses and plans each one once per connection. The logic is in sql/; these only call it.
 */
const call = (name: string, text: string) => ({ name: `session_pg_${name}`, text });

export const statements = {
  generate: call('generate', 'SELECT session.session_generate($1::bigint, $2::text)'),
  generateFor: call('generate_for', 'SELECT session.session_generate($1::bigint, $2::text, $3::text, $4::text, $5::bigint)'),
  // A get's row has the batch's columns, [value, period, ord, version], whichever statement sent it.
  get: call('get', 'SELECT value, period, NULL::integer AS ord, version FROM session.session_get($1::text)'),
  getBatch: call('get_batch', 'SELECT value, period, ord, version FROM session.session_get_batch($1::text[])'),
  set: call('set', 'SELECT session.session_set($1::text, $2::text, $3::bigint, $4::bigint)'),
  touch: call('touch', 'SELECT session.session_touch($1::text, $2::bigint)'),
  put: call('put', 'SELECT session.session_put($1::text, $2::text, $3::bigint, $4::bigint)'),
  merge: call('merge', 'SELECT session.session_merge($1::text, $2::jsonb, $3::text[], $4::bigint, $5::bigint)'),
  count: call('count', 'SELECT session.session_count()'),
  clear: call('clear', 'SELECT session.session_clear($1::text)'),
  defaultPeriod: call('default_period', 'SELECT session.session_default_period()'),
  setDefaultPeriod: call('set_default_period', 'SELECT session.session_set_default_period($1::bigint)'),
  purge: call('purge', 'SELECT session.session_purge()'),
  purgeBatch: call('purge_batch', 'SELECT session.session_purge($1::integer)'),
  setSubject: call('set_subject', 'SELECT session.session_set_subject($1::text, $2::text, $3::text)'),
  list: call(
    'list',
    'SELECT handle::text, created_at, written_at, expires_at, label FROM session.session_list($1::text, $2::integer)',
  ),
  revoke: call('revoke', 'SELECT session.session_revoke($1::text, $2::text)'),
  revokeHandle: call('revoke_handle', 'SELECT session.session_revoke_handle($1::text, $2::uuid)'),
  rotate: call('rotate', 'SELECT session.session_rotate($1::text)'),
  absoluteLifetime: call('absolute_lifetime', 'SELECT session.session_absolute_lifetime()'),
  setAbsoluteLifetime: call('set_absolute_lifetime', 'SELECT session.session_set_absolute_lifetime($1::bigint)'),
  writeBatch: call(
    'write_batch',
    'SELECT ord, sqlstate, message, ok, key FROM ' +
      'session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])',
  ),
} as const;

/**
 * Sent ahead of every statement on a pooled connection (`pooled: true`), before the same Sync: the
 * two run in one implicit transaction, so on one server connection whatever the pooler does, and
 * these transaction-local settings are in force when the statement's parameters are bound.
 * - plan_cache_mode: unnamed statements get custom plans, which carry the key as a literal that
 *   auto_explain (log_verbose) would log; the generic plan shows `$1`.
 * - log_parameter_max_length_on_error: read at Bind; any role may raise it, and the server would
 *   then log a failing call's parameters and send them back in the error's `where` field.
 * - $1, $2: statementTimeoutMs and lockTimeoutMs, or NULL to keep the server's.
 */
export const pooledSettings =
  "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), " +
  "set_config('log_parameter_max_length_on_error', '0', true), " +
  "set_config('statement_timeout', coalesce($1::text, current_setting('statement_timeout')), true), " +
  "set_config('lock_timeout', coalesce($2::text, current_setting('lock_timeout')), true)";
