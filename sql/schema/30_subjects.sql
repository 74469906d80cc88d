-- Sessions that belong to someone: a subject (the application's user id) and a label, listed,
-- revoked all at once or by handle, and keys rotated at login or a privilege change.

-- Private helper: the rules for subjects and labels, in one place.
CREATE OR REPLACE FUNCTION session.check_subject(subject text, label text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF subject = '' THEN
    RAISE EXCEPTION 'subject must not be empty (NULL means anonymous)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF octet_length(subject) > 256 THEN
    RAISE EXCEPTION 'subject is % bytes, more than the limit of 256', octet_length(subject)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF octet_length(label) > 256 THEN
    RAISE EXCEPTION 'label is % bytes, more than the limit of 256', octet_length(label)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
END
$$;
COMMENT ON FUNCTION session.check_subject(text, text) IS
  'Private. Errors: 22023 empty subject; 22001 subject or label over 256 bytes.';

-- Private helper: serialises revoking a subject's sessions with rotating one of them. Without it,
-- a rotation committed while the revoke ran would leave its new row outside the revoke's snapshot:
-- a session of the user would outlive "log out everywhere". Revoke takes it exclusive, rotate shared.
CREATE OR REPLACE FUNCTION session.lock_subject(subject text, exclusive boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF subject IS NULL THEN
    RETURN;
  END IF;
  -- 1398096458: 'SUBJ' in ASCII, the class of these advisory locks.
  IF exclusive THEN
    PERFORM pg_advisory_xact_lock(1398096458, hashtext(subject));
  ELSE
    PERFORM pg_advisory_xact_lock_shared(1398096458, hashtext(subject));
  END IF;
END
$$;
COMMENT ON FUNCTION session.lock_subject(text, boolean) IS
  'Private. Takes the transaction-level advisory lock of a subject: exclusive to revoke, shared to rotate.';

CREATE OR REPLACE FUNCTION session.session_set_subject(key text, subject text, label text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  PERFORM session.check_subject(subject, label);
  UPDATE session.sessions s
     SET subject = session_set_subject.subject,
         label = CASE WHEN session_set_subject.subject IS NULL THEN NULL
                      ELSE coalesce(session_set_subject.label, s.label) END,
         handle = CASE WHEN session_set_subject.subject IS NULL THEN NULL
                       ELSE coalesce(s.handle, gen_random_uuid()) END
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_set_subject(text, text, text) IS
  'Says whose session this is (e.g. at login), with an optional label (NULL keeps the current one). '
  'subject NULL makes it anonymous again. Returns false, creating nothing, when the key is unknown, '
  'cleared or expired. Errors: 22023 empty subject; 22001 subject or label over 256 bytes.';

CREATE OR REPLACE FUNCTION session.session_list(subject text, max_sessions integer DEFAULT 100)
RETURNS TABLE (handle uuid, created_at timestamptz, written_at timestamptz, expires_at timestamptz, label text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t constant timestamptz := clock_timestamp();
BEGIN
  IF max_sessions IS NULL OR max_sessions NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'max_sessions must be between 1 and 10000, got %', coalesce(max_sessions::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
    SELECT s.handle, s.created_at, s.written_at, s.expires_at, s.label
      FROM session.sessions s
     WHERE s.subject = session_list.subject AND s.expires_at > t AND NOT s.cleared
     ORDER BY s.created_at DESC
     LIMIT max_sessions;
END
$$;
COMMENT ON FUNCTION session.session_list(text, integer) IS
  'The live sessions of a subject, newest first, at most max_sessions (default 100): a handle (not '
  'the key, and no way to use the session), when it was created and last written, when it expires, '
  'and its label. A NULL subject lists nothing. Errors: 22023 max_sessions outside 1..10000.';

-- Revocation leaves tombstones, as session_clear does: no request in flight can revive them.
CREATE OR REPLACE FUNCTION session.session_revoke(subject text, except_key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  keep constant bytea := session.key_digest(except_key);
  t timestamptz;
  n bigint;
BEGIN
  PERFORM session.lock_subject(subject, true);
  t := clock_timestamp();
  UPDATE session.sessions s
     SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
   WHERE s.subject = session_revoke.subject AND NOT s.cleared AND s.expires_at > t
     AND s.digest IS DISTINCT FROM keep;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION session.session_revoke(text, text) IS
  'Ends every live session of a subject (log out everywhere), except the one of except_key if given '
  '(this device), and returns how many it ended. No errors; a NULL subject ends nothing.';

CREATE OR REPLACE FUNCTION session.session_revoke_handle(subject text, handle uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t constant timestamptz := clock_timestamp();
BEGIN
  UPDATE session.sessions s
     SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
   WHERE s.subject = session_revoke_handle.subject AND s.handle = session_revoke_handle.handle
     AND NOT s.cleared AND s.expires_at > t;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_revoke_handle(text, uuid) IS
  'Ends the session with this handle if it belongs to subject (one user cannot end another''s). '
  'Returns whether a live session was ended. No errors.';

CREATE OR REPLACE FUNCTION session.session_rotate(key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_key constant text := session.new_key();
  nd constant bytea := session.key_digest(new_key);
  old session.sessions;
  locked text;
BEGIN
  SELECT s.subject INTO locked FROM session.sessions s WHERE s.digest = d;
  PERFORM session.lock_subject(locked, false);
  -- The row lock orders this against every set, touch, put and clear of the old key.
  SELECT * INTO old FROM session.sessions s WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF old.subject IS DISTINCT FROM locked THEN
    PERFORM session.lock_subject(old.subject, false);
  END IF;
  INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at, subject, label, handle)
  VALUES (nd, old.expires_at, old.value, old.created_at, t, old.ends_at, old.subject, old.label, old.handle);
  UPDATE session.sessions s
     SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
   WHERE s.digest = d;
  RETURN new_key;
END
$$;
COMMENT ON FUNCTION session.session_rotate(text) IS
  'Gives a live session a new key (at login or a privilege change) and returns it: same value, '
  'expiry, subject, label and handle. From the moment it returns, the old key is not found and no '
  'write can revive it. NULL when the key is unknown, cleared or expired. No errors.';
