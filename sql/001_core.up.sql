-- session-postgresql 001: the core store.
--
-- Public interface: the session.session_* functions. The tables are private and not an interface:
-- their shape may change in any release. Every function that touches them is SECURITY DEFINER with
-- a pinned search_path, so a caller's own search_path can never redirect a name used here.

CREATE SCHEMA session;
COMMENT ON SCHEMA session IS
  'session-postgresql. Call the session_* functions; the tables are private, not an interface.';

-- One row. default_period and max_value_bytes are read on every write, so they live here rather
-- than in a GUC that each connection could override.
CREATE TABLE session.config (
  singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  default_period  bigint  NOT NULL DEFAULT 604800 CHECK (default_period BETWEEN 1 AND 3155760000),
  max_value_bytes integer NOT NULL DEFAULT 1048576 CHECK (max_value_bytes > 0)
);
INSERT INTO session.config DEFAULT VALUES;
COMMENT ON TABLE session.config IS
  'Private. default_period: see session_set_default_period(). max_value_bytes: the largest value '
  'session_generate/session_set accept; only the owner may change it (UPDATE session.config).';

-- digest = sha256(key): a dump, replica or backup holds no usable key.
-- There is deliberately no index on expires_at: every session_set moves it, and in PostgreSQL 15
-- any index on a changed column (B-tree or BRIN) forbids HOT updates. session_purge sweeps the
-- heap by block ranges instead. The default fillfactor (100) is deliberate: pruning frees room for
-- HOT updates as they come (96-99% HOT in bench/growth.ts's churn), and the table is 10-17%
-- smaller than with fillfactor 80 (100% HOT). See docs/performance.md#fillfactor.
CREATE TABLE session.sessions (
  expires_at timestamptz NOT NULL,
  digest     bytea       NOT NULL PRIMARY KEY,
  value      text
);
COMMENT ON TABLE session.sessions IS 'Private. One row per session, keyed by sha256(key).';

-- Where the next session_purge() call resumes its sweep; the row lock also serialises purges.
CREATE TABLE session.purge_state (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  next_block bigint  NOT NULL DEFAULT 0
);
INSERT INTO session.purge_state DEFAULT VALUES;
COMMENT ON TABLE session.purge_state IS 'Private. The block at which session_purge resumes.';

-- Private helper. A SQL function without SECURITY DEFINER or SET, so the planner inlines it into
-- the callers' queries (no call overhead on the hot path). NULL and over-long keys give NULL, which
-- matches no row: such a key is simply not found, and costs no hashing of megabytes.
CREATE FUNCTION session.key_digest(key text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.octet_length(key) OPERATOR(pg_catalog.<=) 1024
            THEN pg_catalog.sha256(pg_catalog.convert_to(key, 'UTF8')) END;

-- Private helper: validates a value about to be written and resolves an expiry (seconds from now;
-- NULL = the default period) into a timestamp. Shared by generate and set so the rules exist once.
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

CREATE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL)
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

CREATE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint)
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

CREATE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL)
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

-- For frameworks that generate session ids themselves (express-session, @fastify/session) and
-- expect "save" to create the session. Unlike session_set it may create a session for the given
-- key, so it only accepts keys that look like the framework's own random ids (>= 32 base64url
-- characters: 192 bits for express-session's 24 random bytes), and it never revives a key whose
-- session has expired but is not yet purged. Frameworks never adopt an unknown id sent by a client:
-- they generate a fresh one, which is what makes this safe (see the README).
CREATE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL)
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

-- Live sessions, for express-session's optional length(). Counting reveals no key or value.
CREATE FUNCTION session.session_count() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT count(*) FROM session.sessions s WHERE s.expires_at > now());
END
$$;
COMMENT ON FUNCTION session.session_count() IS 'The number of live (unexpired) sessions. No errors.';

CREATE FUNCTION session.session_clear(key text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM session.sessions s WHERE s.digest = session.key_digest(session_clear.key);
END
$$;
COMMENT ON FUNCTION session.session_clear(text) IS
  'Ends a session. Idempotent: unknown, expired or NULL keys are a no-op. No errors.';

CREATE FUNCTION session.session_default_period() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.default_period FROM session.config c);
END
$$;
COMMENT ON FUNCTION session.session_default_period() IS
  'The period in seconds given to sessions generated or set without an expiry (604800 after install).';

CREATE FUNCTION session.session_set_default_period(period bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF period IS NULL OR period NOT BETWEEN 1 AND 3155760000 THEN
    RAISE EXCEPTION 'default period must be between 1 and 3155760000 seconds, got %',
                    coalesce(period::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET default_period = period;
END
$$;
COMMENT ON FUNCTION session.session_set_default_period(bigint) IS
  'Sets the default period for sessions generated or set from now on; existing sessions keep their '
  'expiry. Errors: 22023 NULL, non-positive or more than 3155760000.';

-- Sweeps the heap in ranges of 128 blocks (1 MiB) with TID range scans, resuming where the previous
-- call stopped, so no index on expires_at is needed and every DELETE is short. A call ends once it
-- has deleted batch_size rows or swept the whole table; 0 therefore means nothing expired is left.
-- Row locks are only taken on expired rows, which no reader or writer of a live session touches.
CREATE FUNCTION session.session_purge(batch_size integer DEFAULT 10000) RETURNS bigint
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

-- For DBAs (the owner; not granted to session_client): counts scan the table, so not for hot paths.
CREATE FUNCTION session.session_stats(OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
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

-- Nobody but the owner may call anything until granted below.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA session FROM PUBLIC;

-- session_client: the application's role. It may call every public function and read no table.
-- session_put lets it create sessions under ids it made itself, which an app role could always do
-- in effect (generate, then hand out the key); see session_put for why frameworks need it.
-- session_set_default_period is in the client API (as in ocaml-session); session_purge only
-- removes rows that are already unreachable. Neither lets a client read or forge a session.
DO $$
DECLARE
  grants constant text :=
    'GRANT USAGE ON SCHEMA session TO session_client; '
    'GRANT EXECUTE ON FUNCTION session.session_generate(bigint, text), session.session_get(text), '
    'session.session_set(text, text, bigint), session.session_clear(text), '
    'session.session_default_period(), session.session_set_default_period(bigint), '
    'session.session_purge(integer), session.session_put(text, text, bigint), session.session_count() '
    'TO session_client;';
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'session_client') THEN
    IF (SELECT rolsuper OR rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
      CREATE ROLE session_client NOLOGIN;
    ELSE
      RAISE WARNING 'session-postgresql: role session_client does not exist and % may not create roles', current_user
        USING HINT = 'A DBA must run: CREATE ROLE session_client NOLOGIN; ' || grants
                     || ' Then GRANT session_client TO <your application role>;';
      RETURN;
    END IF;
  END IF;
  EXECUTE grants;
END
$$;

-- The purge job. Correctness never depends on it: expired sessions are never returned.
DO $$
DECLARE
  command constant text := 'SELECT session.session_purge()';
  elsewhere constant text := format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                                    'session-purge-' || current_database(), '* * * * *', command,
                                    current_database());
  cron_db text;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    BEGIN
      cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: % may not read cron.database_name, so no purge job was scheduled', current_user
        USING HINT = 'If pg_cron is installed, a superuser must run, in pg_cron''s database: ' || elsewhere;
      RETURN;
    END;
    IF cron_db IS NULL THEN
      RAISE NOTICE 'session-postgresql: pg_cron is not loaded, so no purge job was scheduled'
        USING HINT = 'Expired sessions are never returned, but rows stay until purged. Run '
                     || quote_literal(command) || ' every minute until it returns 0, or install pg_cron.';
      RETURN;
    END IF;
    IF cron_db <> current_database() THEN
      RAISE NOTICE 'session-postgresql: pg_cron lives in database %, not %; schedule the purge job there',
                   cron_db, current_database()
        USING HINT = format('In database %I, run: %s', cron_db, elsewhere);
      RETURN;
    END IF;
    BEGIN
      CREATE EXTENSION pg_cron;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: pg_cron is loaded but % may not CREATE EXTENSION pg_cron', current_user
        USING HINT = format('A superuser must run: CREATE EXTENSION pg_cron; SELECT cron.schedule(%L, %L, %L);',
                            'session-purge', '* * * * *', command);
      RETURN;
    END;
  END IF;
  -- cron.schedule upserts by job name: re-running never adds a second job.
  BEGIN
    PERFORM cron.schedule('session-purge', '* * * * *', command);
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'session-postgresql: % may not use pg_cron, so no purge job was scheduled', current_user
      USING HINT = format('A superuser must run: GRANT USAGE ON SCHEMA cron TO %I; or SELECT cron.schedule(%L, %L, %L);',
                          current_user, 'session-purge', '* * * * *', command);
  END;
END
$$;
