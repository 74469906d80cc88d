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
