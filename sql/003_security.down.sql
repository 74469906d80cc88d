-- Reverts 003_security: the 001 definitions, grants and table shape. The roles are kept (they are
-- cluster-wide; other databases may use them). Cleared sessions' tombstones are deleted.
SET search_path = pg_catalog, pg_temp;

DROP FUNCTION session.session_touch(text, bigint);
DROP FUNCTION session.grant_roles();

CREATE FUNCTION session.write_expiry(value text, expiry bigint) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  IF octet_length(value) > cfg.max_value_bytes THEN
    RAISE EXCEPTION 'session value is % bytes, more than the limit of % bytes',
                    octet_length(value), cfg.max_value_bytes
      USING ERRCODE = 'string_data_right_truncation',
            HINT = 'Nothing was stored. The owner can raise session.config.max_value_bytes.';
  END IF;
  IF expiry IS NULL THEN
    RETURN now() + make_interval(secs => cfg.default_period);
  END IF;
  IF expiry NOT BETWEEN -3155760000 AND 3155760000 THEN
    RAISE EXCEPTION 'expiry must be between -3155760000 and 3155760000 seconds (100 years), got %', expiry
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- expiry <= 0: the session is born (or becomes) expired, as in ocaml-session.
  RETURN now() + make_interval(secs => expiry);
END
$$;

CREATE OR REPLACE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- Three version-4 UUIDs come from pg_strong_random: 366 random bits, 64 base64url characters.
  new_key text := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                   || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
BEGIN
  INSERT INTO session.sessions (digest, expires_at, value)
  VALUES (session.key_digest(new_key), session.write_expiry(session_generate.value, expiry),
          session_generate.value);
  RETURN new_key;
END
$$;
COMMENT ON FUNCTION session.session_generate(bigint, text) IS
  'Creates a session and returns its key (the only time the key is visible). expiry: seconds from '
  'now, NULL = default period, <= 0 = born expired. value: NULL = not set. '
  'Errors: 22023 expiry out of range; 22001 value larger than session.config.max_value_bytes.';

CREATE OR REPLACE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT s.value, floor(extract(epoch FROM s.expires_at - now()))::bigint
      FROM session.sessions s
     WHERE s.digest = session.key_digest(session_get.key)
       AND s.expires_at > now();
END
$$;
COMMENT ON FUNCTION session.session_get(text) IS
  'No row: not found (unknown, cleared or expired). One row with NULL value: found, not set. '
  'Otherwise the value and the remaining whole seconds (>= 0). A NULL key is not found. No errors.';

CREATE OR REPLACE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_expiry timestamptz;
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION 'session value must not be NULL'
      USING ERRCODE = 'null_value_not_allowed', HINT = 'To end a session, call session_clear.';
  END IF;
  -- Validate before looking the key up, so bad input fails the same way for every key.
  new_expiry := session.write_expiry(value, expiry);
  UPDATE session.sessions s
     SET value = session_set.value, expires_at = new_expiry
   WHERE s.digest = session.key_digest(session_set.key)
     AND s.expires_at > now();
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_set(text, text, bigint) IS
  'Replaces the value of a live session and restarts its expiry (NULL = default period). Returns '
  'false and creates nothing when the key is unknown, cleared or expired. Errors: 22004 NULL value; '
  '22023 expiry out of range; 22001 value too large (the stored value is kept).';

CREATE OR REPLACE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_expiry timestamptz;
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
  new_expiry := session.write_expiry(value, expiry);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT: it inserts, or updates the row if it is live, or (expired) does nothing.
  INSERT INTO session.sessions AS s (digest, expires_at, value)
  VALUES (session.key_digest(session_put.key), new_expiry, session_put.value)
  ON CONFLICT (digest) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
   WHERE s.expires_at > now();
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_put(text, text, bigint) IS
  'Creates or replaces the session with this key (for frameworks that make their own ids). Returns '
  'false, storing nothing, when the key belongs to an expired session not yet purged. Errors: 22004 '
  'NULL key or value; 22023 key not 32-1024 base64url characters, or expiry out of range; 22001.';

CREATE OR REPLACE FUNCTION session.session_count() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT count(*) FROM session.sessions s WHERE s.expires_at > now());
END
$$;
COMMENT ON FUNCTION session.session_count() IS 'The number of live (unexpired) sessions. No errors.';

CREATE OR REPLACE FUNCTION session.session_clear(key text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM session.sessions s WHERE s.digest = session.key_digest(session_clear.key);
END
$$;
COMMENT ON FUNCTION session.session_clear(text) IS
  'Ends a session. Idempotent: unknown, expired or NULL keys are a no-op. No errors.';

CREATE OR REPLACE FUNCTION session.session_purge(batch_size integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  step    constant bigint := 128::bigint;
  pages   bigint;
  at      bigint;
  swept   bigint := 0::bigint;
  deleted bigint := 0::bigint;
  n       bigint;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be a positive integer, got %', coalesce(batch_size::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT p.next_block INTO STRICT at FROM session.purge_state p FOR UPDATE;
  pages := pg_relation_size('session.sessions'::regclass) / current_setting('block_size')::bigint;
  WHILE swept < pages AND deleted < batch_size LOOP
    IF at >= pages THEN
      at := 0;
    END IF;
    DELETE FROM session.sessions s
     WHERE s.ctid >= format('(%s,0)', at)::tid
       AND s.ctid < format('(%s,0)', at + step)::tid
       AND s.expires_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    deleted := deleted + n;
    at := at + step;
    swept := swept + step;
  END LOOP;
  UPDATE session.purge_state SET next_block = at;
  RETURN deleted;
END
$$;
COMMENT ON FUNCTION session.session_purge(integer) IS
  'Deletes expired sessions, at most about batch_size per call (one short transaction), and '
  'returns how many it deleted; call until it returns 0 to purge everything. Concurrent calls '
  'queue. Errors: 22023 batch_size NULL or < 1.';

CREATE OR REPLACE FUNCTION session.session_stats(OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
                                      OUT index_bytes bigint, OUT default_period bigint,
                                      OUT max_value_bytes integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT count(*) FILTER (WHERE s.expires_at > now()), count(*) FILTER (WHERE s.expires_at <= now())
    INTO live, expired FROM session.sessions s;
  table_bytes := pg_table_size('session.sessions'::regclass);
  index_bytes := pg_indexes_size('session.sessions'::regclass);
  SELECT c.default_period, c.max_value_bytes INTO default_period, max_value_bytes FROM session.config c;
END
$$;
COMMENT ON FUNCTION session.session_stats() IS
  'Owner only: live and expired (not yet purged) sessions, table and index bytes, and the settings.';

COMMENT ON FUNCTION session.session_set_default_period(bigint) IS
  'Sets the default period for sessions generated or set from now on; existing sessions keep their '
  'expiry. Errors: 22023 NULL, non-positive or more than 3155760000.';

DROP FUNCTION session.expiry_at(text, bigint, timestamptz);
REVOKE ALL ON FUNCTION session.write_expiry(text, bigint) FROM PUBLIC;

DELETE FROM session.sessions s WHERE s.cleared;
ALTER TABLE session.sessions DROP COLUMN cleared;

DO $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  IF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) cfg.admin_role) THEN
    EXECUTE pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM %1$I; REVOKE ALL ON SCHEMA session FROM %1$I;', cfg.admin_role);
  END IF;
  IF cfg.client_role OPERATOR(pg_catalog.<>) 'session_client'
     AND EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) cfg.client_role) THEN
    EXECUTE pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM %1$I; REVOKE ALL ON SCHEMA session FROM %1$I;', cfg.client_role);
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'session_client') THEN
    GRANT USAGE ON SCHEMA session TO session_client;
    GRANT EXECUTE ON FUNCTION session.session_generate(bigint, text), session.session_get(text),
      session.session_set(text, text, bigint), session.session_clear(text),
      session.session_default_period(), session.session_set_default_period(bigint),
      session.session_purge(integer), session.session_put(text, text, bigint), session.session_count()
      TO session_client;
  END IF;
END
$$;

ALTER TABLE session.config DROP COLUMN client_role, DROP COLUMN admin_role;
