-- session-postgresql 005: sessions that belong to someone.
--
-- A session may have a subject (the application's user id; NULL = anonymous) and a label (e.g.
-- "Firefox on Linux"). The application lists a subject's live sessions, revokes them all (log out
-- everywhere, optionally but this device) or one by its handle, and rotates a session's key at
-- login or privilege change. An absolute lifetime caps a session however often it is extended.

SET search_path = pg_catalog, pg_temp;

-- None of these changes on session_set or session_touch except written_at (in no index), so their
-- updates stay HOT. The subject index is partial: anonymous sessions cost it nothing.
ALTER TABLE session.sessions
  ADD COLUMN created_at timestamptz,
  ADD COLUMN written_at timestamptz,
  ADD COLUMN ends_at    timestamptz,
  ADD COLUMN subject    text,
  ADD COLUMN label      text,
  ADD COLUMN handle     uuid;
COMMENT ON COLUMN session.sessions.ends_at IS
  'Private. The absolute end: expires_at never passes it (NULL = no cap).';
COMMENT ON COLUMN session.sessions.handle IS
  'Private. A random, non-secret name for the session in lists; set with the subject.';
CREATE INDEX sessions_subject ON session.sessions (subject, created_at DESC) WHERE subject IS NOT NULL;

-- NULL: no absolute lifetime unless a session is generated with one.
ALTER TABLE session.config
  ADD COLUMN absolute_lifetime bigint CHECK (absolute_lifetime BETWEEN 1 AND 3155760000);

-- Private helper: the rules for subjects and labels, in one place.
CREATE FUNCTION session.check_subject(subject text, label text) RETURNS void
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
REVOKE ALL ON FUNCTION session.check_subject(text, text) FROM PUBLIC;

-- Private helper: when a session created at `at` ends at the latest. `lifetime` NULL: the
-- configured absolute lifetime (NULL: none).
CREATE FUNCTION session.ends_at(lifetime bigint, at timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  seconds bigint := lifetime;
BEGIN
  IF seconds IS NULL THEN
    SELECT c.absolute_lifetime INTO seconds FROM session.config c;
  ELSIF seconds NOT BETWEEN 1 AND 3155760000 THEN
    RAISE EXCEPTION 'lifetime must be between 1 and 3155760000 seconds, got %', seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN at + make_interval(secs => seconds);
END
$$;
REVOKE ALL ON FUNCTION session.ends_at(bigint, timestamptz) FROM PUBLIC;

-- One function with defaults rather than an overload: session_generate(), (expiry), (expiry,
-- value) and named arguments keep working as before.
DROP FUNCTION session.session_generate(bigint, text);
CREATE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                         subject text DEFAULT NULL, label text DEFAULT NULL,
                                         lifetime bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- Three version-4 UUIDs come from pg_strong_random: 366 random bits, 64 base64url characters.
  new_key constant text := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                            || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
  d constant bytea := session.key_digest(new_key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
  -- The value and expiry first, as before this migration; then what is new.
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

CREATE OR REPLACE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL)
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
  UPDATE session.sessions s
     SET value = session_set.value, expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

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

CREATE OR REPLACE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL)
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
  IF octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$' THEN
    RAISE EXCEPTION 'session_put only accepts keys of 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Generate ids with at least 24 random bytes, or use session_generate.';
  END IF;
  new_expiry := session.expiry_at(value, expiry, t);
  cap := session.ends_at(NULL, t);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT. It never writes over an expired session (not yet purged) or a cleared
  -- one (its tombstone): a request still in flight when the user logged out cannot bring it back.
  INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
  VALUES (d, least(new_expiry, cap), session_put.value, t, t, cap)
  ON CONFLICT (digest) DO UPDATE
    SET value = excluded.value, expires_at = least(excluded.expires_at, s.ends_at), written_at = t
  WHERE s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

CREATE FUNCTION session.session_set_subject(key text, subject text, label text DEFAULT NULL) RETURNS boolean
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

CREATE FUNCTION session.session_list(subject text, max_sessions integer DEFAULT 100)
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

-- Private helper: serialises revoking a subject's sessions with rotating one of them. Without it,
-- a rotation committed while the revoke ran would leave its new row outside the revoke's snapshot:
-- a session of the user would outlive "log out everywhere". Revoke takes it exclusive, rotate shared.
CREATE FUNCTION session.lock_subject(subject text, exclusive boolean) RETURNS void
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
REVOKE ALL ON FUNCTION session.lock_subject(text, boolean) FROM PUBLIC;

-- Revocation leaves tombstones, as session_clear does: no request in flight can revive them.
CREATE FUNCTION session.session_revoke(subject text, except_key text DEFAULT NULL) RETURNS bigint
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

CREATE FUNCTION session.session_revoke_handle(subject text, handle uuid) RETURNS boolean
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

CREATE FUNCTION session.session_rotate(key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_key constant text := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                            || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
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

CREATE FUNCTION session.session_set_absolute_lifetime(lifetime bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF lifetime IS NOT NULL AND lifetime NOT BETWEEN 1 AND 3155760000 THEN
    RAISE EXCEPTION 'absolute lifetime must be NULL or between 1 and 3155760000 seconds, got %', lifetime
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET absolute_lifetime = lifetime;
END
$$;
COMMENT ON FUNCTION session.session_set_absolute_lifetime(bigint) IS
  'Admin role. The lifetime of sessions created from now on, however often they are extended '
  '(NULL = none, the default). Existing sessions keep theirs. Errors: 22023 outside 1..3155760000.';

CREATE FUNCTION session.session_absolute_lifetime() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.absolute_lifetime FROM session.config c);
END
$$;
COMMENT ON FUNCTION session.session_absolute_lifetime() IS
  'The absolute lifetime in seconds given to new sessions, NULL for none. No errors.';

REVOKE ALL ON FUNCTION session.session_generate(bigint, text, text, text, bigint), session.session_set_subject(text, text, text),
  session.session_list(text, integer), session.session_revoke(text, text), session.session_revoke_handle(text, uuid),
  session.session_rotate(text), session.session_set_absolute_lifetime(bigint), session.session_absolute_lifetime() FROM PUBLIC;

-- Batched writes keep the single calls' rules: created and written times, the absolute lifetime.
CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := coalesce(cardinality(kinds), 0);
  max_bytes constant integer := (SELECT c.max_value_bytes FROM session.config c);
  period constant bigint := (SELECT c.default_period FROM session.config c);
  lifetime constant bigint := (SELECT c.absolute_lifetime FROM session.config c);
  cap timestamptz;
  digests bytea[] := '{}'::bytea[];
  new_keys text[] := '{}'::text[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  busy bytea;
  i integer;
  d bytea;
  t timestamptz;
  new_expiry timestamptz;
  chk record;
  live boolean;
  was_cleared boolean;
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must have the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;
  -- Keys are hashed into variables first: no statement below ever holds a key.
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                      || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
  END LOOP;

  FOR i IN SELECT u.o::integer FROM unnest(digests) WITH ORDINALITY u(d, o) ORDER BY u.d, u.o LOOP
    d := digests[i];
    t := clock_timestamp();
    chk := session.write_check(kinds[i], keys[i], vals[i], expiries[i], max_bytes);
    IF chk.state IS NOT NULL THEN
      states[i] := chk.state;
      messages[i] := chk.message;
      CONTINUE;
    END IF;
    IF d = busy THEN
      states[i] := '55P03';
      messages[i] := 'an earlier element of this key could not lock its row; not applied';
      CONTINUE;
    END IF;
    new_expiry := t + make_interval(secs => coalesce(expiries[i], period));
    -- New rows (generate, and put of a new id) end at the configured absolute lifetime, if any.
    cap := t + make_interval(secs => lifetime);
    IF kinds[i] = 'generate' THEN
      INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at)
      VALUES (d, least(new_expiry, cap), vals[i], t, t, cap);
      oks[i] := true;
      CONTINUE;
    END IF;
    SELECT s.expires_at > t AND NOT s.cleared, s.cleared INTO live, was_cleared
      FROM session.sessions s WHERE s.digest = d FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT FROM session.sessions s WHERE s.digest = d) THEN
      busy := d;
      states[i] := '55P03';
      messages[i] := 'the session is locked by another transaction; not applied';
      CONTINUE;
    END IF;
    IF kinds[i] = 'set' AND live THEN
      UPDATE session.sessions s SET value = vals[i], expires_at = least(new_expiry, s.ends_at), written_at = t WHERE s.digest = d;
    ELSIF kinds[i] = 'touch' AND live THEN
      UPDATE session.sessions s SET expires_at = least(new_expiry, s.ends_at), written_at = t WHERE s.digest = d;
    ELSIF kinds[i] = 'clear' AND NOT was_cleared THEN
      UPDATE session.sessions s
         SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
       WHERE s.digest = d;
    ELSIF kinds[i] = 'put' AND live IS NULL THEN
      -- No row: as in session_put, one statement, in case another transaction inserts it now.
      INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
      VALUES (d, least(new_expiry, cap), vals[i], t, t, cap)
      ON CONFLICT (digest) DO UPDATE
        SET value = excluded.value, expires_at = least(excluded.expires_at, s.ends_at), written_at = t
      WHERE s.expires_at > t AND NOT s.cleared;
      live := FOUND;
    ELSIF kinds[i] = 'put' AND live THEN
      UPDATE session.sessions s SET value = vals[i], expires_at = least(new_expiry, s.ends_at), written_at = t WHERE s.digest = d;
    END IF;
    oks[i] := CASE WHEN kinds[i] = 'clear' THEN was_cleared IS NOT NULL AND NOT was_cleared ELSE coalesce(live, false) END;
  END LOOP;

  PERFORM set_config('lock_timeout', caller_lock_timeout, true);
  RETURN QUERY SELECT o::integer, states[o], messages[o], oks[o], CASE WHEN states[o] IS NULL THEN new_keys[o] END
                 FROM generate_series(1, n) o;
END
$$;

-- Apps list and revoke from their own route handlers: all of it is the client role's, but the
-- absolute lifetime of every future session, which is the admin role's.
CREATE OR REPLACE FUNCTION session.grant_roles() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  EXECUTE format('GRANT USAGE ON SCHEMA session TO %1$I, %2$I', cfg.client_role, cfg.admin_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_generate(bigint, text, text, text, bigint), session.session_get(text), '
    'session.session_set(text, text, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint), session.session_clear(text), '
    'session.session_count(), session.session_default_period(), '
    'session.session_set_subject(text, text, text), session.session_list(text, integer), '
    'session.session_revoke(text, text), session.session_revoke_handle(text, uuid), '
    'session.session_rotate(text), session.session_absolute_lifetime(), '
    'session.session_write_batch(text[], text[], text[], bigint[]) TO %I', cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count(), '
    'session.session_set_absolute_lifetime(bigint), session.session_absolute_lifetime() TO %I', cfg.admin_role);
END
$$;

DO $$
DECLARE
  cfg session.config;
  missing text := '';
  role_name name;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  FOREACH role_name IN ARRAY ARRAY[cfg.client_role, cfg.admin_role] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
      missing := missing OPERATOR(pg_catalog.||) pg_catalog.format('CREATE ROLE %I NOLOGIN; ', role_name);
    END IF;
  END LOOP;
  IF missing OPERATOR(pg_catalog.=) '' THEN
    PERFORM session.grant_roles();
  ELSE
    RAISE WARNING 'session-postgresql: roles are missing; %', 'the new functions are not granted until a DBA creates them'
      USING HINT = 'A DBA must run: ' OPERATOR(pg_catalog.||) missing OPERATOR(pg_catalog.||) 'SELECT session.grant_roles(); '
                   OPERATOR(pg_catalog.||) pg_catalog.format('Then GRANT %I TO <your application role>; GRANT %I TO <your admin role>;', cfg.client_role, cfg.admin_role);
  END IF;
END
$$;
