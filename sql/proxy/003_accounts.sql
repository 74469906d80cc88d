-- session-postgresql proxy 003: the public API of partition migrations 004-005 (batched writes,
-- subjects, lists, revocation, rotation, absolute lifetime), routed. Needs partition migration
-- 006_partition (partition_generate with subject, label and lifetime; partition_rotate;
-- partition_write_batch) on every partition.
--
-- A subject's sessions are spread over the partitions (each key decides its own), so list and
-- revoke visit every partition. A rotated session keeps its partition: the proxy picks the new
-- key among those that hash to the old key's partition, and that partition swaps them in one
-- transaction, under the same locks as on one database.
SET search_path = pg_catalog, pg_temp;

-- Calls with a key: one partition, the key's.
SELECT session_proxy.route('session_set_subject', ARRAY['key text', 'subject text', 'label text DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Says whose session this is (e.g. at login), with an optional label (NULL keeps the current one). '
  'subject NULL makes it anonymous again. Returns false, creating nothing, when the key is unknown, '
  'cleared or expired. Errors: 22023 empty subject; 22001 subject or label over 256 bytes.');
-- The absolute lifetime is the same on every partition (session_set_absolute_lifetime sets them all).
SELECT session_proxy.route('session_absolute_lifetime', ARRAY[]::text[], 'bigint', '0', ARRAY['client', 'admin'],
  'The absolute lifetime in seconds given to new sessions, NULL for none, as partition 0 has it. No errors.');

-- session_generate: one function with defaults, as on a partition since 005. The key is made here
-- and decides the partition, which checks everything else and stores it.
DROP FUNCTION session.session_generate(bigint, text);
DROP FUNCTION session_proxy.partition_generate(text, bigint, text);
SELECT session_proxy.remote('partition_generate',
  ARRAY['key text', 'expiry bigint', 'value text', 'subject text', 'label text', 'lifetime bigint'], 'void',
  'session_proxy.key_hash(key)');
CREATE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL,
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

-- session_rotate: the new key is made here, on the old key's partition, which does the rotation.
SELECT session_proxy.remote('partition_rotate', ARRAY['old_key text', 'new_key text'], 'text',
  'session_proxy.key_hash(old_key)');
CREATE FUNCTION session.session_rotate(key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN session_proxy.partition_rotate(key, session_proxy.new_key_like(key));
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_rotate', ARRAY['key text'], ARRAY['client']);
COMMENT ON FUNCTION session.session_rotate(text) IS
  'Gives a live session a new key (at login or a privilege change) and returns it: same value, '
  'expiry, subject, label and handle. From the moment it returns, the old key is not found and no '
  'write can revive it. NULL when the key is unknown, cleared or expired. No errors. Through the '
  'proxy: 08006 when the key''s partition is unreachable.';

-- Calls over a subject: its sessions are on any partition. Each partition answers for its own
-- under the subject's advisory lock (so a rotation there cannot escape a revoke); the proxy merges.
SELECT session_proxy.remote('session_list', ARRAY['subject text', 'max_sessions integer'],
  'TABLE (handle uuid, created_at timestamptz, written_at timestamptz, expires_at timestamptz, label text)', 'ALL');
CREATE FUNCTION session.session_list(subject text, max_sessions integer DEFAULT 100)
RETURNS TABLE (handle uuid, created_at timestamptz, written_at timestamptz, expires_at timestamptz, label text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Every partition checks max_sessions (22023) and returns at most that many: the newest overall
  -- are among them. LIMIT 0 would not call the partitions at all, so not even for a bad max_sessions.
  RETURN QUERY SELECT l.handle, l.created_at, l.written_at, l.expires_at, l.label
                 FROM session_proxy.session_list(subject, max_sessions) l
                ORDER BY l.created_at DESC
                LIMIT greatest(max_sessions, 1);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_list', ARRAY['subject text', 'max_sessions integer'], ARRAY['client']);
COMMENT ON FUNCTION session.session_list(text, integer) IS
  'The live sessions of a subject, newest first, at most max_sessions (default 100): a handle (not '
  'the key, and no way to use the session), when it was created and last written, when it expires, '
  'and its label. A NULL subject lists nothing. Errors: 22023 max_sessions outside 1..10000. '
  'Through the proxy: every partition is asked; 08006 when one is unreachable.';

SELECT session_proxy.remote('session_revoke', ARRAY['subject text', 'except_key text'], 'SETOF bigint', 'ALL');
CREATE FUNCTION session.session_revoke(subject text, except_key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT sum(n)::bigint FROM session_proxy.session_revoke(subject, except_key) n);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_revoke', ARRAY['subject text', 'except_key text'], ARRAY['client']);
COMMENT ON FUNCTION session.session_revoke(text, text) IS
  'Ends every live session of a subject (log out everywhere), except the one of except_key if given '
  '(this device), and returns how many it ended. No errors; a NULL subject ends nothing. Through '
  'the proxy: every partition revokes its own at once; 08006 when one is unreachable (the others '
  'have revoked theirs: call again once it is back).';

SELECT session_proxy.remote('session_revoke_handle', ARRAY['subject text', 'handle uuid'], 'SETOF boolean', 'ALL');
CREATE FUNCTION session.session_revoke_handle(subject text, handle uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT coalesce(bool_or(b), false) FROM session_proxy.session_revoke_handle(subject, handle) b);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_revoke_handle', ARRAY['subject text', 'handle uuid'], ARRAY['client']);
COMMENT ON FUNCTION session.session_revoke_handle(text, uuid) IS
  'Ends the session with this handle if it belongs to subject (one user cannot end another''s). '
  'Returns whether a live session was ended. No errors. Through the proxy: every partition is '
  'asked; 08006 when one is unreachable.';

-- As session_set_default_period: a partition that is down misses the change; call it again.
SELECT session_proxy.remote('session_set_absolute_lifetime', ARRAY['lifetime bigint'], 'SETOF void', 'ALL');
CREATE FUNCTION session.session_set_absolute_lifetime(lifetime bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM session_proxy.session_set_absolute_lifetime(lifetime);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_set_absolute_lifetime', ARRAY['lifetime bigint'], ARRAY['admin']);
COMMENT ON FUNCTION session.session_set_absolute_lifetime(bigint) IS
  'Admin role. Sets on every partition the lifetime of sessions created from now on, however often '
  'they are extended (NULL = none, the default). Existing sessions keep theirs. Errors: 22023 outside '
  '1..3155760000. Through the proxy: 08006 when a partition is unreachable (it misses the change: '
  'call again).';

-- Batched writes (group commit, what the TypeScript client sends when writes pile up). Keys of
-- generate elements are made here; the elements then go to their partitions, one call per
-- partition with that partition's elements, in partition order. Each partition applies its part
-- as session_write_batch does on one database (one transaction, one WAL flush). A partition that
-- fails (unreachable: 08006; or an error of its whole call, e.g. 55P03 when a lock waits too long)
-- fails only its own elements, with that SQLSTATE, and applied none of them; the other partitions'
-- elements keep their results. So a result is never an error for an element that was applied.
CREATE FUNCTION session_proxy.partition_write_batch(part integer, kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plproxy
AS $$
  CLUSTER 'session_partitions';
  RUN ON part;
  SELECT * FROM session.partition_write_batch(kinds, keys, vals, expiries);
$$;
REVOKE ALL ON FUNCTION session_proxy.partition_write_batch(integer, text[], text[], text[], bigint[]) FROM PUBLIC;

CREATE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := coalesce(cardinality(kinds), 0);
  mask constant integer := session_proxy.partition_count() - 1;
  sent text[] := '{}'::text[];
  parts integer[] := '{}'::integer[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  made text[] := '{}'::text[];
  mine integer[];
  p integer;
  i integer;
  r record;
  failed text;
  failure text;
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must have the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 1 .. n LOOP
    sent[i] := CASE WHEN kinds[i] = 'generate' THEN session_proxy.new_key() ELSE keys[i] END;
    parts[i] := session_proxy.key_hash(sent[i]) & mask;
  END LOOP;
  FOR p IN SELECT DISTINCT x FROM unnest(parts) x ORDER BY x LOOP
    mine := ARRAY(SELECT o FROM generate_series(1, n) o WHERE parts[o] = p ORDER BY o);
    BEGIN
      FOR r IN SELECT * FROM session_proxy.partition_write_batch(p,
                 ARRAY(SELECT kinds[o] FROM unnest(mine) o), ARRAY(SELECT sent[o] FROM unnest(mine) o),
                 ARRAY(SELECT vals[o] FROM unnest(mine) o), ARRAY(SELECT expiries[o] FROM unnest(mine) o)) LOOP
        i := mine[r.ord];
        states[i] := r.sqlstate;
        messages[i] := r.message;
        oks[i] := r.ok;
        made[i] := r.key;
      END LOOP;
    EXCEPTION WHEN OTHERS THEN
      failed := SQLSTATE;
      failure := SQLERRM;
      IF failed = 'XX000' THEN
        -- Unreachable: 08006 for this partition's elements; any other internal error ends the call.
        BEGIN
          PERFORM session_proxy.unreachable(failure);
          RAISE;
        EXCEPTION WHEN connection_failure THEN
          failed := '08006';
          failure := SQLERRM;
        END;
      END IF;
      FOREACH i IN ARRAY mine LOOP
        states[i] := failed;
        messages[i] := failure;
        oks[i] := NULL;
        made[i] := NULL;
      END LOOP;
    END;
  END LOOP;
  RETURN QUERY SELECT o::integer, states[o], messages[o], oks[o], made[o] FROM generate_series(1, n) o;
END
$$;
SELECT session_proxy.grant_public('session_write_batch', ARRAY['kinds text[]', 'keys text[]', 'vals text[]', 'expiries bigint[]'], ARRAY['client']);
COMMENT ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[]) IS
  'Applies many generate, set, touch, put and clear calls at once: row ord (1-based) has the result '
  'of element ord, as its single call would give it: ok (set, touch, put: whether it wrote; clear: '
  'whether it ended a session; generate: true) and key (generate: the new key), or sqlstate and '
  'message (nothing applied for that element; 55P03: its row was locked, send it again). Errors of '
  'the whole call: 22023 arrays of different lengths. Through the proxy: each partition applies its '
  'elements in a transaction of its own; when one fails (08006 unreachable, or an error of its '
  'whole call) its elements get that SQLSTATE and none of them was applied.';
