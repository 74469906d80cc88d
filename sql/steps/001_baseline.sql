-- GENERATED from sql/schema/ by `npm run build:sql`: do not edit. Change the area file instead.
-- session-postgresql 1.0 baseline: the whole schema in one step. Frozen once 1.0.0 is published:
-- from then on a change is an edit of its area file plus a new small frozen step
-- (sql/steps/002_<what>.sql), see CONTRIBUTING.md.

-- Whatever the runner does: no name below may resolve to another role's object.
SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------- sql/schema/00_tables.sql

-- The schema and its tables. The public interface is the session.session_* functions (and, for a
-- PL/Proxy proxy, session.partition_*). The tables are private and not an interface: their shape
-- may change in any release. Every function that touches them is SECURITY DEFINER with a pinned
-- search_path, so a caller's own search_path can never redirect a name used there.

CREATE SCHEMA session;
COMMENT ON SCHEMA session IS
  'session-postgresql. Call the session_* functions; the tables are private, not an interface.';

-- One row. default_period and max_value_bytes are read on every write, so they live here rather
-- than in a GUC that each connection could override. client_role, admin_role and proxy_role are
-- the roles this install grants to (chosen at install: one set per database); absolute_lifetime
-- NULL means no absolute lifetime unless a session is generated with one.
CREATE TABLE session.config (
  singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  default_period    bigint  NOT NULL DEFAULT 604800 CHECK (default_period BETWEEN 1 AND 3155760000),
  max_value_bytes   integer NOT NULL DEFAULT 1048576 CHECK (max_value_bytes > 0),
  client_role       name    NOT NULL DEFAULT 'session_client',
  admin_role        name    NOT NULL DEFAULT 'session_admin',
  absolute_lifetime bigint  CHECK (absolute_lifetime BETWEEN 1 AND 3155760000),
  proxy_role        name
);
INSERT INTO session.config DEFAULT VALUES;
COMMENT ON TABLE session.config IS
  'Private. default_period: see session_set_default_period(). max_value_bytes: the largest value '
  'session_generate/session_set accept; only the owner may change it (UPDATE session.config).';

-- digest = sha256(key): a dump, replica or backup holds no usable key.
-- There is deliberately no index on expires_at: every session_set moves it, and in PostgreSQL 15
-- any index on a changed column (B-tree or BRIN) forbids HOT updates. session_purge sweeps the
-- heap by block ranges instead. fillfactor 80: most writes change a session's value and expiry,
-- none of them indexed; with room left on each page, PostgreSQL keeps the new row version on the
-- same page (a HOT update) and writes no index entry. See docs/performance.md#fillfactor.
-- A cleared session stays as a tombstone (value NULL, cleared) until its expiry, at most a day;
-- the purge removes it like any expired row. Of the other columns only written_at changes on
-- session_set or session_touch, and it is in no index, so those updates stay HOT. The subject
-- index is partial: anonymous sessions cost it nothing. A new row's version is the microsecond it
-- was made and each write of the value adds one: a session made again under the same key after the
-- old one was purged starts far above any version the old one reached, so a version read from the
-- old one never matches the new one.
CREATE TABLE session.sessions (
  expires_at timestamptz NOT NULL,
  digest     bytea       NOT NULL PRIMARY KEY,
  value      text,
  cleared    boolean     NOT NULL DEFAULT false,
  created_at timestamptz,
  written_at timestamptz,
  ends_at    timestamptz,
  subject    text,
  label      text,
  handle     uuid,
  version    bigint      NOT NULL DEFAULT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint
) WITH (fillfactor = 80);
COMMENT ON TABLE session.sessions IS 'Private. One row per session, keyed by sha256(key).';
COMMENT ON COLUMN session.sessions.version IS
  'Private. Changes on every write of the value; starts at the microsecond the row was made.';
COMMENT ON COLUMN session.sessions.ends_at IS
  'Private. The absolute end: expires_at never passes it (NULL = no cap).';
COMMENT ON COLUMN session.sessions.handle IS
  'Private. A random, non-secret name for the session in lists; set with the subject.';
CREATE INDEX sessions_subject ON session.sessions (subject, created_at DESC) WHERE subject IS NOT NULL;

-- Where the next session_purge() call resumes its sweep; the row lock also serialises purges.
CREATE TABLE session.purge_state (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  next_block bigint  NOT NULL DEFAULT 0
);
INSERT INTO session.purge_state DEFAULT VALUES;
COMMENT ON TABLE session.purge_state IS 'Private. The block at which session_purge resumes.';

-- ---------------------------------------------------------------- sql/schema/10_helpers.sql

-- Private helpers shared by the session calls: hashing and making keys, the key shape, expiries.
-- Granted to nobody: the SECURITY DEFINER functions call them as the owner.

-- Private helper. A SQL function without SECURITY DEFINER or SET, so the planner inlines it into
-- the callers' queries (no call overhead on the hot path). NULL and over-long keys give NULL, which
-- matches no row: such a key is simply not found, and costs no hashing of megabytes.
CREATE OR REPLACE FUNCTION session.key_digest(key text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.octet_length(key) OPERATOR(pg_catalog.<=) 1024
            THEN pg_catalog.sha256(pg_catalog.convert_to(key, 'UTF8')) END;
COMMENT ON FUNCTION session.key_digest(text) IS
  'Private. sha256 of a key, the only form in which keys are stored; NULL (found nowhere) for NULL or over 1024 bytes.';

-- Private helper: the one way a key is made. Three version-4 UUIDs come from pg_strong_random:
-- 366 random bits, 64 base64url characters. Inlined like key_digest.
CREATE OR REPLACE FUNCTION session.new_key() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE
RETURN pg_catalog.translate(pg_catalog.encode(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
         OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
         OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 'base64'), '+/=', '-_');
COMMENT ON FUNCTION session.new_key() IS
  'Private. A new session key: 64 base64url characters carrying 366 random bits.';

-- Private helper: the one shape a key made elsewhere (session_put, a proxy) must have: 32 to 1024
-- base64url characters, so at least 24 random bytes' worth. NULL for a NULL key: callers say
-- what NULL means to them. Inlined like key_digest; the length test comes first, so a huge key
-- costs no regular expression.
CREATE OR REPLACE FUNCTION session.well_formed_key(key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.octet_length(key) OPERATOR(pg_catalog.<=) 1024
       AND key OPERATOR(pg_catalog.~) '^[A-Za-z0-9_-]{32,}$';
COMMENT ON FUNCTION session.well_formed_key(text) IS
  'Private. Whether a key is 32 to 1024 base64url characters; NULL for a NULL key.';

-- Private helper: checks a value about to be written and resolves an expiry (seconds from `at`;
-- NULL = the default period) into a timestamp, at a clock time the caller read once.
CREATE OR REPLACE FUNCTION session.expiry_at(value text, expiry bigint, at timestamptz) RETURNS timestamptz
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
COMMENT ON FUNCTION session.expiry_at(text, bigint, timestamptz) IS
  'Private. The expiry of a write at time at. Errors: 22001 value too large; 22023 expiry out of range.';

-- Private helper: when a session created at `at` ends at the latest. `lifetime` NULL: the
-- configured absolute lifetime (NULL: none).
CREATE OR REPLACE FUNCTION session.ends_at(lifetime bigint, at timestamptz) RETURNS timestamptz
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
COMMENT ON FUNCTION session.ends_at(bigint, timestamptz) IS
  'Private. The absolute end of a session created at at (NULL: none). Errors: 22023 lifetime out of range.';

-- Private helper: true when a conditional write may go ahead (wanted NULL: unconditional, or the
-- version it read is still the current one); SP001 otherwise. Called in the UPDATE that writes, on
-- the row version it locked, so nothing can move the version in between.
CREATE OR REPLACE FUNCTION session.check_version(current bigint, wanted bigint) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF wanted IS NOT NULL AND wanted IS DISTINCT FROM current THEN
    RAISE EXCEPTION 'the session was written since version % was read; nothing was written', wanted
      USING ERRCODE = 'SP001', HINT = 'Read the session again, and write what it holds now.';
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION session.check_version(bigint, bigint) IS
  'Private. True when a write may go ahead: wanted is NULL or the current version. Errors: SP001 the version has moved.';

-- Private helper: the checks of session_merge's arguments, 'SQLSTATE message' or NULL, shared
-- with the batch (which takes a merge's fields as one JSON object, see merge_problem).
CREATE OR REPLACE FUNCTION session.merge_fields_problem(set_fields jsonb, unset_fields text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
  WHEN set_fields IS NOT NULL AND jsonb_typeof(set_fields) <> 'object'
    THEN '22023 set_fields must be a JSON object (or NULL)'
  WHEN array_position(unset_fields, NULL) IS NOT NULL
    THEN '22004 unset_fields must not contain NULL'
END;
COMMENT ON FUNCTION session.merge_fields_problem(jsonb, text[]) IS
  'Private. What session_merge refuses in its fields, as ''SQLSTATE message''; NULL when none.';

-- Private helper: a stored value with fields removed (unset_fields) then set (set_fields, which
-- win over unset_fields), as jsonb prints it. SP002 when the value is not set or not a JSON
-- object; 22001 when the result exceeds max_value_bytes.
CREATE OR REPLACE FUNCTION session.merged_value(value text, set_fields jsonb, unset_fields text[], max_value_bytes integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stored jsonb;
  merged text;
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION 'the session is not set: there is no JSON object to merge into'
      USING ERRCODE = 'SP002', HINT = 'Write a whole value first with session_set or session_put.';
  END IF;
  BEGIN
    stored := value::jsonb;
  EXCEPTION WHEN data_exception THEN
    stored := NULL;
  END;
  IF jsonb_typeof(stored) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'the session''s value is not a JSON object; nothing was merged'
      USING ERRCODE = 'SP002', HINT = 'Only a value holding a JSON object can be merged into.';
  END IF;
  merged := ((stored - coalesce(unset_fields, '{}'::text[])) || coalesce(set_fields, '{}'::jsonb))::text;
  IF octet_length(merged) > max_value_bytes THEN
    RAISE EXCEPTION 'session value is % bytes, more than the limit of % bytes', octet_length(merged), max_value_bytes
      USING ERRCODE = 'string_data_right_truncation',
            HINT = 'Nothing was stored. The owner can raise session.config.max_value_bytes.';
  END IF;
  RETURN merged;
END
$$;
COMMENT ON FUNCTION session.merged_value(text, jsonb, text[], integer) IS
  'Private. A stored JSON object with fields removed, then set. Errors: SP002 not set or not a JSON object; 22001 too large.';

-- ---------------------------------------------------------------- sql/schema/20_sessions.sql

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

-- ---------------------------------------------------------------- sql/schema/30_subjects.sql

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

-- ---------------------------------------------------------------- sql/schema/40_batch.sql

-- Many calls in one statement: session_write_batch (what the client's group commit sends) and
-- session_get_batch (its read batching), with the checks they share with the single calls.

-- Private helper: the checks the single calls make before writing, as 'SQLSTATE message', NULL
-- when the element may be applied. A plain SQL expression, so the batch checks all its elements
-- in one statement instead of calling a function once per element.
CREATE OR REPLACE FUNCTION session.write_problem(kind text, key text, value text, expiry bigint, max_value_bytes integer)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE
  WHEN kind IS NULL OR kind NOT IN ('generate', 'set', 'touch', 'put', 'merge', 'clear')
    THEN '22023 kind must be generate, set, touch, put, merge or clear'
  WHEN kind = 'set' AND value IS NULL
    THEN '22004 session value must not be NULL'
  WHEN kind = 'put' AND (key IS NULL OR value IS NULL)
    THEN '22004 session_put needs a key and a value'
  WHEN kind = 'put' AND NOT session.well_formed_key(key)
    THEN '22023 session_put only accepts keys of 32 to 1024 base64url characters'
  WHEN kind IN ('generate', 'set', 'put') AND octet_length(value) > max_value_bytes
    THEN format('22001 session value is %s bytes, more than the limit of %s bytes', octet_length(value), max_value_bytes)
  WHEN kind <> 'clear' AND expiry NOT BETWEEN -3155760000 AND 3155760000
    THEN format('22023 expiry must be between -3155760000 and 3155760000 seconds (100 years), got %s', expiry)
END;
COMMENT ON FUNCTION session.write_problem(text, text, text, bigint, integer) IS
  'Private. What a single call would refuse in this write, as ''SQLSTATE message''; NULL when none.';

-- Private helper: write_problem as (SQLSTATE, message), for partition_write_batch, which checks
-- generate elements one by one: the rules stay in one place.
CREATE OR REPLACE FUNCTION session.write_check(kind text, key text, value text, expiry bigint, max_value_bytes integer,
                                              OUT state text, OUT message text)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  problem constant text := session.write_problem(kind, key, value, expiry, max_value_bytes);
BEGIN
  state := left(problem, 5);
  message := substr(problem, 7);
END
$$;
COMMENT ON FUNCTION session.write_check(text, text, text, bigint, integer) IS
  'Private. write_problem split into SQLSTATE and message; both NULL when the element may be applied.';

-- The number of elements of a batch: its four arrays must be one-dimensional and of one length
-- (22023); a NULL array is empty. An expression, so that a caller checks without a statement.
CREATE OR REPLACE FUNCTION session.batch_length(kinds text[], keys text[], vals text[], expiries bigint[]) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := coalesce(cardinality(kinds), 0);
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) OR array_ndims(kinds) > 1 OR array_ndims(keys) > 1
     OR array_ndims(vals) > 1 OR array_ndims(expiries) > 1 THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must be one-dimensional arrays with the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN n;
END
$$;
COMMENT ON FUNCTION session.batch_length(text[], text[], text[], bigint[]) IS
  'Private. The number of elements of a batch. Errors: 22023 arrays of several dimensions or of different lengths.';

-- Private helper: what a batch merge's fields, already read as jsonb, break: 'SQLSTATE message' or
-- NULL. A plain SQL expression (no subquery), so that the batch checks all its merges in one
-- statement; merge_problem applies it one element at a time.
CREATE OR REPLACE FUNCTION session.merge_shape_problem(f jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
  WHEN jsonb_typeof(f) <> 'object' OR f - '{set,unset}'::text[] <> '{}'::jsonb
    THEN '22023 a merge''s fields must be a JSON object with only "set" and "unset"'
  -- The path query only when there is something to look at: it costs more than the rest.
  WHEN jsonb_typeof(f->'unset') NOT IN ('array', 'null')
       OR (f->'unset' <> '[]'::jsonb AND (f->'unset') @? 'strict $[*] ? (@.type() != "string")')
    THEN '22023 "unset" must be an array of field names (strings)'
  ELSE session.merge_fields_problem(CASE WHEN jsonb_typeof(f->'set') <> 'null' THEN f->'set' END, NULL)
END;
COMMENT ON FUNCTION session.merge_shape_problem(jsonb) IS
  'Private. What a batch merge''s fields, as jsonb, break (see merge_problem), as ''SQLSTATE message''; NULL when none.';

-- Private helper: a batch merge's fields, vals[i] = '{"set": {...}, "unset": [...]}' (either
-- member may be left out), checked as session_merge checks its arguments: 'SQLSTATE message' or
-- NULL. PostgreSQL 15 cannot test text for JSON without trying: the block catches the cast's error.
CREATE OR REPLACE FUNCTION session.merge_problem(fields text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f jsonb;
BEGIN
  IF fields IS NULL THEN
    RETURN '22004 a merge needs its fields: {"set": {...}, "unset": [...]}';
  END IF;
  BEGIN
    f := fields::jsonb;
  EXCEPTION WHEN data_exception THEN
    RETURN '22023 a merge''s fields must be JSON: {"set": {...}, "unset": [...]}';
  END;
  RETURN session.merge_shape_problem(f);
END
$$;
COMMENT ON FUNCTION session.merge_problem(text) IS
  'Private. What a batch merge''s fields {"set": ..., "unset": [...]} break, as ''SQLSTATE message''; NULL when none.';

-- The checks of a batch element beyond write_problem's, for the elements that need them: a
-- merge's fields, and a version given to a kind that takes none. 'SQLSTATE message' or NULL.
CREATE OR REPLACE FUNCTION session.element_problem(kind text, value text, version bigint) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF version IS NOT NULL AND kind NOT IN ('set', 'put', 'merge') THEN
    RETURN '22023 only set, put and merge take a version';
  END IF;
  IF kind = 'merge' THEN
    RETURN session.merge_problem(value);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION session.element_problem(text, text, bigint) IS
  'Private. What a batch element breaks beyond write_problem (a merge''s fields, a version on a kind that takes none); NULL when none.';

-- Private helper: a batch's versions, numbered from 1 (NULL: every element unconditional). 22023
-- when they are not one-dimensional with n elements. An expression, so a caller checks without a
-- statement.
CREATE OR REPLACE FUNCTION session.batch_versions(versions bigint[], n integer) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF versions IS NULL OR n = 0 THEN
    RETURN NULL;
  END IF;
  IF cardinality(versions) <> n OR array_ndims(versions) > 1 THEN
    RAISE EXCEPTION 'versions must be NULL or a one-dimensional array with as many elements as kinds'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN versions[array_lower(versions, 1):array_upper(versions, 1)];
END
$$;
COMMENT ON FUNCTION session.batch_versions(bigint[], integer) IS
  'Private. A batch''s versions numbered from 1 (NULL: all unconditional). Errors: 22023 not one-dimensional with n elements.';

-- Private helper: a batch after its checks, over digests: what session_write_batch and
-- partition_write_batch share. The caller gives each element's digest (a generate's: of the new
-- key it made) and the problem write_problem found ('SQLSTATE message', NULL when none), in
-- one-dimensional arrays numbered from 1, and the settings it read. versions[i]: the if_version
-- of a set, put or merge (NULL: unconditional); max_value_bytes bounds a merged value. An element
-- whose version has moved, or whose merge the stored value refuses, gets its SQLSTATE and is not
-- applied; the key's other elements still are.
CREATE OR REPLACE FUNCTION session.write_digests(kinds text[], digests bytea[], problems text[], vals text[], expiries bigint[],
                                      versions bigint[], period bigint, lifetime bigint, max_value_bytes integer)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := cardinality(kinds);
  -- One time for the whole batch: its elements happen together, as they commit together.
  t constant timestamptz := clock_timestamp();
  cap constant timestamptz := t + make_interval(secs => lifetime);
  -- A merge needs the stored values; the other kinds never read them.
  merging constant boolean := 'merge' = ANY (kinds);
  oks boolean[] := '{}'::boolean[];
  -- Why an element found at its turn could not be applied ('SQLSTATE message').
  fails text[] := '{}'::text[];
  -- The sets and touches written first; the elements left, by key (in digest order), and the
  -- digests of the existing sessions they write, in digest order.
  applied integer[];
  by_digest integer[];
  wanted bytea[] := '{}'::bytea[];
  -- The rows of wanted that this transaction locked, in digest order; those it could not lock;
  -- the new rows that another transaction inserted first.
  row_digest bytea[] := '{}'::bytea[];
  row_tid tid[] := '{}'::tid[];
  row_expires timestamptz[] := '{}'::timestamptz[];
  row_ends timestamptz[] := '{}'::timestamptz[];
  row_cleared boolean[] := '{}'::boolean[];
  row_version bigint[] := '{}'::bigint[];
  row_value text[] := '{}'::text[];
  busy bytea[] := '{}'::bytea[];
  lost bytea[] := '{}'::bytea[];
  -- The rows to write: changed ones (u_*, by ctid) and new ones (i_*).
  u_tid tid[] := '{}'::tid[];
  u_value text[] := '{}'::text[];
  u_value_set boolean[] := '{}'::boolean[];
  u_expires timestamptz[] := '{}'::timestamptz[];
  u_written timestamptz[] := '{}'::timestamptz[];
  u_cleared boolean[] := '{}'::boolean[];
  u_version bigint[] := '{}'::bigint[];
  i_digest bytea[] := '{}'::bytea[];
  i_value text[] := '{}'::text[];
  i_expires timestamptz[] := '{}'::timestamptz[];
  i_cleared boolean[] := '{}'::boolean[];
  i_ends timestamptz[] := '{}'::timestamptz[];
  i_version bigint[] := '{}'::bigint[];
  inserted bytea[];
  -- The key being worked out in the loop: its row as its elements so far left it.
  d bytea;
  is_busy boolean;
  r_exists boolean;
  r_new boolean := false;
  r_changed boolean := false;
  r_value text;
  r_value_set boolean;
  r_expires timestamptz;
  r_ends timestamptz;
  r_written timestamptz;
  r_cleared boolean;
  r_version bigint;
  live boolean;
  fields jsonb;
  merged text;
  j integer := 1;
  i integer;
BEGIN
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;

  -- The common case first, in one statement: sets, touches and merges of keys that occur once in
  -- the batch, checked, written together. It locks their live rows without waiting and writes
  -- them; what it does not write (a failed check, no live session, a row held elsewhere, a version
  -- that moved, a merge the stored value refuses) goes the general way below, which gives each
  -- such element its result. A stored value that is not JSON fails the statement's cast: the block
  -- then undoes it, and every element goes the general way.
  BEGIN
    WITH target AS MATERIALIZED (
      SELECT u.o::integer AS o, u.kind, u.v, u.e, s.ctid AS tid, CASE WHEN u.kind = 'merge' THEN s.value END AS stored
        FROM unnest(kinds, digests, problems, vals, expiries, versions) WITH ORDINALITY u(kind, d, problem, v, e, ver, o)
        JOIN session.sessions s ON s.digest = u.d
       WHERE u.kind IN ('set', 'touch', 'merge') AND u.problem IS NULL AND (u.ver IS NULL OR u.ver = s.version)
         AND u.d NOT IN (SELECT x.d FROM unnest(digests) x(d) WHERE x.d IS NOT NULL GROUP BY x.d HAVING count(*) > 1)
         AND s.expires_at > t AND NOT s.cleared
         FOR UPDATE OF s SKIP LOCKED),
    -- A merge as merged_value makes it: removed fields, then set ones, printed by jsonb; NULL when
    -- the stored value is not a JSON object (merged_value's error). Materialized: the UPDATE reads
    -- it twice.
    made AS MATERIALIZED (
      SELECT target.o, target.kind, target.v, target.e, target.tid,
             CASE WHEN target.kind = 'merge' AND jsonb_typeof(m.stored) = 'object'
                  THEN ((CASE WHEN jsonb_typeof(m.f->'unset') = 'array' AND m.f->'unset' <> '[]'::jsonb
                              THEN m.stored - ARRAY(SELECT jsonb_array_elements_text(m.f->'unset')) ELSE m.stored END)
                        || CASE WHEN jsonb_typeof(m.f->'set') = 'object' THEN m.f->'set' ELSE '{}'::jsonb END)::text END AS merged
        FROM target
        CROSS JOIN LATERAL (SELECT target.stored::jsonb AS stored, CASE WHEN target.kind = 'merge' THEN target.v::jsonb END AS f) m),
    written AS (
      UPDATE session.sessions s
         SET value = CASE made.kind WHEN 'set' THEN made.v WHEN 'merge' THEN made.merged ELSE s.value END,
             version = CASE WHEN made.kind = 'touch' THEN s.version ELSE s.version + 1 END,
             expires_at = least(t + make_interval(secs => coalesce(made.e, period)), s.ends_at),
             written_at = t
        FROM made
       WHERE s.ctid = made.tid AND (made.kind <> 'merge' OR octet_length(made.merged) <= max_value_bytes)
      RETURNING made.o)
    SELECT coalesce(array_agg(written.o), '{}') INTO applied FROM written;
  EXCEPTION WHEN data_exception THEN
    applied := '{}';
  END;
  IF cardinality(applied) = n THEN
    PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    RETURN QUERY SELECT g.o::integer, NULL::text, NULL::text, true FROM generate_series(1, n) g(o);
    RETURN;
  END IF;
  FOREACH i IN ARRAY applied LOOP
    oks[i] := true;
  END LOOP;

  -- The rest: each key's elements in element order, keys in digest order. Elements that failed a
  -- check are not applied. A NULL digest (a NULL key, or one over 1024 bytes) matches no session:
  -- such an element returns false.
  SELECT array_agg(y.o ORDER BY y.d, y.o), coalesce(array_agg(DISTINCT y.d) FILTER (WHERE y.kind <> 'generate'), '{}')
    INTO by_digest, wanted
    FROM (SELECT u.o::integer AS o, u.d, kinds[u.o] AS kind FROM unnest(digests) WITH ORDINALITY u(d, o)
           WHERE u.d IS NOT NULL AND problems[u.o] IS NULL AND oks[u.o] IS NULL) y;

  -- A row's ctid stays valid while this transaction holds its lock: the UPDATE below goes
  -- straight to it, without a second index probe. One sort for all the arrays: the aggregates
  -- take the rows in the order of the sorted subquery.
  IF cardinality(wanted) > 0 THEN
    SELECT coalesce(array_agg(s.digest), '{}'), coalesce(array_agg(s.ctid), '{}'), coalesce(array_agg(s.expires_at), '{}'),
           coalesce(array_agg(s.ends_at), '{}'), coalesce(array_agg(s.cleared), '{}'), coalesce(array_agg(s.version), '{}'),
           coalesce(array_agg(s.value), '{}')
      INTO row_digest, row_tid, row_expires, row_ends, row_cleared, row_version, row_value
      FROM (SELECT l.* FROM (SELECT s.digest, s.ctid, s.expires_at, s.ends_at, s.cleared, s.version,
                                    CASE WHEN merging THEN s.value END AS value
                               FROM unnest(wanted) w(digest) JOIN session.sessions s ON s.digest = w.digest
                                FOR UPDATE OF s SKIP LOCKED) l
             ORDER BY l.digest) s;
    IF cardinality(row_digest) < cardinality(wanted) THEN
      busy := ARRAY(SELECT s.digest FROM session.sessions s
                     WHERE s.digest = ANY (ARRAY(SELECT unnest(wanted) EXCEPT SELECT unnest(row_digest))));
    END IF;
  END IF;

  -- Position cardinality + 1 ends the last key.
  FOR p IN 1 .. coalesce(cardinality(by_digest), 0) + 1 LOOP
    i := by_digest[p];
    IF p = 1 OR i IS NULL OR digests[i] <> d THEN
      -- The previous key is worked out: what to write.
      IF r_new THEN
        i_digest := i_digest || d;
        i_value := i_value || r_value;
        i_expires := i_expires || r_expires;
        i_cleared := i_cleared || r_cleared;
        i_ends := i_ends || r_ends;
        i_version := i_version || r_version;
      ELSIF r_changed THEN
        u_tid := u_tid || row_tid[j];
        u_value := u_value || r_value;
        u_value_set := u_value_set || r_value_set;
        u_expires := u_expires || r_expires;
        u_written := u_written || r_written;
        u_cleared := u_cleared || r_cleared;
        u_version := u_version || r_version;
      END IF;
      EXIT WHEN i IS NULL;
      d := digests[i];
      WHILE j <= cardinality(row_digest) AND row_digest[j] < d LOOP
        j := j + 1;
      END LOOP;
      r_exists := j <= cardinality(row_digest) AND row_digest[j] = d;
      is_busy := NOT r_exists AND d = ANY (busy);
      r_new := false;
      r_changed := false;
      r_value := NULL;
      r_value_set := false;
      r_written := NULL;
      IF r_exists THEN
        r_expires := row_expires[j];
        r_ends := row_ends[j];
        r_cleared := row_cleared[j];
        r_version := row_version[j];
        r_value := row_value[j];
      END IF;
    END IF;
    CONTINUE WHEN is_busy;

    live := r_exists AND r_expires > t AND NOT r_cleared;
    IF kinds[i] = 'generate' OR (kinds[i] = 'put' AND NOT r_exists AND versions[i] IS NULL) THEN
      -- A new row ends at the configured absolute lifetime, if any.
      r_exists := true;
      r_new := true;
      r_value := vals[i];
      r_expires := least(t + make_interval(secs => coalesce(expiries[i], period)), cap);
      r_ends := cap;
      r_cleared := false;
      r_version := floor(extract(epoch FROM t) * 1000000)::bigint;
      oks[i] := true;
    ELSIF kinds[i] = 'clear' THEN
      -- clear: true when a session ended (it existed and was not cleared before).
      oks[i] := r_exists AND NOT r_cleared;
      IF oks[i] THEN
        r_cleared := true;
        r_value := NULL;
        r_value_set := true;
        r_expires := least(r_expires, t + interval '1 day');
        r_changed := true;
      END IF;
    ELSIF NOT live THEN
      oks[i] := false;
    ELSIF versions[i] IS NOT NULL AND versions[i] <> r_version THEN
      fails[i] := format('SP001 the session was written since version %s was read; nothing was written', versions[i]);
    ELSE
      IF kinds[i] = 'merge' THEN
        fields := vals[i]::jsonb;
        BEGIN
          merged := session.merged_value(r_value, CASE WHEN jsonb_typeof(fields->'set') = 'object' THEN fields->'set' END,
                                         ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(fields->'unset') = 'array'
                                                                                     THEN fields->'unset' END)),
                                         max_value_bytes);
        EXCEPTION WHEN OTHERS THEN
          fails[i] := SQLSTATE || ' ' || SQLERRM;
        END;
      END IF;
      IF fails[i] IS NULL THEN
        IF kinds[i] IN ('set', 'put') THEN
          r_value := vals[i];
        ELSIF kinds[i] = 'merge' THEN
          r_value := merged;
        END IF;
        IF kinds[i] <> 'touch' THEN
          r_value_set := true;
          r_version := r_version + 1;
        END IF;
        r_expires := least(t + make_interval(secs => coalesce(expiries[i], period)), r_ends);
        r_written := t;
        r_changed := true;
        oks[i] := true;
      END IF;
    END IF;
  END LOOP;

  IF cardinality(u_tid) > 0 THEN
    UPDATE session.sessions s
       SET value = CASE WHEN u.value_set THEN u.value ELSE s.value END, version = u.version,
           expires_at = u.expires, written_at = coalesce(u.written, s.written_at), cleared = u.cleared
      FROM unnest(u_tid, u_value, u_value_set, u_expires, u_written, u_cleared, u_version)
           u(tid, value, value_set, expires, written, cleared, version)
     WHERE s.ctid = u.tid;
  END IF;
  IF cardinality(i_digest) > 0 THEN
    WITH ins AS (
      INSERT INTO session.sessions AS s (digest, expires_at, value, cleared, created_at, written_at, ends_at, version)
      SELECT u.digest, u.expires, u.value, u.cleared, t, t, u.ends, u.version
        FROM unnest(i_digest, i_value, i_expires, i_cleared, i_ends, i_version) u(digest, value, expires, cleared, ends, version)
       ORDER BY u.digest
      ON CONFLICT (digest) DO NOTHING
      RETURNING s.digest)
    SELECT coalesce(array_agg(ins.digest), '{}') INTO inserted FROM ins;
    IF cardinality(inserted) < cardinality(i_digest) THEN
      lost := ARRAY(SELECT unnest(i_digest) EXCEPT SELECT unnest(inserted));
    END IF;
  END IF;

  PERFORM set_config('lock_timeout', caller_lock_timeout, true);
  -- Why an element was not applied, as 'SQLSTATE message' like its check's; NULL when it was.
  RETURN QUERY
    SELECT g.o::integer, left(w.why, 5), substr(w.why, 7), CASE WHEN w.why IS NULL THEN coalesce(oks[g.o], false) END
      FROM generate_series(1, n) g(o)
      CROSS JOIN LATERAL (
        SELECT CASE WHEN problems[g.o] IS NOT NULL THEN problems[g.o]
                    WHEN digests[g.o] = ANY (busy) THEN '55P03 the session is locked by another transaction; not applied'
                    WHEN digests[g.o] = ANY (lost) THEN '55P03 another transaction created this session first; not applied'
                    ELSE fails[g.o]
               END AS why) w;
END
$$;

-- Elements are applied in digest order (then element order), so that concurrent batches take
-- their row locks in one global order and cannot deadlock. A row another transaction holds is
-- skipped, not waited for: that element (and the later ones of the same key, to keep their
-- order) returns 55P03 and is not applied, the others commit. The waits left (a put racing
-- another transaction's insert of the same new key, a table lock) are bounded by lock_timeout, at
-- most 2 s, so that one lock cannot hold a whole batch of callers for long.
CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
                                            versions bigint[] DEFAULT NULL)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := session.batch_length(kinds, keys, vals, expiries);
  cfg session.config;
  caller_lock_timeout constant text := current_setting('lock_timeout');
  t constant timestamptz := clock_timestamp();
  written bigint;
  -- The lock_timeout the batch runs under.
  lock_timeout_set text;
  -- Per element: the key a generate made, the digest, 'SQLSTATE message' of a failed check.
  new_keys text[];
  digests bytea[] := '{}'::bytea[];
  problems text[] := '{}'::text[];
  r record;
BEGIN
  versions := session.batch_versions(versions, n);
  IF n = 0 THEN
    RETURN;
  END IF;
  -- Element i is the i-th of each array, whatever its lower bound (a slice is numbered from 1).
  kinds := kinds[array_lower(kinds, 1):array_upper(kinds, 1)];
  keys := keys[array_lower(keys, 1):array_upper(keys, 1)];
  vals := vals[array_lower(vals, 1):array_upper(vals, 1)];
  expiries := expiries[array_lower(expiries, 1):array_upper(expiries, 1)];
  SELECT * INTO STRICT cfg FROM session.config;
  -- Per element: the digest (a generate's: of the key it makes) and what write_problem finds.
  -- Assignments of expressions, not a statement: a statement's plan could carry the keys as
  -- literals into a log (auto_explain), and these expressions are evaluated without one.
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := session.new_key();
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
    problems[i] := session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes);
  END LOOP;

  -- The framework stores' saves, in one statement: sets, touches and merges, with a merge or a
  -- version among them, each of a live session that no other transaction holds, each key once,
  -- every check passed, every version current (and none given to a touch), every merge into a
  -- JSON object. Either all of them are written here, or none: a batch with any other element is
  -- undone (SP999, never raised out of here; or a cast's error for text that is not JSON) and
  -- goes the general way below, which gives each element its own result. What it writes is what
  -- the general way writes for the same elements. Plain sets and touches go the general way
  -- first: its one-statement path writes big batches of them for less.
  IF kinds <@ '{set,touch,merge}'::text[] AND (array_position(kinds, 'merge') IS NOT NULL OR versions IS NOT NULL) THEN
    -- As in write_digests: a caller's shorter lock_timeout still applies, a longer one is cut to 2 s.
    -- (An assignment, not PERFORM: a simple expression costs no statement.)
    lock_timeout_set := CASE WHEN caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s'
                             THEN set_config('lock_timeout', '2s', true) ELSE caller_lock_timeout END;
    BEGIN
      WITH target AS MATERIALIZED (
        SELECT u.o, u.kind, u.v, u.e, s.ctid AS tid,
               CASE WHEN u.kind = 'merge' THEN s.value::jsonb END AS stored, CASE WHEN u.kind = 'merge' THEN u.v::jsonb END AS f
          FROM unnest(kinds, digests, problems, vals, expiries, versions) WITH ORDINALITY u(kind, d, problem, v, e, ver, o)
          JOIN session.sessions s ON s.digest = u.d
         WHERE u.problem IS NULL
           AND (u.kind <> 'merge' OR (u.v IS NOT NULL AND session.merge_shape_problem(u.v::jsonb) IS NULL))
           AND (u.ver IS NULL OR (u.kind <> 'touch' AND u.ver = s.version)) AND s.expires_at > t AND NOT s.cleared
           FOR UPDATE OF s SKIP LOCKED),
      -- A merge as merged_value makes it; NULL when the stored value is not a JSON object.
      made AS MATERIALIZED (
        SELECT target.o, target.kind, target.v, target.e, target.tid,
               CASE WHEN target.kind = 'merge' AND jsonb_typeof(target.stored) = 'object'
                    THEN ((CASE WHEN jsonb_typeof(target.f->'unset') = 'array' AND target.f->'unset' <> '[]'::jsonb
                                THEN target.stored - ARRAY(SELECT jsonb_array_elements_text(target.f->'unset'))
                                ELSE target.stored END)
                          || CASE WHEN jsonb_typeof(target.f->'set') = 'object' THEN target.f->'set' ELSE '{}'::jsonb END)::text
               END AS merged
          FROM target),
      changed AS (
        UPDATE session.sessions s
           SET value = CASE made.kind WHEN 'set' THEN made.v WHEN 'merge' THEN made.merged ELSE s.value END,
               version = CASE WHEN made.kind = 'touch' THEN s.version ELSE s.version + 1 END,
               expires_at = least(t + make_interval(secs => coalesce(made.e, cfg.default_period)), s.ends_at),
               written_at = t
          FROM made
         WHERE s.ctid = made.tid AND (made.kind <> 'merge' OR octet_length(made.merged) <= cfg.max_value_bytes)
        RETURNING made.o)
      SELECT count(*) INTO written FROM changed;
      IF written < n THEN
        RAISE SQLSTATE 'SP999';
      END IF;
      IF lock_timeout_set <> caller_lock_timeout THEN
        lock_timeout_set := set_config('lock_timeout', caller_lock_timeout, true);
      END IF;
      ok := true;
      FOR i IN 1 .. n LOOP
        ord := i;
        RETURN NEXT;
      END LOOP;
      RETURN;
    EXCEPTION WHEN data_exception OR SQLSTATE 'SP999' THEN
      -- The block's writes and settings are undone: the general way starts from scratch.
      NULL;
    END;
  END IF;

  -- Then element_problem's checks, for all elements in one statement too; a merge whose fields
  -- are not JSON fails the cast, and only then are the elements checked one at a time.
  IF 'merge' = ANY (kinds) OR versions IS NOT NULL THEN
    BEGIN
      SELECT array_agg(coalesce(x.problem,
                                CASE WHEN x.ver IS NOT NULL AND x.kind NOT IN ('set', 'put', 'merge')
                                       THEN '22023 only set, put and merge take a version'
                                     WHEN x.kind = 'merge' AND x.v IS NULL
                                       THEN '22004 a merge needs its fields: {"set": {...}, "unset": [...]}'
                                     WHEN x.kind = 'merge' THEN session.merge_shape_problem(x.v::jsonb) END) ORDER BY x.o)
        INTO problems
        FROM unnest(kinds, vals, versions, problems) WITH ORDINALITY x(kind, v, ver, problem, o);
    EXCEPTION WHEN data_exception THEN
      FOR i IN 1 .. n LOOP
        IF problems[i] IS NULL AND (kinds[i] = 'merge' OR versions[i] IS NOT NULL) THEN
          problems[i] := session.element_problem(kinds[i], vals[i], versions[i]);
        END IF;
      END LOOP;
    END;
  END IF;
  IF new_keys IS NULL THEN
    RETURN QUERY SELECT w.ord, w.sqlstate, w.message, w.ok, NULL::text
                   FROM session.write_digests(kinds, digests, problems, vals, expiries, versions,
                                              cfg.default_period, cfg.absolute_lifetime, cfg.max_value_bytes) w;
    RETURN;
  END IF;
  -- New keys go out one row at a time: a statement would be planned with them.
  FOR r IN SELECT * FROM session.write_digests(kinds, digests, problems, vals, expiries, versions,
                                                cfg.default_period, cfg.absolute_lifetime, cfg.max_value_bytes) LOOP
    ord := r.ord;
    sqlstate := r.sqlstate;
    message := r.message;
    ok := r.ok;
    key := CASE WHEN r.sqlstate IS NULL THEN new_keys[r.ord] END;
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[]) IS
  'Applies many writes in one transaction (one WAL flush). Element i is the call kinds[i] (generate, '
  'set, touch, put, merge or clear) with keys[i], vals[i], expiries[i] and versions[i] (the '
  'if_version of a set, put or merge; a NULL array: all unconditional), each array counted from its '
  'first element whatever its lower bound (a NULL array is empty). A merge''s vals[i] is a JSON '
  'object {"set": {...}, "unset": [...]} (either member may be left out), applied as session_merge '
  'applies its set_fields and unset_fields. One row per element, in element order, ord = i from 1: '
  'sqlstate NULL and ok = what the single call returns (clear: whether a session ended), key = the '
  'new key of a generate; or the SQLSTATE the single call would raise (22004, 22001, 22023, SP001, '
  'SP002) with nothing written for that element, or 55P03 when another transaction holds the row or '
  'created the same new session first (not applied; call it again). Elements of one key apply in '
  'element order. Errors of the whole call: 22023 arrays of different lengths or of more than one '
  'dimension; 55P03 a lock wait longer than lock_timeout, at most 2 s.';

CREATE OR REPLACE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint, version bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- One time for all elements, as for one session_get.
  t constant timestamptz := clock_timestamp();
  digests bytea[] := '{}'::bytea[];
  k text;
  n integer := 0;
BEGIN
  IF keys IS NULL THEN
    RETURN;
  END IF;
  -- Every element in storage order, whatever the bounds and dimensions: ord counts from 1. The
  -- digests are made here, not in the statement: its plan could carry the keys into a log.
  FOREACH k IN ARRAY keys LOOP
    n := n + 1;
    digests[n] := session.key_digest(k);
  END LOOP;
  RETURN QUERY
    SELECT u.o::integer, s.value, floor(extract(epoch FROM s.expires_at - t))::bigint, s.version
      FROM unnest(digests) WITH ORDINALITY u(d, o)
      JOIN session.sessions s ON s.digest = u.d
     WHERE s.expires_at > t AND NOT s.cleared
     ORDER BY u.o;
END
$$;
COMMENT ON FUNCTION session.session_get_batch(text[]) IS
  'session_get for each element of keys, in one statement: one row per element that session_get '
  'would find, ord = its position in keys (from 1, counting the elements in storage order whatever '
  'the array''s bounds and dimensions), with session_get''s value, period and version. No row for an '
  'element: not found (unknown, cleared, expired or NULL). Rows come in ord order; a key given '
  'twice gets a row for each. A NULL or empty array gives no rows. No errors.';

-- ---------------------------------------------------------------- sql/schema/50_admin.sql

-- Settings (default period, absolute lifetime), purging, statistics and the pg_cron job: the
-- admin role's calls and the owner's.

CREATE OR REPLACE FUNCTION session.session_default_period() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.default_period FROM session.config c);
END
$$;
COMMENT ON FUNCTION session.session_default_period() IS
  'The period in seconds given to sessions generated or set without an expiry (604800 after install).';

CREATE OR REPLACE FUNCTION session.session_set_default_period(period bigint) RETURNS void
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
  'Admin role. Sets the default period for sessions generated or set from now on; existing '
  'sessions keep their expiry. Errors: 22023 NULL, non-positive or more than 3155760000.';

CREATE OR REPLACE FUNCTION session.session_absolute_lifetime() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.absolute_lifetime FROM session.config c);
END
$$;
COMMENT ON FUNCTION session.session_absolute_lifetime() IS
  'The absolute lifetime in seconds given to new sessions, NULL for none. No errors.';

CREATE OR REPLACE FUNCTION session.session_set_absolute_lifetime(lifetime bigint) RETURNS void
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

-- Sweeps the heap in ranges of 128 blocks (1 MiB) with TID range scans, resuming where the previous
-- call stopped, so no index on expires_at is needed and every DELETE is short. A call ends once it
-- has deleted batch_size rows or swept the whole table; 0 therefore means nothing expired is left.
-- Row locks are only taken on expired rows, which no reader or writer of a live session touches.
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

-- A procedure, not a function: only a procedure can COMMIT between batches, so no transaction
-- grows with the backlog. For the same reason it cannot be SECURITY DEFINER or pin its
-- search_path (PostgreSQL forbids transaction control then): it runs with its caller's rights, and
-- every name in it is schema-qualified. Only the owner (and so the pg_cron job it schedules) may
-- call it; session_purge, which it calls, is SECURITY DEFINER.
CREATE OR REPLACE PROCEDURE session.session_purge_job(budget_seconds integer DEFAULT 30,
                                           pause double precision DEFAULT 4)
LANGUAGE plpgsql
AS $$
DECLARE
  started     timestamptz := pg_catalog.clock_timestamp();
  call_start  timestamptz;
  took        double precision;
  n           bigint;
BEGIN
  IF budget_seconds IS NULL OR budget_seconds OPERATOR(pg_catalog.<) 0
     OR pause IS NULL OR NOT (pause OPERATOR(pg_catalog.>=) 0 AND pause OPERATOR(pg_catalog.<=) 1000) THEN
    RAISE EXCEPTION 'budget_seconds must be >= 0 and pause between 0 and 1000, got % and %',
                    coalesce(budget_seconds::text, 'NULL'), coalesce(pause::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  LOOP
    call_start := pg_catalog.clock_timestamp();
    n := session.session_purge();
    -- Each batch is its own transaction: row locks and the snapshot are released here.
    COMMIT;
    EXIT WHEN n OPERATOR(pg_catalog.=) 0;
    took := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) call_start);
    -- Stop when the rest and the next call would overrun the budget; the next run resumes.
    EXIT WHEN pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started)
              OPERATOR(pg_catalog.+) took OPERATOR(pg_catalog.*) (pause OPERATOR(pg_catalog.+) 1)
              OPERATOR(pg_catalog.>) budget_seconds;
    PERFORM pg_catalog.pg_sleep(took OPERATOR(pg_catalog.*) pause);
  END LOOP;
END
$$;
COMMENT ON PROCEDURE session.session_purge_job(integer, double precision) IS
  'Owner only; what the pg_cron job calls. Repeats session_purge() until it returns 0 or '
  'budget_seconds have passed, committing after each call and resting pause times each call''s '
  'duration in between. Must be CALLed outside a transaction block (else 2D000). '
  'Errors: 22023 budget_seconds NULL or < 0, pause NULL or outside 0..1000.';

-- For DBAs (the owner; not granted to session_client): counts scan the table, so not for hot paths.
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

-- The purge job: every minute, session_purge_job() as the owner. Correctness never depends on it:
-- expired sessions are never returned. Where this role cannot schedule it, a NOTICE gives the
-- exact call that does.
DO $$
DECLARE
  command constant text := 'CALL session.session_purge_job()';
  elsewhere constant text := pg_catalog.format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                                    'session-purge-' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
                                    '* * * * *', command, pg_catalog.current_database());
  cron_db text;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
    BEGIN
      cron_db := pg_catalog.current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: % may not read cron.database_name, so no purge job was scheduled', CURRENT_USER
        USING HINT = 'If pg_cron is installed, a superuser must run, in pg_cron''s database: ' OPERATOR(pg_catalog.||) elsewhere;
      RETURN;
    END;
    IF cron_db IS NULL THEN
      RAISE NOTICE 'session-postgresql: pg_cron is not loaded, so no purge job was scheduled'
        USING HINT = 'Expired sessions are never returned, but rows stay until purged. Every minute, outside a '
                     'transaction block, as the owner: ' OPERATOR(pg_catalog.||) command OPERATOR(pg_catalog.||) '; or install pg_cron.';
      RETURN;
    END IF;
    IF cron_db OPERATOR(pg_catalog.<>) pg_catalog.current_database() THEN
      RAISE NOTICE 'session-postgresql: pg_cron lives in database %, not %; schedule the purge job there',
                   cron_db, pg_catalog.current_database()
        USING HINT = pg_catalog.format('In database %I, run: %s', cron_db, elsewhere);
      RETURN;
    END IF;
    BEGIN
      CREATE EXTENSION pg_cron;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: pg_cron is loaded but % may not CREATE EXTENSION pg_cron', CURRENT_USER
        USING HINT = pg_catalog.format('A superuser must run: CREATE EXTENSION pg_cron; SELECT cron.schedule(%L, %L, %L);',
                                       'session-purge', '* * * * *', command);
      RETURN;
    END;
  END IF;
  -- cron.schedule upserts by job name: re-running never adds a second job.
  BEGIN
    PERFORM cron.schedule('session-purge', '* * * * *', command);
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'session-postgresql: % may not use pg_cron, so no purge job was scheduled', CURRENT_USER
      USING HINT = pg_catalog.format('A superuser must run: GRANT USAGE ON SCHEMA cron TO %I; or SELECT cron.schedule(%L, %L, %L);',
                                     CURRENT_USER, 'session-purge', '* * * * *', command);
  END;
END
$$;

-- ---------------------------------------------------------------- sql/schema/60_partition.sql

-- What a PL/Proxy proxy calls on each partition (docs/scale-out.md): the calls that make a key,
-- with the key the proxy made. Granted to the proxy role only.

-- The 32-1024 base64url characters a proxy's key must have (22023), and its digest: one
-- expression, so that a caller checks and hashes a key without a statement.
CREATE OR REPLACE FUNCTION session.proxy_key_digest(key text) RETURNS bytea
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF key IS NULL OR NOT session.well_formed_key(key) THEN
    RAISE EXCEPTION 'a key made by the proxy must be 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN session.key_digest(key);
END
$$;
COMMENT ON FUNCTION session.proxy_key_digest(text) IS
  'Private. The digest of a key a proxy made. Errors: 22023 key NULL or not 32-1024 base64url characters.';

-- session_generate with the key given: the same checks in the same order (value and
-- expiry, then subject and label, then lifetime) and the same row.
CREATE OR REPLACE FUNCTION session.partition_generate(key text, expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                                      subject text DEFAULT NULL, label text DEFAULT NULL,
                                                      lifetime bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.proxy_key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
  new_expiry := session.expiry_at(partition_generate.value, expiry, t);
  IF subject IS NOT NULL OR label IS NOT NULL THEN
    PERFORM session.check_subject(subject, label);
  END IF;
  cap := session.ends_at(lifetime, t);
  -- A plain INSERT, as in session_generate: a duplicate key (366 random bits) is a 23505.
  INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at, subject, label, handle)
  VALUES (d, least(new_expiry, cap), partition_generate.value, t, t, cap,
          subject, CASE WHEN subject IS NOT NULL THEN label END,
          CASE WHEN subject IS NOT NULL THEN gen_random_uuid() END);
END
$$;
COMMENT ON FUNCTION session.partition_generate(text, bigint, text, text, text, bigint) IS
  'For the PL/Proxy proxy only: creates a session under a key the proxy generated (its '
  'session_generate). The other arguments as in session_generate. Errors: 22023 key not 32-1024 '
  'base64url characters, expiry or lifetime out of range, empty subject; 22001 value too large, '
  'subject or label over 256 bytes; 23505 key exists.';

-- session_rotate with the new key given, so that the proxy can choose one that lives on this
-- partition. session_rotate does the work (its subject lock, its row lock, the tombstone); the row
-- it made under its own key, which nobody has seen, then takes the proxy's key in the same
-- transaction. Rotation is rare: the extra row version costs little.
CREATE OR REPLACE FUNCTION session.partition_rotate(old_key text, new_key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  nd constant bytea := session.proxy_key_digest(new_key);
  made bytea;
BEGIN
  made := session.key_digest(session.session_rotate(old_key));
  IF made IS NULL THEN
    RETURN NULL;
  END IF;
  UPDATE session.sessions s SET digest = nd WHERE s.digest = made;
  RETURN new_key;
END
$$;
COMMENT ON FUNCTION session.partition_rotate(text, text) IS
  'For the PL/Proxy proxy only: session_rotate, the new key being new_key (made by the proxy on '
  'the same partition). Returns new_key, or NULL when old_key is unknown, cleared or expired. '
  'Errors: 22023 new_key not 32-1024 base64url characters; 23505 new_key exists.';

-- session_write_batch with the keys of generate elements given. The other elements go
-- to session_write_batch unchanged (its lock order, its 55P03 for busy rows); a generate element
-- only inserts a row under a new key, which no other element can name, so it runs apart, with the
-- checks and the row of a batched generate.
CREATE OR REPLACE FUNCTION session.partition_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
                                              versions bigint[] DEFAULT NULL)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := session.batch_length(kinds, keys, vals, expiries);
  cfg session.config;
  -- The elements other than generates, as write_digests takes them; their positions in the batch.
  rest integer[] := '{}'::integer[];
  r_kinds text[] := '{}'::text[];
  r_digests bytea[] := '{}'::bytea[];
  r_problems text[] := '{}'::text[];
  r_vals text[] := '{}'::text[];
  r_expiries bigint[] := '{}'::bigint[];
  r_versions bigint[] := '{}'::bigint[];
  made integer[] := '{}'::integer[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  chk record;
  r record;
  i integer;
  d bytea;
  t timestamptz;
  cap timestamptz;
BEGIN
  versions := session.batch_versions(versions, n);
  IF n = 0 THEN
    RETURN;
  END IF;
  kinds := kinds[array_lower(kinds, 1):array_upper(kinds, 1)];
  keys := keys[array_lower(keys, 1):array_upper(keys, 1)];
  vals := vals[array_lower(vals, 1):array_upper(vals, 1)];
  expiries := expiries[array_lower(expiries, 1):array_upper(expiries, 1)];
  SELECT * INTO STRICT cfg FROM session.config;
  FOR i IN 1 .. n LOOP
    IF kinds[i] IS NOT DISTINCT FROM 'generate' THEN
      made := made || i;
    ELSE
      rest := rest || i;
      r_kinds := r_kinds || kinds[i];
      r_digests := r_digests || session.key_digest(keys[i]);
      r_problems := r_problems || coalesce(session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes),
                                           CASE WHEN kinds[i] = 'merge' OR versions[i] IS NOT NULL
                                                THEN session.element_problem(kinds[i], vals[i], versions[i]) END);
      r_vals := r_vals || vals[i];
      r_expiries := r_expiries || expiries[i];
      r_versions := r_versions || versions[i];
    END IF;
  END LOOP;
  IF cardinality(rest) > 0 THEN
    FOR r IN SELECT * FROM session.write_digests(r_kinds, r_digests, r_problems, r_vals, r_expiries, r_versions,
                                                  cfg.default_period, cfg.absolute_lifetime, cfg.max_value_bytes) LOOP
      i := rest[r.ord];
      states[i] := r.sqlstate;
      messages[i] := r.message;
      oks[i] := r.ok;
    END LOOP;
  END IF;
  FOREACH i IN ARRAY made LOOP
    chk := session.write_check('generate', NULL, vals[i], expiries[i], cfg.max_value_bytes);
    IF chk.state IS NOT NULL THEN
      states[i] := chk.state;
      messages[i] := chk.message;
      CONTINUE;
    END IF;
    IF versions[i] IS NOT NULL THEN
      states[i] := '22023';
      messages[i] := 'only set, put and merge take a version';
      CONTINUE;
    END IF;
    d := session.proxy_key_digest(keys[i]);
    t := clock_timestamp();
    cap := t + make_interval(secs => cfg.absolute_lifetime);
    INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at)
    VALUES (d, least(t + make_interval(secs => coalesce(expiries[i], cfg.default_period)), cap), vals[i], t, t, cap);
    oks[i] := true;
  END LOOP;
  -- The keys of the generates go out one row at a time: a statement would be planned with them.
  FOR i IN 1 .. n LOOP
    ord := i;
    sqlstate := states[i];
    message := messages[i];
    ok := oks[i];
    key := CASE WHEN oks[i] AND kinds[i] IS NOT DISTINCT FROM 'generate' THEN keys[i] END;
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[], bigint[]) IS
  'For the PL/Proxy proxy only: session_write_batch for the elements of one partition, where a '
  'generate element carries the key the proxy made for it (returned in key when stored). Results '
  'and errors as in session_write_batch; 22023 (the whole call) for a generate key not 32-1024 '
  'base64url characters, 23505 if it exists.';

-- ---------------------------------------------------------------- sql/schema/90_grants.sql

-- Who may call what. Nobody but the owner may call any function until granted here: the client
-- role (the application's) gets the data calls, the admin role the global ones (an app role could
-- set a 1 s default period and log everyone out), the proxy role what a PL/Proxy proxy forwards.

-- The one list of what the client and admin roles may call: a step that adds a function adds it
-- here and runs it, so that what a DBA runs by hand (see below) always grants the current list.
-- Not SECURITY DEFINER: only the owner or a superuser may grant.
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
    'session.session_set(text, text, bigint, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint, bigint), session.session_merge(text, jsonb, text[], bigint, bigint), '
    'session.session_clear(text), session.session_count(), session.session_default_period(), '
    'session.session_set_subject(text, text, text), session.session_list(text, integer), '
    'session.session_revoke(text, text), session.session_revoke_handle(text, uuid), '
    'session.session_rotate(text), session.session_absolute_lifetime(), '
    'session.session_write_batch(text[], text[], text[], bigint[], bigint[]), session.session_get_batch(text[]) TO %I',
    cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count(), '
    'session.session_set_absolute_lifetime(bigint), session.session_absolute_lifetime() TO %I', cfg.admin_role);
END
$$;

-- ROUTINES: functions and procedures (session_purge_job). Every one is the owner's alone until granted.
REVOKE ALL ON ALL ROUTINES IN SCHEMA session FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA session FROM PUBLIC;

-- The role names come from the session_postgresql.client_role and .admin_role settings (the
-- runners set them); the roles are created if this role may, else a WARNING says what a DBA runs.
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

-- With the store spread over several databases, the proxy makes the key of a new session itself,
-- because the key decides the partition; the partition then only stores it. session_generate
-- cannot do that (it makes its own key) and session_put refuses a session without a value, so
-- the proxy calls session.partition_generate, granted to a proxy role only: never to the client role,
-- which must not choose the keys of new sessions. The same goes for the new key of a rotation
-- (partition_rotate: the proxy picks one on the old key's partition) and for generate elements of
-- batched writes (partition_write_batch).
--
-- The proxy role (default session_proxy with the default role pair, else <client role>_proxy;
-- chosen with the session_postgresql.proxy_role setting) is a member of the client and admin
-- roles, so the one login the proxy uses may make every call it forwards. An existing role of that
-- name is used only if it carries the comment 'session-postgresql proxy role' (set when an install
-- creates it): otherwise it may be another database's role, and 42710 refuses it.
DO $$
DECLARE
  cfg constant session.config := (SELECT c FROM session.config c);
  proxy constant text := coalesce(nullif(pg_catalog.current_setting('session_postgresql.proxy_role', true), ''),
                                  CASE WHEN cfg.client_role OPERATOR(pg_catalog.=) 'session_client' THEN 'session_proxy'
                                       ELSE pg_catalog.left(cfg.client_role::text, 57) OPERATOR(pg_catalog.||) '_proxy' END);
  can_create constant boolean := (SELECT r.rolsuper OR r.rolcreaterole FROM pg_catalog.pg_roles r
                                   WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
  grants constant text := pg_catalog.format(
    'GRANT USAGE ON SCHEMA session TO %1$I; '
    'GRANT EXECUTE ON FUNCTION session.partition_generate(text, bigint, text, text, text, bigint), '
    'session.partition_rotate(text, text), session.partition_write_batch(text[], text[], text[], bigint[], bigint[]) TO %1$I;', proxy);
  membership constant text := pg_catalog.format('GRANT %2$I, %3$I TO %1$I;', proxy, cfg.client_role, cfg.admin_role);
  marker constant text := 'session-postgresql proxy role';
  mark constant text := pg_catalog.format('COMMENT ON ROLE %I IS %L;', proxy, marker);
  existing oid;
BEGIN
  IF proxy OPERATOR(pg_catalog.!~) '^[a-z_][a-z0-9_$]{0,62}$' OR proxy OPERATOR(pg_catalog.~~) 'pg\_%'
     OR proxy OPERATOR(pg_catalog.=) 'public' OR proxy OPERATOR(pg_catalog.=) ANY (ARRAY[cfg.client_role, cfg.admin_role]::text[]) THEN
    RAISE EXCEPTION 'session-postgresql: proxy role name % is not a plain lower-case identifier distinct from the client and admin roles', proxy
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET proxy_role = proxy::name;
  existing := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) proxy);
  -- Roles are per server: the name may be another database's role (its client role, say). Only a
  -- role marked as a proxy role, by an install like this one or by a DBA, gets this database's rights.
  IF existing IS NOT NULL AND pg_catalog.shobj_description(existing, 'pg_authid') IS DISTINCT FROM marker THEN
    RAISE EXCEPTION 'session-postgresql: role % exists and was not created by session-postgresql as a proxy role', proxy
      USING ERRCODE = 'duplicate_object',
            HINT = 'Name another proxy role (session-pg scaleout migrate --proxy-role NAME), or, if this role is meant to be '
                   OPERATOR(pg_catalog.||) 'the proxy''s, run: ' OPERATOR(pg_catalog.||) mark;
  END IF;
  IF existing IS NULL THEN
    IF NOT can_create THEN
      RAISE WARNING 'session-postgresql: % may not create roles; a DBA must create the proxy role before a PL/Proxy proxy can use this database', CURRENT_USER
        USING HINT = 'A DBA must run: ' OPERATOR(pg_catalog.||) pg_catalog.format('CREATE ROLE %I NOLOGIN; ', proxy)
                     OPERATOR(pg_catalog.||) mark OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) grants
                     OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) membership;
      RETURN;
    END IF;
    EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', proxy);
    EXECUTE mark;
  END IF;
  EXECUTE grants;
  -- Role membership is cluster-wide: granted once, by a role that may.
  IF NOT (pg_catalog.pg_has_role(proxy, cfg.client_role, 'MEMBER') AND pg_catalog.pg_has_role(proxy, cfg.admin_role, 'MEMBER')) THEN
    IF can_create THEN
      EXECUTE membership;
    ELSE
      RAISE WARNING 'session-postgresql: % may not grant role membership; the proxy role cannot make the calls it forwards yet', CURRENT_USER
        USING HINT = 'A DBA must run: ' OPERATOR(pg_catalog.||) membership;
    END IF;
  END IF;
END
$$;
