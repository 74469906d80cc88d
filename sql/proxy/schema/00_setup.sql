-- A PL/Proxy proxy database (docs/scale-out.md). It holds no session. Its schema session has the
-- same public functions as a partition's, implemented in PL/Proxy: a call with a key runs on the
-- partition the key hashes to, a call without one runs on every partition and the proxy adds the
-- results up. The partitions are ordinary installs of session-postgresql (their migrations, their
-- pg_cron purge). The cluster itself (a foreign server session_partitions with one option pN per
-- partition, and one user mapping) is deployment data: set_partitions() and set_credentials()
-- (10_routing.sql) write it.

CREATE EXTENSION IF NOT EXISTS plproxy;

CREATE SCHEMA session;

COMMENT ON SCHEMA session IS
  'session-postgresql, through a PL/Proxy proxy: call the session_* functions. Nothing is stored here.';

-- Private: the PL/Proxy functions and their helpers. Only the owner uses it.
CREATE SCHEMA session_proxy;

COMMENT ON SCHEMA session_proxy IS 'Private. PL/Proxy routing for schema session; not an interface.';

-- The roles this proxy grants to, read by grant_public() (as session.config on partitions).
CREATE TABLE session_proxy.config (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  client_role name NOT NULL,
  admin_role  name NOT NULL
);

COMMENT ON TABLE session_proxy.config IS 'Private. The client and admin roles the proxy functions are granted to.';

-- The roles, as on a partition: created when the installer may, else a DBA is told.
DO $$
DECLARE
  client constant text := coalesce(nullif(pg_catalog.current_setting('session_postgresql.client_role', true), ''), 'session_client');
  admin constant text := coalesce(nullif(pg_catalog.current_setting('session_postgresql.admin_role', true), ''), 'session_admin');
  can_create constant boolean := (SELECT r.rolsuper OR r.rolcreaterole FROM pg_catalog.pg_roles r
                                   WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY[client, admin] LOOP
    IF role_name OPERATOR(pg_catalog.!~) '^[a-z_][a-z0-9_$]{0,62}$' OR role_name OPERATOR(pg_catalog.~~) 'pg\_%'
       OR role_name OPERATOR(pg_catalog.=) 'public' THEN
      RAISE EXCEPTION 'session-postgresql: role name % is not a plain lower-case identifier', role_name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
      IF NOT can_create THEN
        RAISE EXCEPTION 'session-postgresql: role % does not exist and % may not create it', role_name, CURRENT_USER
          USING ERRCODE = 'insufficient_privilege', HINT = pg_catalog.format('A DBA must run: CREATE ROLE %I NOLOGIN;', role_name);
      END IF;
      EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
    END IF;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA session TO %I', role_name);
  END LOOP;
  IF client OPERATOR(pg_catalog.=) admin THEN
    RAISE EXCEPTION 'session-postgresql: the client and admin roles must differ' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO session_proxy.config (client_role, admin_role) VALUES (client::name, admin::name);
END
$$;
