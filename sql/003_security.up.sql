-- session-postgresql 003: security, round two.
--
-- - Cleared sessions leave a tombstone, so that no write racing a logout can make the key live
--   again: session_put, session_set and session_touch never write to a cleared key.
-- - session_touch moves only the expiry: a request that changed nothing never rewrites the value.
-- - Every function hashes the key once into a variable, so plans (auto_explain) and nested
--   statements only ever hold the digest, never the key.
-- - Liveness is decided by clock_timestamp(), not the transaction's start: a long transaction
--   cannot revive a session that the clock has already expired.
-- - A purge that finds another one in progress returns 0 at once instead of waiting for its lock.
-- - Least privilege: the client role keeps the data calls; an admin role gets the default period,
--   purge and stats. Both names are chosen at install (one pair per database).

-- Whatever the runner does: no name below may resolve to another role's object.
SET search_path = pg_catalog, pg_temp;

-- A cleared session stays as a tombstone (value NULL) until its expiry, at most a day; the purge
-- removes it like any expired row. Adding a NOT NULL column with a constant default rewrites
-- nothing (PostgreSQL 11+).
ALTER TABLE session.sessions ADD COLUMN cleared boolean NOT NULL DEFAULT false;

-- The role names this install grants to, for this migration and later ones.
ALTER TABLE session.config
  ADD COLUMN client_role name NOT NULL DEFAULT 'session_client',
  ADD COLUMN admin_role  name NOT NULL DEFAULT 'session_admin';

-- Private helper replacing write_expiry: the same rules, at a clock time the caller read once.
CREATE FUNCTION session.expiry_at(value text, expiry bigint, at timestamptz) RETURNS timestamptz
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
    RETURN at + make_interval(secs => cfg.default_period);
  END IF;
  IF expiry NOT BETWEEN -3155760000 AND 3155760000 THEN
    RAISE EXCEPTION 'expiry must be between -3155760000 and 3155760000 seconds (100 years), got %', expiry
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- expiry <= 0: the session is born (or becomes) expired, as in ocaml-session.
  RETURN at + make_interval(secs => expiry);
END
$$;
REVOKE ALL ON FUNCTION session.expiry_at(text, bigint, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- Three version-4 UUIDs come from pg_strong_random: 366 random bits, 64 base64url characters.
  new_key constant text := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                            || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
  d constant bytea := session.key_digest(new_key);
  t constant timestamptz := clock_timestamp();
BEGIN
  INSERT INTO session.sessions (digest, expires_at, value)
  VALUES (d, session.expiry_at(session_generate.value, expiry, t), session_generate.value);
  RETURN new_key;
END
$$;

CREATE OR REPLACE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN QUERY
    SELECT s.value, floor(extract(epoch FROM s.expires_at - t))::bigint
      FROM session.sessions s
     WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
END
$$;

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
     SET value = session_set.value, expires_at = new_expiry
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

CREATE FUNCTION session.session_touch(key text, expiry bigint DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry constant timestamptz := session.expiry_at(NULL, expiry, t);
BEGIN
  UPDATE session.sessions s SET expires_at = new_expiry
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_touch(text, bigint) IS
  'Restarts the expiry of a live session (NULL = default period) without writing its value: what '
  'a request that changed nothing does. Returns false, creating nothing, when the key is unknown, '
  'cleared or expired. Errors: 22023 expiry out of range.';

CREATE OR REPLACE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
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
  new_expiry := session.expiry_at(value, expiry, t);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT. It never writes over an expired session (not yet purged) or a cleared
  -- one (its tombstone): a request still in flight when the user logged out cannot bring it back.
  INSERT INTO session.sessions AS s (digest, expires_at, value)
  VALUES (d, new_expiry, session_put.value)
  ON CONFLICT (digest) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
   WHERE s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION session.session_count() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN (SELECT count(*) FROM session.sessions s WHERE s.expires_at > t AND NOT s.cleared);
END
$$;

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
  -- Another purge holds the cursor (perhaps in a transaction left open): it will do the work, and
  -- waiting for it could stall the pg_cron job for as long as that transaction lives.
  SELECT p.next_block INTO at FROM session.purge_state p FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN 0::bigint;
  END IF;
  pages := pg_relation_size('session.sessions'::regclass) / current_setting('block_size')::bigint;
  WHILE swept < pages AND deleted < batch_size LOOP
    IF at >= pages THEN
      at := 0;
    END IF;
    DELETE FROM session.sessions s
     WHERE s.ctid >= format('(%s,0)', at)::tid
       AND s.ctid < format('(%s,0)', at + step)::tid
       AND s.expires_at <= clock_timestamp();
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
  'Deletes expired sessions (and the tombstones of cleared ones once they expire), sweeping 1 MiB '
  'block ranges until about batch_size rows are gone or the whole table was swept, and returns how '
  'many it deleted; call until it returns 0. Returns 0 at once, without waiting, while another '
  'purge is in progress. Errors: 22023 batch_size NULL or < 1.';

CREATE OR REPLACE FUNCTION session.session_stats(OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
                                                 OUT index_bytes bigint, OUT default_period bigint,
                                                 OUT max_value_bytes integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t constant timestamptz := clock_timestamp();
BEGIN
  SELECT count(*) FILTER (WHERE s.expires_at > t AND NOT s.cleared), count(*) FILTER (WHERE s.expires_at <= t)
    INTO live, expired FROM session.sessions s;
  table_bytes := pg_table_size('session.sessions'::regclass);
  index_bytes := pg_indexes_size('session.sessions'::regclass);
  SELECT c.default_period, c.max_value_bytes INTO default_period, max_value_bytes FROM session.config c;
END
$$;
COMMENT ON FUNCTION session.session_stats() IS
  'For the admin role: live and expired (not yet purged) sessions, table and index bytes, and the '
  'settings. Scans the table: not for hot paths.';

COMMENT ON FUNCTION session.session_put(text, text, bigint) IS
  'Creates or replaces the session with this key (for frameworks that make their own ids, and only '
  'for an id just made). Returns false, storing nothing, when the key belongs to an expired session '
  'not yet purged or to a cleared one. Errors: 22004 NULL key or value; 22023 key not 32-1024 '
  'base64url characters, or expiry out of range; 22001 value too large.';

COMMENT ON FUNCTION session.session_set_default_period(bigint) IS
  'Admin role. Sets the default period for sessions generated or set from now on; existing '
  'sessions keep their expiry. Errors: 22023 NULL, non-positive or more than 3155760000.';

DROP FUNCTION session.write_expiry(text, bigint);

-- Privileges. Nobody but the owner may call the new function until granted here.
REVOKE ALL ON FUNCTION session.session_touch(text, bigint) FROM PUBLIC;

-- The one place that says what the two roles may call. Each later migration that adds a function
-- replaces it, so that what a DBA runs by hand (see below) always grants the current list.
-- Not SECURITY DEFINER: only the owner or a superuser may grant.
CREATE FUNCTION session.grant_roles() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  EXECUTE format('GRANT USAGE ON SCHEMA session TO %1$I, %2$I', cfg.client_role, cfg.admin_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_generate(bigint, text), session.session_get(text), '
    'session.session_set(text, text, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint), session.session_clear(text), '
    'session.session_count(), session.session_default_period() TO %I', cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count() TO %I', cfg.admin_role);
END
$$;
REVOKE ALL ON FUNCTION session.grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION session.grant_roles() IS
  'Owner or superuser: grants the client and admin roles named in session.config what they may call. '
  'The migrations run it; run it by hand after creating roles a migration could not create.';

-- The client role (the application's) keeps the data calls and loses the global ones: an app
-- role could set a 1 s default period and log everyone out. The admin role gets those.
DO $$
DECLARE
  client constant text := coalesce(nullif(pg_catalog.current_setting('session_postgresql.client_role', true), ''), 'session_client');
  admin constant text := coalesce(nullif(pg_catalog.current_setting('session_postgresql.admin_role', true), ''), 'session_admin');
  can_create constant boolean := (SELECT r.rolsuper OR r.rolcreaterole FROM pg_catalog.pg_roles r
                                   WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
  missing text := '';
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY[client, admin] LOOP
    IF role_name OPERATOR(pg_catalog.!~) '^[a-z_][a-z0-9_$]{0,62}$' OR role_name OPERATOR(pg_catalog.~~) 'pg\_%'
       OR role_name OPERATOR(pg_catalog.=) 'public' THEN
      RAISE EXCEPTION 'session-postgresql: role name % is not a plain lower-case identifier', role_name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  IF client OPERATOR(pg_catalog.=) admin THEN
    RAISE EXCEPTION 'session-postgresql: the client and admin roles must differ'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET client_role = client::name, admin_role = admin::name;

  -- 001 granted these to session_client.
  IF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'session_client') THEN
    IF client OPERATOR(pg_catalog.=) 'session_client' THEN
      REVOKE EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer)
        FROM session_client;
    ELSE
      -- Another name was chosen for this database: the shared default role gets nothing here.
      REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM session_client;
      REVOKE ALL ON SCHEMA session FROM session_client;
    END IF;
  END IF;

  FOREACH role_name IN ARRAY ARRAY[client, admin] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
      IF can_create THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
      ELSE
        missing := missing OPERATOR(pg_catalog.||) pg_catalog.format('CREATE ROLE %I NOLOGIN; ', role_name);
      END IF;
    END IF;
  END LOOP;
  IF missing OPERATOR(pg_catalog.=) '' THEN
    PERFORM session.grant_roles();
  ELSE
    RAISE WARNING 'session-postgresql: % may not create roles; a DBA must create them before the application can call the functions', CURRENT_USER
      USING HINT = 'A DBA must run: ' OPERATOR(pg_catalog.||) missing OPERATOR(pg_catalog.||) 'SELECT session.grant_roles(); '
                   OPERATOR(pg_catalog.||) pg_catalog.format('Then GRANT %I TO <your application role>; GRANT %I TO <your admin role>;', client, admin);
  END IF;
END
$$;
