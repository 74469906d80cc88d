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
