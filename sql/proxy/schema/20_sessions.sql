-- The public API of a partition, routed. Same signatures, results and SQLSTATEs as on one
-- database, plus 08006 when a partition cannot be reached. Differences, all documented in
-- docs/scale-out.md: every call commits on its partition at once (a ROLLBACK on the proxy does not
-- undo it); count, purge, stats and set_default_period visit every partition in parallel; purge
-- deletes up to batch_size rows per partition; session_default_period reads partition 0.

-- The default period is the same on every partition (session_set_default_period sets them all).
SELECT session_proxy.route('session_default_period', ARRAY[]::text[], 'bigint', '0', ARRAY['client', 'admin'],
  'The period in seconds given to sessions generated or set without an expiry (604800 after install), '
  'as partition 0 has it.');

-- Calls without a key: every partition, in parallel; the proxy adds up.
SELECT session_proxy.remote('session_count', ARRAY[]::text[], 'SETOF bigint', 'ALL');

CREATE OR REPLACE FUNCTION session.session_count() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT sum(n)::bigint FROM session_proxy.session_count() n);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_count', ARRAY[]::text[], ARRAY['client', 'admin']);

COMMENT ON FUNCTION session.session_count() IS
  'The number of live (unexpired) sessions on all partitions. Through the proxy: 08006 when a '
  'partition is unreachable.';

SELECT session_proxy.remote('session_purge', ARRAY['batch_size integer'], 'SETOF bigint', 'ALL');

CREATE OR REPLACE FUNCTION session.session_purge(batch_size integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT sum(n)::bigint FROM session_proxy.session_purge(batch_size) n);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_purge', ARRAY['batch_size integer'], ARRAY['admin']);

COMMENT ON FUNCTION session.session_purge(integer) IS
  'Deletes expired sessions on every partition (each partition about batch_size rows, in one short '
  'transaction of its own) and returns how many in all; call until it returns 0. Each partition''s '
  'pg_cron job normally does this. Errors: 22023 batch_size NULL or < 1. Through the proxy: 08006 '
  'when a partition is unreachable.';

-- Every partition validates the period (all raise the same 22023 for a bad one). A partition that
-- is down misses the change: run it again once the partition is back (stats shows a mismatch).
SELECT session_proxy.remote('session_set_default_period', ARRAY['period bigint'], 'SETOF void', 'ALL');

CREATE OR REPLACE FUNCTION session.session_set_default_period(period bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM session_proxy.session_set_default_period(period);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_set_default_period', ARRAY['period bigint'], ARRAY['admin']);

COMMENT ON FUNCTION session.session_set_default_period(bigint) IS
  'Admin role. Sets the default period on every partition for sessions generated or set from now on; '
  'existing sessions keep their expiry. Errors: 22023 NULL, non-positive or more than 3155760000. '
  'Through the proxy: 08006 when a partition is unreachable (it misses the change: call again).';

SELECT session_proxy.remote('session_stats',
  ARRAY['OUT live bigint', 'OUT expired bigint', 'OUT table_bytes bigint', 'OUT index_bytes bigint',
        'OUT default_period bigint', 'OUT max_value_bytes integer'], 'SETOF record', 'ALL');

CREATE OR REPLACE FUNCTION session.session_stats(OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
                                      OUT index_bytes bigint, OUT default_period bigint,
                                      OUT max_value_bytes integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  periods bigint;
BEGIN
  -- The settings should agree; if a partition missed a change, the smallest value is shown and a
  -- warning says so.
  SELECT sum(s.live)::bigint, sum(s.expired)::bigint, sum(s.table_bytes)::bigint, sum(s.index_bytes)::bigint,
         min(s.default_period), min(s.max_value_bytes),
         count(DISTINCT s.default_period) + count(DISTINCT s.max_value_bytes) - 1
    INTO live, expired, table_bytes, index_bytes, default_period, max_value_bytes, periods
    FROM session_proxy.session_stats() s;
  IF periods > 1 THEN
    RAISE WARNING 'session-postgresql: the partitions disagree on default_period or max_value_bytes; the smallest is shown'
      USING HINT = 'Call session_set_default_period again; session-pg scaleout status shows each partition.';
  END IF;
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_stats', ARRAY[]::text[], ARRAY['admin']);

COMMENT ON FUNCTION session.session_stats() IS
  'For the admin role: live and expired (not yet purged) sessions and table and index bytes, summed '
  'over the partitions, and the settings. Scans every table: not for hot paths. Through the proxy: '
  '08006 when a partition is unreachable.';

SELECT session_proxy.remote('partition_generate',
  ARRAY['key text', 'expiry bigint', 'value text', 'subject text', 'label text', 'lifetime bigint'], 'void',
  'session_proxy.key_hash(key)');

-- Calls with a key: one partition, the key's.
SELECT session_proxy.route('session_get', ARRAY['key text'], 'TABLE (value text, period bigint, version bigint)',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'No row: not found (unknown, cleared or expired). One row with NULL value: found, not set. '
  'Otherwise the value, the remaining whole seconds (>= 0) and the version, which every write of '
  'the value changes (pass it as if_version to a conditional write). A NULL key is not found.');

ALTER FUNCTION session.session_get(text) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_set',
  ARRAY['key text', 'value text', 'expiry bigint DEFAULT NULL', 'if_version bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Replaces the value of a live session and restarts its expiry (NULL = default period). Returns '
  'false and creates nothing when the key is unknown, cleared or expired. if_version: write only '
  'if the session is still at this version (from session_get; NULL = unconditional). Errors: '
  '22004 NULL value; 22023 expiry out of range; 22001 value too large; SP001 the version has '
  'moved (nothing written).');

ALTER FUNCTION session.session_set(text, text, bigint, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_touch', ARRAY['key text', 'expiry bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Restarts the expiry of a live session (NULL = default period) without writing its value. Returns '
  'false, creating nothing, when the key is unknown, cleared or expired. Errors: 22023 expiry out of range.');

ALTER FUNCTION session.session_touch(text, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_put',
  ARRAY['key text', 'value text', 'expiry bigint DEFAULT NULL', 'if_version bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Creates or replaces the session with this key (for frameworks that make their own ids, and only '
  'for an id just made). Returns false, storing nothing, when the key belongs to an expired session '
  'not yet purged or to a cleared one. if_version (NULL = unconditional): replace only a live '
  'session still at this version, never create one (false when there is none). Errors: 22004 NULL '
  'key or value; 22023 key not 32-1024 base64url characters, or expiry out of range; 22001 value '
  'too large; SP001 the version has moved (nothing written).');

ALTER FUNCTION session.session_put(text, text, bigint, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_merge',
  ARRAY['key text', 'set_fields jsonb', 'unset_fields text[] DEFAULT NULL', 'expiry bigint DEFAULT NULL',
        'if_version bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Changes top-level fields of the JSON object a live session holds, in one statement: removes the '
  'fields named in unset_fields, then sets those of set_fields (a JSON object; NULL = none), and '
  'restarts the expiry as session_set does (NULL = default period). Returns false and creates '
  'nothing when the key is unknown, cleared or expired. if_version: as in session_set. Errors: '
  '22023 set_fields not an object, expiry out of range; 22004 NULL in unset_fields; 22001 merged '
  'value too large; SP001 the version has moved; SP002 the session is not set or its value is not '
  'a JSON object. Nothing is written on an error.');

ALTER FUNCTION session.session_merge(text, jsonb, text[], bigint, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_clear', ARRAY['key text'], 'void',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Ends a session. From the moment it returns, no call (get, set, touch, put) finds or writes the '
  'key again. Idempotent: unknown, expired or NULL keys are a no-op.');

ALTER FUNCTION session.session_clear(text) SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                         subject text DEFAULT NULL, label text DEFAULT NULL,
                                         lifetime bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_key constant text := session_proxy.new_key();
BEGIN
  PERFORM session_proxy.partition_generate(new_key, expiry, value, subject, label, lifetime);
  RETURN new_key;
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_generate',
  ARRAY['expiry bigint', 'value text', 'subject text', 'label text', 'lifetime bigint'], ARRAY['client']);

COMMENT ON FUNCTION session.session_generate(bigint, text, text, text, bigint) IS
  'Creates a session and returns its key (the only time the key is visible). expiry: seconds from '
  'now, NULL = default period, <= 0 = born expired. value: NULL = not set. subject: whose session '
  '(NULL = anonymous), label: a name for it in lists (ignored without a subject). lifetime: seconds '
  'after which the session ends however often it is extended (NULL = the configured absolute '
  'lifetime, if any). Errors: 22023 expiry or lifetime out of range, empty subject; 22001 value '
  'larger than max_value_bytes, subject or label over 256 bytes. Through the proxy: 08006 when the '
  'key''s partition is unreachable.';

ALTER FUNCTION session.session_generate(bigint, text, text, text, bigint) SET plan_cache_mode = force_generic_plan;
