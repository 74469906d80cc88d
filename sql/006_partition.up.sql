-- session-postgresql 006: what a PL/Proxy proxy needs from each partition (docs/scale-out.md).
--
-- With the store spread over several databases, the proxy makes the key of a new session itself,
-- because the key decides the partition; the partition then only stores it. session_generate
-- cannot do that (it makes its own key) and session_put refuses a session without a value, so
-- this adds session.partition_generate, granted to a proxy role only: never to the client role,
-- which must not choose the keys of new sessions.
--
-- The proxy role (default session_proxy with the default role pair, else <client role>_proxy;
-- chosen with the session_postgresql.proxy_role setting) is a member of the client and admin
-- roles, so the one login the proxy uses may make every call it forwards.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

ALTER TABLE session.config ADD COLUMN proxy_role name;

CREATE FUNCTION session.partition_generate(key text, expiry bigint DEFAULT NULL, value text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  -- The proxy's keys are session_generate's: 64 base64url characters. The shape check keeps a
  -- mistaken caller from storing a key that session_put would refuse.
  IF key IS NULL OR octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$' THEN
    RAISE EXCEPTION 'partition_generate only accepts keys of 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A plain INSERT, as in session_generate: a duplicate key (366 random bits) is a 23505.
  INSERT INTO session.sessions (digest, expires_at, value)
  VALUES (d, session.expiry_at(partition_generate.value, expiry, t), partition_generate.value);
END
$$;
COMMENT ON FUNCTION session.partition_generate(text, bigint, text) IS
  'For the PL/Proxy proxy only: creates a session under a key the proxy generated (its '
  'session_generate). expiry and value as in session_generate. Errors: 22023 key not 32-1024 '
  'base64url characters, or expiry out of range; 22001 value too large; 23505 key exists.';
REVOKE ALL ON FUNCTION session.partition_generate(text, bigint, text) FROM PUBLIC;

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
    'GRANT EXECUTE ON FUNCTION session.partition_generate(text, bigint, text) TO %1$I;', proxy);
  membership constant text := pg_catalog.format('GRANT %2$I, %3$I TO %1$I;', proxy, cfg.client_role, cfg.admin_role);
BEGIN
  IF proxy OPERATOR(pg_catalog.!~) '^[a-z_][a-z0-9_$]{0,62}$' OR proxy OPERATOR(pg_catalog.~~) 'pg\_%'
     OR proxy OPERATOR(pg_catalog.=) 'public' OR proxy OPERATOR(pg_catalog.=) ANY (ARRAY[cfg.client_role, cfg.admin_role]::text[]) THEN
    RAISE EXCEPTION 'session-postgresql: proxy role name % is not a plain lower-case identifier distinct from the client and admin roles', proxy
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET proxy_role = proxy::name;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) proxy) THEN
    IF NOT can_create THEN
      RAISE WARNING 'session-postgresql: % may not create roles; a DBA must create the proxy role before a PL/Proxy proxy can use this database', CURRENT_USER
        USING HINT = 'A DBA must run: ' OPERATOR(pg_catalog.||) pg_catalog.format('CREATE ROLE %I NOLOGIN; ', proxy)
                     OPERATOR(pg_catalog.||) grants OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) membership;
      RETURN;
    END IF;
    EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', proxy);
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
