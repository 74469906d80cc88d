-- Private helper. A SQL function without SECURITY DEFINER or SET, so the planner inlines it into
-- the callers' queries (no call overhead on the hot path). NULL and over-long keys give NULL, which
-- matches no row: such a key is simply not found, and costs no hashing of megabytes.
CREATE OR REPLACE FUNCTION session.key_digest(key text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.octet_length(key) OPERATOR(pg_catalog.<=) 1024
            THEN pg_catalog.sha256(pg_catalog.convert_to(key, 'UTF8')) END;

-- Private helper replacing write_expiry: the same rules, at a clock time the caller read once.
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
