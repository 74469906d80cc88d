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
