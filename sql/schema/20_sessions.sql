-- The session calls: generate, get, set, put, merge, touch, clear, count. Granted to the client role
-- (count to the admin role too) in 90_grants.sql.

CREATE OR REPLACE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                         subject text DEFAULT NULL, label text DEFAULT NULL,
                                         lifetime bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_key constant text := session.new_key();
  d constant bytea := session.key_digest(new_key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
  -- The value and expiry first, then subject and label, then the lifetime: errors come in that order.
  new_expiry := session.expiry_at(session_generate.value, expiry, t);
  IF subject IS NOT NULL OR label IS NOT NULL THEN
    PERFORM session.check_subject(subject, label);
  END IF;
  cap := session.ends_at(lifetime, t);
  INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at, subject, label, handle)
  VALUES (d, least(new_expiry, cap), session_generate.value, t, t, cap,
          subject, CASE WHEN subject IS NOT NULL THEN label END,
          CASE WHEN subject IS NOT NULL THEN gen_random_uuid() END);
  RETURN new_key;
END
$$;
COMMENT ON FUNCTION session.session_generate(bigint, text, text, text, bigint) IS
  'Creates a session and returns its key (the only time the key is visible). expiry: seconds from '
  'now, NULL = default period, <= 0 = born expired. value: NULL = not set. subject: whose session '
  '(NULL = anonymous), label: a name for it in lists (ignored without a subject). lifetime: seconds '
  'after which the session ends however often it is extended (NULL = the configured absolute '
  'lifetime, if any). Errors: 22023 expiry or lifetime out of range, empty subject; 22001 value '
  'larger than session.config.max_value_bytes, subject or label over 256 bytes.';

CREATE OR REPLACE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint, version bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN QUERY
    SELECT s.value, floor(extract(epoch FROM s.expires_at - t))::bigint, s.version
      FROM session.sessions s
     WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
END
$$;
COMMENT ON FUNCTION session.session_get(text) IS
  'No row: not found (unknown, cleared or expired). One row with NULL value: found, not set. '
  'Otherwise the value, the remaining whole seconds (>= 0) and the version, which every write of '
  'the value changes (pass it as if_version to a conditional write). A NULL key is not found. No errors.';

-- One function with defaults rather than overloads: session_set(key, value[, expiry[, if_version]]).
CREATE OR REPLACE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL, if_version bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION 'session value must not be NULL'
      USING ERRCODE = 'null_value_not_allowed', HINT = 'To end a session, call session_clear.';
  END IF;
  -- Validate before looking the key up, so bad input fails the same way for every key.
  new_expiry := session.expiry_at(value, expiry, t);
  -- The version is checked on the row this UPDATE locked: the CASE tests it before the value is taken.
  UPDATE session.sessions s
     SET value = CASE WHEN session.check_version(s.version, if_version) THEN session_set.value END,
         version = s.version + 1, expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_set(text, text, bigint, bigint) IS
  'Replaces the value of a live session and restarts its expiry (NULL = default period). Returns '
  'false and creates nothing when the key is unknown, cleared or expired. if_version: write only '
  'if the session is still at this version (from session_get; NULL = unconditional). Errors: '
  '22004 NULL value; 22023 expiry out of range; 22001 value too large; SP001 the version has '
  'moved (nothing written).';

-- For frameworks that generate session ids themselves (express-session, @fastify/session) and
-- expect "save" to create the session. Unlike session_set it may create a session for the given
-- key, so it only accepts keys that look like the framework's own random ids (>= 32 base64url
-- characters: 192 bits for express-session's 24 random bytes), and it never revives a key whose
-- session has expired but is not yet purged. Frameworks never adopt an unknown id sent by a client:
-- they generate a fresh one, which is what makes this safe (see the README).
CREATE OR REPLACE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL, if_version bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
  IF key IS NULL OR value IS NULL THEN
    RAISE EXCEPTION 'session_put needs a key and a value'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF NOT session.well_formed_key(key) THEN
    RAISE EXCEPTION 'session_put only accepts keys of 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Generate ids with at least 24 random bytes, or use session_generate.';
  END IF;
  new_expiry := session.expiry_at(value, expiry, t);
  IF if_version IS NOT NULL THEN
    -- A version was read from a live session: only that session may be written, never a new one.
    UPDATE session.sessions s
       SET value = CASE WHEN session.check_version(s.version, if_version) THEN session_put.value END,
           version = s.version + 1, expires_at = least(new_expiry, s.ends_at), written_at = t
     WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
    RETURN FOUND;
  END IF;
  cap := session.ends_at(NULL, t);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT. It never writes over an expired session (not yet purged) or a cleared
  -- one (its tombstone): a request still in flight when the user logged out cannot bring it back.
  INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
  VALUES (d, least(new_expiry, cap), session_put.value, t, t, cap)
  ON CONFLICT (digest) DO UPDATE
    SET value = excluded.value, version = s.version + 1, expires_at = least(excluded.expires_at, s.ends_at), written_at = t
  WHERE s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_put(text, text, bigint, bigint) IS
  'Creates or replaces the session with this key (for frameworks that make their own ids, and only '
  'for an id just made). Returns false, storing nothing, when the key belongs to an expired session '
  'not yet purged or to a cleared one. if_version (NULL = unconditional): replace only a live '
  'session still at this version, never create one (false when there is no live session). Errors: '
  '22004 NULL key or value; 22023 key not 32-1024 base64url characters, or expiry out of range; '
  '22001 value too large; SP001 the version has moved (nothing written).';

CREATE OR REPLACE FUNCTION session.session_merge(key text, set_fields jsonb, unset_fields text[] DEFAULT NULL,
                                      expiry bigint DEFAULT NULL, if_version bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  problem constant text := session.merge_fields_problem(set_fields, unset_fields);
  new_expiry timestamptz;
  max_bytes integer;
BEGIN
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION '%', substr(problem, 7) USING ERRCODE = left(problem, 5);
  END IF;
  new_expiry := session.expiry_at(NULL, expiry, t);
  SELECT c.max_value_bytes INTO STRICT max_bytes FROM session.config c;
  -- One UPDATE: the new value is made from the row it locked, so merges of one session in
  -- parallel apply one after the other, each to what the previous one left.
  UPDATE session.sessions s
     SET value = CASE WHEN session.check_version(s.version, if_version)
                      THEN session.merged_value(s.value, set_fields, unset_fields, max_bytes) END,
         version = s.version + 1, expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_merge(text, jsonb, text[], bigint, bigint) IS
  'Changes top-level fields of the JSON object a live session holds, in one statement: removes the '
  'fields named in unset_fields, then sets those of set_fields (a JSON object; NULL = none), and '
  'restarts the expiry as session_set does (NULL = default period). The value is stored as jsonb '
  'prints it. Returns false and creates nothing when the key is unknown, cleared or expired. '
  'if_version: as in session_set. Errors: 22023 set_fields not an object, expiry out of range; '
  '22004 NULL in unset_fields; 22001 merged value too large; SP001 the version has moved; SP002 '
  'the session is not set or its value is not a JSON object. Nothing is written on an error.';

CREATE OR REPLACE FUNCTION session.session_touch(key text, expiry bigint DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry constant timestamptz := session.expiry_at(NULL, expiry, t);
BEGIN
  UPDATE session.sessions s SET expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_touch(text, bigint) IS
  'Restarts the expiry of a live session (NULL = default period) without writing its value: what '
  'a request that changed nothing does. Returns false, creating nothing, when the key is unknown, '
  'cleared or expired. Errors: 22023 expiry out of range.';

-- The tombstone keeps the row's expiry, at most a day: long enough for any request that loaded
-- the session before the logout to finish, short enough not to hoard rows.
CREATE OR REPLACE FUNCTION session.session_clear(key text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  UPDATE session.sessions s
     SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
   WHERE s.digest = d AND NOT s.cleared;
END
$$;
COMMENT ON FUNCTION session.session_clear(text) IS
  'Ends a session. From the moment it returns, no call (get, set, touch, put) finds or writes the '
  'key again. Idempotent: unknown, expired or NULL keys are a no-op. No errors.';

-- Live sessions, for express-session's optional length(). Counting reveals no key or value.
CREATE OR REPLACE FUNCTION session.session_count() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN (SELECT count(*) FROM session.sessions s WHERE s.expires_at > t AND NOT s.cleared);
END
$$;
COMMENT ON FUNCTION session.session_count() IS 'The number of live (unexpired) sessions. No errors.';
