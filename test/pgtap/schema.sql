-- session-postgresql, checked with pgTAP: the installed functions, their signatures and privileges.
-- Run it against your own install (sql/install.sql or the Node migrations), as the owner or a
-- superuser:   pg_prove -d yourdb test/pgtap/*.sql   or   psql -X -d yourdb -f test/pgtap/schema.sql
-- It runs in one transaction that is rolled back: it changes nothing, not even pgTAP's installation.
\set QUIET 1
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SET LOCAL client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(62);
-- The roles this install grants to (session_client and session_admin unless chosen at install).
SELECT client_role, admin_role FROM session.config \gset

-- Signatures ---------------------------------------------------------------------------------------
SELECT function_returns('session', 'session_generate', ARRAY['bigint', 'text', 'text', 'text', 'bigint'], 'text', 'session_generate(bigint, text, text, text, bigint) returns text');
SELECT function_returns('session', 'session_set_subject', ARRAY['text', 'text', 'text'], 'boolean', 'session_set_subject(text, text, text) returns boolean');
SELECT function_returns('session', 'session_list', ARRAY['text', 'integer'], 'setof record', 'session_list(text, integer) returns a set of sessions');
SELECT function_returns('session', 'session_revoke', ARRAY['text', 'text'], 'bigint', 'session_revoke(text, text) returns bigint');
SELECT function_returns('session', 'session_revoke_handle', ARRAY['text', 'uuid'], 'boolean', 'session_revoke_handle(text, uuid) returns boolean');
SELECT function_returns('session', 'session_rotate', ARRAY['text'], 'text', 'session_rotate(text) returns text');
SELECT function_returns('session', 'session_get', ARRAY['text'], 'setof record', 'session_get(text) returns a set of (value, period)');
SELECT function_returns('session', 'session_set', ARRAY['text', 'text', 'bigint', 'bigint'], 'boolean', 'session_set(text, text, bigint, bigint) returns boolean');
SELECT function_returns('session', 'session_touch', ARRAY['text', 'bigint'], 'boolean', 'session_touch(text, bigint) returns boolean');
SELECT function_returns('session', 'session_put', ARRAY['text', 'text', 'bigint', 'bigint'], 'boolean', 'session_put(text, text, bigint, bigint) returns boolean');
SELECT function_returns('session', 'session_count', ARRAY[]::name[], 'bigint', 'session_count() returns bigint');
SELECT function_returns('session', 'session_clear', ARRAY['text'], 'void', 'session_clear(text) returns void');
SELECT function_returns('session', 'session_default_period', ARRAY[]::name[], 'bigint', 'session_default_period() returns bigint');
SELECT function_returns('session', 'session_set_default_period', ARRAY['bigint'], 'void', 'session_set_default_period(bigint) returns void');
SELECT function_returns('session', 'session_purge', ARRAY['integer'], 'bigint', 'session_purge(integer) returns bigint');
SELECT function_returns('session', 'session_stats', ARRAY[]::name[], 'record', 'session_stats() returns a record');
SELECT is_procedure('session', 'session_purge_job', ARRAY['integer', 'double precision'], 'session_purge_job(integer, double precision) is a procedure');

-- Callers use named arguments (session_generate(value => ...)), so names and defaults are API too.
SELECT results_eq(
  $$ SELECT p.proname::text COLLATE "default", pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid)
       FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = 'session'::regnamespace AND p.proname LIKE 'session\_%'
      ORDER BY 1 $$,
  $$ VALUES ('session_absolute_lifetime', '', 'bigint'),
            ('session_clear', 'key text', 'void'),
            ('session_count', '', 'bigint'),
            ('session_default_period', '', 'bigint'),
            ('session_generate', 'expiry bigint DEFAULT NULL::bigint, value text DEFAULT NULL::text, subject text DEFAULT NULL::text, label text DEFAULT NULL::text, lifetime bigint DEFAULT NULL::bigint', 'text'),
            ('session_get', 'key text', 'TABLE(value text, period bigint, version bigint)'),
            ('session_get_batch', 'keys text[]', 'TABLE(ord integer, value text, period bigint, version bigint)'),
            ('session_list', 'subject text, max_sessions integer DEFAULT 100', 'TABLE(handle uuid, created_at timestamp with time zone, written_at timestamp with time zone, expires_at timestamp with time zone, label text)'),
            ('session_merge', 'key text, set_fields jsonb, unset_fields text[] DEFAULT NULL::text[], expiry bigint DEFAULT NULL::bigint, if_version bigint DEFAULT NULL::bigint', 'boolean'),
            ('session_purge', 'batch_size integer DEFAULT 10000', 'bigint'),
            ('session_purge_job', 'IN budget_seconds integer DEFAULT 30, IN pause double precision DEFAULT 4', NULL),
            ('session_put', 'key text, value text, expiry bigint DEFAULT NULL::bigint, if_version bigint DEFAULT NULL::bigint', 'boolean'),
            ('session_revoke', 'subject text, except_key text DEFAULT NULL::text', 'bigint'),
            ('session_revoke_handle', 'subject text, handle uuid', 'boolean'),
            ('session_rotate', 'key text', 'text'),
            ('session_set', 'key text, value text, expiry bigint DEFAULT NULL::bigint, if_version bigint DEFAULT NULL::bigint', 'boolean'),
            ('session_set_absolute_lifetime', 'lifetime bigint', 'void'),
            ('session_set_default_period', 'period bigint', 'void'),
            ('session_set_subject', 'key text, subject text, label text DEFAULT NULL::text', 'boolean'),
            ('session_stats', 'OUT live bigint, OUT expired bigint, OUT table_bytes bigint, OUT index_bytes bigint, OUT default_period bigint, OUT max_value_bytes integer', 'record'),
            ('session_touch', 'key text, expiry bigint DEFAULT NULL::bigint', 'boolean'),
            ('session_write_batch', 'kinds text[], keys text[], vals text[], expiries bigint[], versions bigint[] DEFAULT NULL::bigint[]', 'TABLE(ord integer, sqlstate text, message text, ok boolean, key text)') $$,
  'the session_* routines are exactly the documented ones, with their argument names and defaults');

-- Security definer with a pinned search_path --------------------------------------------------------
-- A caller's search_path must never redirect a name these functions use (see "Security model").
SELECT is_definer('session', 'session_generate', ARRAY['bigint', 'text', 'text', 'text', 'bigint'], 'session_generate is SECURITY DEFINER');
SELECT is_definer('session', 'session_get', ARRAY['text'], 'session_get is SECURITY DEFINER');
SELECT is_definer('session', 'session_set', ARRAY['text', 'text', 'bigint', 'bigint'], 'session_set is SECURITY DEFINER');
SELECT is_definer('session', 'session_merge', ARRAY['text', 'jsonb', 'text[]', 'bigint', 'bigint'], 'session_merge is SECURITY DEFINER');
SELECT is_definer('session', 'session_touch', ARRAY['text', 'bigint'], 'session_touch is SECURITY DEFINER');
SELECT is_definer('session', 'session_put', ARRAY['text', 'text', 'bigint', 'bigint'], 'session_put is SECURITY DEFINER');
SELECT is_definer('session', 'session_count', ARRAY[]::name[], 'session_count is SECURITY DEFINER');
SELECT is_definer('session', 'session_clear', ARRAY['text'], 'session_clear is SECURITY DEFINER');
SELECT is_definer('session', 'session_default_period', ARRAY[]::name[], 'session_default_period is SECURITY DEFINER');
SELECT is_definer('session', 'session_set_default_period', ARRAY['bigint'], 'session_set_default_period is SECURITY DEFINER');
SELECT is_definer('session', 'session_purge', ARRAY['integer'], 'session_purge is SECURITY DEFINER');
SELECT is_definer('session', 'session_stats', ARRAY[]::name[], 'session_stats is SECURITY DEFINER');
-- A procedure that COMMITs may not be SECURITY DEFINER; it is safe because only the owner calls it.
SELECT isnt_definer('session', 'session_purge_job', ARRAY['integer', 'double precision'], 'session_purge_job runs with its caller''s rights');

SELECT is_empty(
  $$ SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = 'session'::regnamespace AND p.prokind = 'f' AND p.proname NOT IN ('key_digest', 'new_key', 'well_formed_key', 'write_problem', 'merge_fields_problem', 'merge_shape_problem', 'write_check')
        AND p.proconfig IS DISTINCT FROM ARRAY['search_path=pg_catalog, pg_temp'] $$,
  'every function but the inlined key_digest, new_key, well_formed_key, write_problem, merge_fields_problem and merge_shape_problem, and write_check (called only under the batch functions'' pinned path), pins search_path');
-- Whoever owns the schema owns what the definer functions run as; a stray owner would change that.
SELECT is_empty(
  $$ SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p, pg_catalog.pg_namespace n
      WHERE p.pronamespace = n.oid AND n.nspname = 'session' AND p.proowner <> n.nspowner $$,
  'every routine is owned by the owner of schema session');

-- Privileges of the client role (the application's) ---------------------------------------------------
SELECT schema_privs_are('session', :'client_role', ARRAY['USAGE'], 'the client role may use schema session, not create in it');
SELECT function_privs_are('session', 'session_generate', ARRAY['bigint', 'text', 'text', 'text', 'bigint'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_generate');
SELECT function_privs_are('session', 'session_get', ARRAY['text'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_get');
SELECT function_privs_are('session', 'session_set', ARRAY['text', 'text', 'bigint', 'bigint'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_set');
SELECT function_privs_are('session', 'session_merge', ARRAY['text', 'jsonb', 'text[]', 'bigint', 'bigint'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_merge');
SELECT function_privs_are('session', 'session_touch', ARRAY['text', 'bigint'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_touch');
SELECT function_privs_are('session', 'session_put', ARRAY['text', 'text', 'bigint', 'bigint'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_put');
SELECT function_privs_are('session', 'session_count', ARRAY[]::name[], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_count');
SELECT function_privs_are('session', 'session_clear', ARRAY['text'], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_clear');
SELECT function_privs_are('session', 'session_default_period', ARRAY[]::name[], :'client_role', ARRAY['EXECUTE'], 'the client role may call session_default_period');
SELECT function_privs_are('session', 'session_set_default_period', ARRAY['bigint'], :'client_role', ARRAY[]::name[], 'the client role may not change the default period (admin role)');
SELECT function_privs_are('session', 'session_purge', ARRAY['integer'], :'client_role', ARRAY[]::name[], 'the client role may not purge (admin role)');
SELECT function_privs_are('session', 'session_stats', ARRAY[]::name[], :'client_role', ARRAY[]::name[], 'the client role may not call session_stats (admin role)');
SELECT function_privs_are('session', 'session_purge_job', ARRAY['integer', 'double precision'], :'client_role', ARRAY[]::name[], 'the client role may not call session_purge_job (owner only)');
SELECT function_privs_are('session', 'key_digest', ARRAY['text'], :'client_role', ARRAY[]::name[], 'the client role may not call the private key_digest');
SELECT function_privs_are('session', 'expiry_at', ARRAY['text', 'bigint', 'timestamp with time zone'], :'client_role', ARRAY[]::name[], 'the client role may not call the private expiry_at');
SELECT function_privs_are('session', 'write_check', ARRAY['text', 'text', 'text', 'bigint', 'integer'], :'client_role', ARRAY[]::name[], 'the client role may not call the private write_check');
SELECT function_privs_are('session', 'write_problem', ARRAY['text', 'text', 'text', 'bigint', 'integer'], :'client_role', ARRAY[]::name[], 'the client role may not call the private write_problem');
-- Catches a routine added later and granted by mistake, which the lines above would not name.
SELECT set_eq(
  format($$ SELECT p.proname::text FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = 'session'::regnamespace AND pg_catalog.has_function_privilege(%L, p.oid, 'EXECUTE') $$, :'client_role'),
  ARRAY['session_generate', 'session_get', 'session_set', 'session_touch', 'session_put', 'session_merge', 'session_count', 'session_clear',
        'session_default_period', 'session_set_subject', 'session_list', 'session_revoke', 'session_revoke_handle',
        'session_rotate', 'session_absolute_lifetime', 'session_write_batch', 'session_get_batch'],
  'the client role may call the data and per-subject functions and nothing else in schema session');
SELECT table_privs_are('session', 'sessions', :'client_role', ARRAY[]::name[], 'the client role has no privilege on session.sessions');
SELECT table_privs_are('session', 'config', :'client_role', ARRAY[]::name[], 'the client role has no privilege on session.config');
SELECT table_privs_are('session', 'purge_state', :'client_role', ARRAY[]::name[], 'the client role has no privilege on session.purge_state');

-- Privileges of the admin role -------------------------------------------------------------------------
SELECT schema_privs_are('session', :'admin_role', ARRAY['USAGE'], 'the admin role may use schema session, not create in it');
SELECT set_eq(
  format($$ SELECT p.proname::text FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = 'session'::regnamespace AND pg_catalog.has_function_privilege(%L, p.oid, 'EXECUTE') $$, :'admin_role'),
  ARRAY['session_set_default_period', 'session_purge', 'session_stats', 'session_default_period', 'session_count',
        'session_set_absolute_lifetime', 'session_absolute_lifetime'],
  'the admin role may change the default period and absolute lifetime, purge, read stats and counts, and nothing else');
SELECT table_privs_are('session', 'sessions', :'admin_role', ARRAY[]::name[], 'the admin role has no privilege on session.sessions');

-- Nothing for PUBLIC -----------------------------------------------------------------------------------
-- acldefault stands in for a NULL ACL, which would mean PostgreSQL's defaults (EXECUTE for PUBLIC).
SELECT is_empty(
  $$ SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p,
            pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
      WHERE p.pronamespace = 'session'::regnamespace AND a.grantee = 0 $$,
  'PUBLIC may execute no routine of schema session');
SELECT ok(
  NOT EXISTS (SELECT FROM pg_catalog.aclexplode(
                (SELECT coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner)) FROM pg_catalog.pg_proc p
                  WHERE p.oid = 'session.session_purge_job(integer, double precision)'::regprocedure)) a
               WHERE a.grantee = 0),
  'PUBLIC may not call session_purge_job');
SELECT is_empty(
  $$ SELECT c.relname::text FROM pg_catalog.pg_class c,
            pg_catalog.aclexplode(coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) a
      WHERE c.relnamespace = 'session'::regnamespace AND a.grantee = 0 $$,
  'PUBLIC has no privilege on any table of schema session');
SELECT is_empty(
  $$ SELECT a.privilege_type FROM pg_catalog.pg_namespace n,
            pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
      WHERE n.nspname = 'session' AND a.grantee = 0 $$,
  'PUBLIC has no privilege on schema session');

SELECT * FROM finish();
ROLLBACK;
