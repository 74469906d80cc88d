-- The absolute lifetime is the same on every partition (session_set_absolute_lifetime sets them all).
SELECT session_proxy.route('session_absolute_lifetime', ARRAY[]::text[], 'bigint', '0', ARRAY['client', 'admin'],
  'The absolute lifetime in seconds given to new sessions, NULL for none, as partition 0 has it. No errors.');

-- session_rotate: the new key is made here, on the old key's partition, which does the rotation.
SELECT session_proxy.remote('partition_rotate', ARRAY['old_key text', 'new_key text'], 'text',
  'session_proxy.key_hash(old_key)');

-- Calls over a subject: its sessions are on any partition. Each partition answers for its own
-- under the subject's advisory lock (so a rotation there cannot escape a revoke); the proxy merges.
SELECT session_proxy.remote('session_list', ARRAY['subject text', 'max_sessions integer'],
  'TABLE (handle uuid, created_at timestamptz, written_at timestamptz, expires_at timestamptz, label text)', 'ALL');

CREATE OR REPLACE FUNCTION session.session_list(subject text, max_sessions integer DEFAULT 100)
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

SELECT session_proxy.remote('session_revoke_handle', ARRAY['subject text', 'handle uuid'], 'SETOF boolean', 'ALL');

CREATE OR REPLACE FUNCTION session.session_revoke_handle(subject text, handle uuid) RETURNS boolean
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

CREATE OR REPLACE FUNCTION session.session_set_absolute_lifetime(lifetime bigint) RETURNS void
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

-- Calls with a key: one partition, the key's.
SELECT session_proxy.route('session_set_subject', ARRAY['key text', 'subject text', 'label text DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Says whose session this is (e.g. at login), with an optional label (NULL keeps the current one). '
  'subject NULL makes it anonymous again. Returns false, creating nothing, when the key is unknown, '
  'cleared or expired. Errors: 22023 empty subject; 22001 subject or label over 256 bytes.');

ALTER FUNCTION session.session_set_subject(text, text, text) SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION session.session_rotate(key text) RETURNS text
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

ALTER FUNCTION session.session_rotate(text) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.remote('session_revoke', ARRAY['subject text', 'except_key text'], 'SETOF bigint', 'ALL');

CREATE OR REPLACE FUNCTION session.session_revoke(subject text, except_key text DEFAULT NULL) RETURNS bigint
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

ALTER FUNCTION session.session_revoke(text, text) SET plan_cache_mode = force_generic_plan;
