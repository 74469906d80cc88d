-- GENERATED from sql/proxy/schema/ by `npm run build:sql`: do not edit. Change the area file instead.
-- session-postgresql 1.0 baseline: the whole schema in one step. Frozen once 1.0.0 is published:
-- from then on a change is an edit of its area file plus a new small frozen step
-- (sql/proxy/steps/002_<what>.sql), see CONTRIBUTING.md.

-- Whatever the runner does: no name below may resolve to another role's object.
SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------- sql/proxy/schema/00_setup.sql

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

-- ---------------------------------------------------------------- sql/proxy/schema/10_routing.sql

-- The routing contract, and the only thing the proxy and the partitions must agree on is that each
-- key always goes to the same partition: hashtext on the proxy, the partition number being the
-- low bits (PL/Proxy masks with count - 1). A NULL key (never found, or refused by session_put)
-- must still go somewhere: partition 0, which answers as any partition would.
CREATE OR REPLACE FUNCTION session_proxy.key_hash(key text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(pg_catalog.hashtext(key), 0);

-- session_generate's key, made on the proxy because the key decides the partition: three
-- version-4 UUIDs from pg_strong_random, 366 random bits, 64 base64url characters (as session.new_key() on a partition).
CREATE OR REPLACE FUNCTION session_proxy.new_key() RETURNS text
LANGUAGE sql VOLATILE
RETURN pg_catalog.translate(pg_catalog.encode(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
         OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
         OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 'base64'), '+/=', '-_');

-- PL/Proxy reports an unreachable partition as XX000 (internal_error) with libpq's text. Every
-- public function catches internal_error and calls this, which turns those into 08006
-- (connection_failure: `connection` in the TypeScript client) and returns for anything else, which
-- the caller then re-raises unchanged. Remote errors keep their own SQLSTATE and are not caught.
CREATE OR REPLACE FUNCTION session_proxy.unreachable(message text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF message ~ '^PL/Proxy function [^:]+: (\[[^]]*\] \w+: |connect timeout to: |query timeout)'
     OR message ~ '^[^:]+: \[[^]]*\] REMOTE [A-Z]+: (server closed the connection|could not (send|receive) data|no connection to the server|terminating connection|SSL SYSCALL error|connection to server)' THEN
    RAISE EXCEPTION 'session-postgresql: a partition is unreachable: %', message
      USING ERRCODE = 'connection_failure',
            HINT = 'Sessions on the other partitions are not affected. Retry when the partition is back.';
  END IF;
END
$$;

-- Defines session_proxy.<name>(args) in PL/Proxy: it runs session.<name> with the same arguments
-- on the partitions run_on selects (an expression of the arguments, a partition number, or ALL).
-- split: array arguments PL/Proxy splits by partition, run_on then being evaluated per element
-- (for batch calls: each partition gets the elements whose keys it holds, all in parallel).
CREATE OR REPLACE FUNCTION session_proxy.remote(name text, args text[], returns text, run_on text, split text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  EXECUTE format('CREATE OR REPLACE FUNCTION session_proxy.%I(%s) RETURNS %s LANGUAGE plproxy AS %L',
                 name, array_to_string(args, ', '), returns,
                 format('CLUSTER %L; %sRUN ON %s; TARGET session.%I;', 'session_partitions',
                        CASE WHEN split IS NULL THEN '' ELSE format('SPLIT %s; ', array_to_string(split, ', ')) END,
                        run_on, name));
  REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session_proxy FROM PUBLIC;
END
$$;

-- A new key that lives on the same partition as `key`: for a call that replaces a key by a new
-- one (rotation), so that one partition can do it in one transaction. About N draws for N
-- partitions; the key keeps 366 random bits, of which the partition fixes log2(N).
CREATE OR REPLACE FUNCTION session_proxy.new_key_like(key text) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  mask constant integer := session_proxy.partition_count() - 1;
  target constant integer := session_proxy.key_hash(key) & mask;
  candidate text;
BEGIN
  LOOP
    candidate := session_proxy.new_key();
    EXIT WHEN (session_proxy.key_hash(candidate) & mask) = target;
  END LOOP;
  RETURN candidate;
END
$$;

-- Grants session.<name>(args) to the proxy's client and/or admin role, as on the partitions.
CREATE OR REPLACE FUNCTION session_proxy.grant_public(name text, args text[], grant_to text[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg constant session_proxy.config := (SELECT c FROM session_proxy.config c);
  -- GRANT takes argument names but no defaults.
  signature constant text := (SELECT string_agg(regexp_replace(a, '\s+DEFAULT\s.*$', '', 'i'), ', ')
                                FROM unnest(args) a WHERE a !~* '^\s*OUT\s');
  who text;
BEGIN
  REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM PUBLIC;
  FOREACH who IN ARRAY grant_to LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION session.%I(%s) TO %I', name, signature,
                   CASE who WHEN 'client' THEN cfg.client_role WHEN 'admin' THEN cfg.admin_role
                   ELSE NULL END);
  END LOOP;
END
$$;

-- The usual case: a public function whose calls go to one partition (run_on: the key's hash, or a
-- fixed partition number). Defines session_proxy.<name> (PL/Proxy) and session.<name>, a SECURITY
-- DEFINER wrapper that calls it with the owner's user mapping and maps an unreachable partition to
-- 08006; grants it; comments it.
CREATE OR REPLACE FUNCTION session_proxy.route(name text, args text[], returns text, run_on text, grant_to text[], comment text)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  call constant text := format('session_proxy.%I(%s)', name,
                               (SELECT coalesce(string_agg('$' || i, ', ' ORDER BY i), '') FROM generate_series(1, cardinality(args)) i));
  body text;
BEGIN
  IF EXISTS (SELECT FROM unnest(args) a WHERE a ~* '^\s*(OUT|INOUT|VARIADIC)\s') THEN
    RAISE EXCEPTION 'session_proxy.route takes IN arguments only' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM session_proxy.remote(name, args, returns, run_on);
  body := CASE
    WHEN returns ~* '^\s*(SETOF|TABLE)\M' THEN format('RETURN QUERY SELECT * FROM %s;', call)
    WHEN returns ~* '^\s*void\s*$' THEN format('PERFORM %s;', call)
    ELSE format('RETURN %s;', call) END;
  EXECUTE format($f$CREATE OR REPLACE FUNCTION session.%I(%s) RETURNS %s
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS %L$f$, name, array_to_string(args, ', '), returns,
    format(E'BEGIN\n  %s\nEXCEPTION WHEN internal_error THEN\n  PERFORM session_proxy.unreachable(SQLERRM);\n  RAISE;\nEND', body));
  PERFORM session_proxy.grant_public(name, args, grant_to);
  EXECUTE format('COMMENT ON FUNCTION session.%I(%s) IS %L', name,
                 (SELECT string_agg(regexp_replace(a, '\s+DEFAULT\s.*$', '', 'i'), ', ') FROM unnest(args) a),
                 comment || ' Through the proxy: 08006 when the partition is unreachable.');
END
$$;

-- The partitions, in order: libpq conninfo strings without credentials (those live in the user
-- mapping, see set_credentials). query_timeout: PL/Proxy gives up on a partition's answer after
-- this many whole seconds (0: never). The count is fixed once set: changing it would move almost
-- every key to another partition.
CREATE OR REPLACE FUNCTION session_proxy.set_partitions(conninfos text[], query_timeout integer)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := coalesce(cardinality(conninfos), 0);
  old constant integer := session_proxy.partition_count();
  verb constant text := CASE WHEN old > 0 THEN 'SET ' ELSE '' END;
  options text;
BEGIN
  IF n < 1 OR (n & (n - 1)) <> 0 THEN
    RAISE EXCEPTION 'PL/Proxy needs a power of two partitions (1, 2, 4, 8, 16...), got %', n
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM session_proxy.check_conninfo(c) FROM unnest(conninfos) c;
  IF query_timeout IS NULL OR query_timeout < 0 THEN
    RAISE EXCEPTION 'query_timeout must be whole seconds >= 0' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF old > 0 AND old <> n THEN
    RAISE EXCEPTION 'this proxy has % partitions; changing the count to % would send most keys to another partition', old, n
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Grow by moving partitions to new servers (docs/scale-out.md); the count stays.';
  END IF;
  SELECT string_agg(format('%sp%s %L', verb, i - 1, conninfos[i]), ', ' ORDER BY i) INTO options
    FROM generate_series(1, n) i;
  options := options || format(', %squery_timeout %L', verb, query_timeout);
  IF old > 0 THEN
    EXECUTE format('ALTER SERVER session_partitions OPTIONS (%s)', options);
  ELSE
    EXECUTE format('CREATE SERVER session_partitions FOREIGN DATA WRAPPER plproxy OPTIONS (%s)', options);
  END IF;
END
$$;

-- Points one partition at another database (the last step of moving it, docs/scale-out.md).
-- Every backend of the proxy picks the change up at its next call.
CREATE OR REPLACE FUNCTION session_proxy.set_partition(part integer, conninfo text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF part IS NULL OR part < 0 OR part >= session_proxy.partition_count() THEN
    RAISE EXCEPTION 'no partition %', part USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM session_proxy.check_conninfo(conninfo);
  EXECUTE format('ALTER SERVER session_partitions OPTIONS (SET p%s %L)', part, conninfo);
END
$$;

-- The login the proxy uses on every partition (PL/Proxy has one user mapping per cluster). It is
-- mapped for the owner of schema session, the role the SECURITY DEFINER functions run as; only that
-- role and superusers can read it back (pg_user_mappings).
CREATE OR REPLACE FUNCTION session_proxy.set_credentials(login text, password text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  owner constant name := (SELECT r.rolname FROM pg_roles r, pg_namespace n WHERE n.nspname = 'session' AND r.oid = n.nspowner);
BEGIN
  IF login IS NULL OR login = '' THEN
    RAISE EXCEPTION 'the partition login must be given' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM pg_user_mappings m WHERE m.srvname = 'session_partitions' AND m.usename = owner) THEN
    EXECUTE format('DROP USER MAPPING FOR %I SERVER session_partitions', owner);
  END IF;
  EXECUTE format('CREATE USER MAPPING FOR %I SERVER session_partitions OPTIONS (user %L%s)', owner, login,
                 CASE WHEN password IS NULL THEN '' ELSE format(', password %L', password) END);
EXCEPTION WHEN OTHERS THEN
  -- Re-raised from here, so that no error context quotes the statement that holds the password.
  RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
END
$$;

CREATE OR REPLACE FUNCTION session_proxy.partition_count() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT count(*)::integer FROM pg_foreign_server s, unnest(s.srvoptions) o
         WHERE s.srvname = 'session_partitions' AND o ~ '^p[0-9]+=');

-- The partitions as configured: number and conninfo (which holds no credentials).
CREATE OR REPLACE FUNCTION session_proxy.partitions(OUT part integer, OUT conninfo text) RETURNS SETOF record
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT substring(o FROM '^p([0-9]+)=')::integer, substring(o FROM '^p[0-9]+=(.*)$')
    FROM pg_foreign_server s, unnest(s.srvoptions) o
   WHERE s.srvname = 'session_partitions' AND o ~ '^p[0-9]+='
   ORDER BY 1;
END;

-- One partition's statistics (RUN ON a number: PL/Proxy takes it as the hash, masked to a partition).
CREATE OR REPLACE FUNCTION session_proxy.partition_stats(part integer, OUT database text, OUT live bigint,
                                              OUT expired bigint, OUT table_bytes bigint,
                                              OUT default_period bigint, OUT max_value_bytes integer)
RETURNS SETOF record
LANGUAGE plproxy
AS $$
  CLUSTER 'session_partitions';
  RUN ON part;
  SELECT pg_catalog.current_database()::text AS database, s.live, s.expired, s.table_bytes,
         s.default_period, s.max_value_bytes FROM session.session_stats() s;
$$;

-- Which of `roles` may call a partition's functions (CONNECT, USAGE on schema session and EXECUTE
-- on one of its functions), and which server it is on. On the proxy's server, such a role is the
-- proxy's own, and its logins could bypass the proxy (a key they make there may belong to another
-- partition and be invisible through the proxy).
CREATE OR REPLACE FUNCTION session_proxy.partition_callers(part integer, roles text[], OUT system_identifier text, OUT callers text[])
RETURNS SETOF record
LANGUAGE plproxy
AS $$
  CLUSTER 'session_partitions';
  RUN ON part;
  SELECT (pg_catalog.pg_control_system()).system_identifier::text AS system_identifier,
         ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r
                WHERE r.rolname OPERATOR(pg_catalog.=) ANY (roles)
                  AND pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'CONNECT')
                  AND pg_catalog.has_schema_privilege(r.oid, 'session', 'USAGE')
                  AND EXISTS (SELECT FROM pg_catalog.pg_proc f
                               WHERE f.pronamespace OPERATOR(pg_catalog.=) 'session'::pg_catalog.regnamespace
                                 AND pg_catalog.has_function_privilege(r.oid, f.oid, 'EXECUTE'))
                ORDER BY 1) AS callers;
$$;

-- Every partition's state for `session-pg scaleout status`; a partition that cannot be reached has
-- its error instead of figures. direct_callers: the proxy's client and admin roles that may call
-- the partition's functions directly, when it is on the proxy's server (empty: none; NULL: not
-- known).
CREATE OR REPLACE FUNCTION session_proxy.partition_status(OUT part integer, OUT conninfo text, OUT database text,
                                               OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
                                               OUT default_period bigint, OUT error text, OUT direct_callers text[])
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg constant session_proxy.config := (SELECT c FROM session_proxy.config c);
  here constant text := (pg_control_system()).system_identifier::text;
  p record;
  s record;
  a record;
BEGIN
  FOR p IN SELECT * FROM session_proxy.partitions() LOOP
    part := p.part;
    conninfo := p.conninfo;
    database := NULL; live := NULL; expired := NULL; table_bytes := NULL; default_period := NULL; error := NULL;
    direct_callers := NULL;
    BEGIN
      SELECT * INTO STRICT s FROM session_proxy.partition_stats(p.part);
      database := s.database; live := s.live; expired := s.expired; table_bytes := s.table_bytes;
      default_period := s.default_period;
      SELECT * INTO STRICT a FROM session_proxy.partition_callers(p.part, ARRAY[cfg.client_role, cfg.admin_role]::text[]);
      direct_callers := CASE WHEN a.system_identifier = here THEN a.callers ELSE '{}'::text[] END;
    EXCEPTION WHEN OTHERS THEN
      error := SQLSTATE || ' ' || SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session_proxy FROM PUBLIC;

REVOKE ALL ON ALL TABLES IN SCHEMA session_proxy FROM PUBLIC;

-- The partition's own statement (PL/Proxy's query, the key one of its parameters) is planned on the
-- partition: a partition conninfo must make that plan generic and keep a failing call's parameters
-- out of the partition's log, as session-pg scaleout install writes it. It still holds where the
-- partition is, never who connects (the user mapping does): PL/Proxy prints it in some errors.
CREATE OR REPLACE FUNCTION session_proxy.check_conninfo(conninfo text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF conninfo IS NULL OR conninfo !~ '\S' OR conninfo ~* '(^|\s)(user|password)\s*=' THEN
    RAISE EXCEPTION 'a partition conninfo must be non-empty and hold no user or password (those go to the user mapping)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF conninfo !~ '(^|\s)options\s*=\s*''[^'']*-c plan_cache_mode=force_generic_plan\M'
     OR conninfo !~ '(^|\s)options\s*=\s*''[^'']*-c log_parameter_max_length_on_error=0\M' THEN
    RAISE EXCEPTION 'a partition conninfo must set plan_cache_mode and log_parameter_max_length_on_error for the proxy''s connections'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Add options=''-c log_parameter_max_length_on_error=0 -c plan_cache_mode=force_generic_plan'' '
                   '(session-pg scaleout install does): otherwise a partition plans each call with its key as a literal.';
  END IF;
END
$$;

-- ---------------------------------------------------------------- sql/proxy/schema/20_sessions.sql

-- The public API of a partition, routed. Same signatures, results and SQLSTATEs as on one
-- database, plus 08006 when a partition cannot be reached. Differences, all documented in
-- docs/scale-out.md: every call commits on its partition at once (a ROLLBACK on the proxy does not
-- undo it); count, purge, stats and set_default_period visit every partition in parallel; purge
-- deletes up to batch_size rows per partition; session_default_period reads partition 0.

-- The default period is the same on every partition (session_set_default_period sets them all).
SELECT session_proxy.route('session_default_period', ARRAY[]::text[], 'bigint', '0', ARRAY['client', 'admin'],
  'The period in seconds given to sessions generated or set without an expiry (604800 after install), '
  'as partition 0 has it.');

-- Calls without a key: every partition, in parallel; the proxy adds up.
SELECT session_proxy.remote('session_count', ARRAY[]::text[], 'SETOF bigint', 'ALL');

CREATE OR REPLACE FUNCTION session.session_count() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT sum(n)::bigint FROM session_proxy.session_count() n);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_count', ARRAY[]::text[], ARRAY['client', 'admin']);

COMMENT ON FUNCTION session.session_count() IS
  'The number of live (unexpired) sessions on all partitions. Through the proxy: 08006 when a '
  'partition is unreachable.';

SELECT session_proxy.remote('session_purge', ARRAY['batch_size integer'], 'SETOF bigint', 'ALL');

CREATE OR REPLACE FUNCTION session.session_purge(batch_size integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT sum(n)::bigint FROM session_proxy.session_purge(batch_size) n);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_purge', ARRAY['batch_size integer'], ARRAY['admin']);

COMMENT ON FUNCTION session.session_purge(integer) IS
  'Deletes expired sessions on every partition (each partition about batch_size rows, in one short '
  'transaction of its own) and returns how many in all; call until it returns 0. Each partition''s '
  'pg_cron job normally does this. Errors: 22023 batch_size NULL or < 1. Through the proxy: 08006 '
  'when a partition is unreachable.';

-- Every partition validates the period (all raise the same 22023 for a bad one). A partition that
-- is down misses the change: run it again once the partition is back (stats shows a mismatch).
SELECT session_proxy.remote('session_set_default_period', ARRAY['period bigint'], 'SETOF void', 'ALL');

CREATE OR REPLACE FUNCTION session.session_set_default_period(period bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM session_proxy.session_set_default_period(period);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_set_default_period', ARRAY['period bigint'], ARRAY['admin']);

COMMENT ON FUNCTION session.session_set_default_period(bigint) IS
  'Admin role. Sets the default period on every partition for sessions generated or set from now on; '
  'existing sessions keep their expiry. Errors: 22023 NULL, non-positive or more than 3155760000. '
  'Through the proxy: 08006 when a partition is unreachable (it misses the change: call again).';

SELECT session_proxy.remote('session_stats',
  ARRAY['OUT live bigint', 'OUT expired bigint', 'OUT table_bytes bigint', 'OUT index_bytes bigint',
        'OUT default_period bigint', 'OUT max_value_bytes integer'], 'SETOF record', 'ALL');

CREATE OR REPLACE FUNCTION session.session_stats(OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
                                      OUT index_bytes bigint, OUT default_period bigint,
                                      OUT max_value_bytes integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  periods bigint;
BEGIN
  -- The settings should agree; if a partition missed a change, the smallest value is shown and a
  -- warning says so.
  SELECT sum(s.live)::bigint, sum(s.expired)::bigint, sum(s.table_bytes)::bigint, sum(s.index_bytes)::bigint,
         min(s.default_period), min(s.max_value_bytes),
         count(DISTINCT s.default_period) + count(DISTINCT s.max_value_bytes) - 1
    INTO live, expired, table_bytes, index_bytes, default_period, max_value_bytes, periods
    FROM session_proxy.session_stats() s;
  IF periods > 1 THEN
    RAISE WARNING 'session-postgresql: the partitions disagree on default_period or max_value_bytes; the smallest is shown'
      USING HINT = 'Call session_set_default_period again; session-pg scaleout status shows each partition.';
  END IF;
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_stats', ARRAY[]::text[], ARRAY['admin']);

COMMENT ON FUNCTION session.session_stats() IS
  'For the admin role: live and expired (not yet purged) sessions and table and index bytes, summed '
  'over the partitions, and the settings. Scans every table: not for hot paths. Through the proxy: '
  '08006 when a partition is unreachable.';

SELECT session_proxy.remote('partition_generate',
  ARRAY['key text', 'expiry bigint', 'value text', 'subject text', 'label text', 'lifetime bigint'], 'void',
  'session_proxy.key_hash(key)');

-- Calls with a key: one partition, the key's.
SELECT session_proxy.route('session_get', ARRAY['key text'], 'TABLE (value text, period bigint, version bigint)',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'No row: not found (unknown, cleared or expired). One row with NULL value: found, not set. '
  'Otherwise the value, the remaining whole seconds (>= 0) and the version, which every write of '
  'the value changes (pass it as if_version to a conditional write). A NULL key is not found.');

ALTER FUNCTION session.session_get(text) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_set',
  ARRAY['key text', 'value text', 'expiry bigint DEFAULT NULL', 'if_version bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Replaces the value of a live session and restarts its expiry (NULL = default period). Returns '
  'false and creates nothing when the key is unknown, cleared or expired. if_version: write only '
  'if the session is still at this version (from session_get; NULL = unconditional). Errors: '
  '22004 NULL value; 22023 expiry out of range; 22001 value too large; SP001 the version has '
  'moved (nothing written).');

ALTER FUNCTION session.session_set(text, text, bigint, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_touch', ARRAY['key text', 'expiry bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Restarts the expiry of a live session (NULL = default period) without writing its value. Returns '
  'false, creating nothing, when the key is unknown, cleared or expired. Errors: 22023 expiry out of range.');

ALTER FUNCTION session.session_touch(text, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_put',
  ARRAY['key text', 'value text', 'expiry bigint DEFAULT NULL', 'if_version bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Creates or replaces the session with this key (for frameworks that make their own ids, and only '
  'for an id just made). Returns false, storing nothing, when the key belongs to an expired session '
  'not yet purged or to a cleared one. if_version (NULL = unconditional): replace only a live '
  'session still at this version, never create one (false when there is none). Errors: 22004 NULL '
  'key or value; 22023 key not 32-1024 base64url characters, or expiry out of range; 22001 value '
  'too large; SP001 the version has moved (nothing written).');

ALTER FUNCTION session.session_put(text, text, bigint, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_merge',
  ARRAY['key text', 'set_fields jsonb', 'unset_fields text[] DEFAULT NULL', 'expiry bigint DEFAULT NULL',
        'if_version bigint DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Changes top-level fields of the JSON object a live session holds, in one statement: removes the '
  'fields named in unset_fields, then sets those of set_fields (a JSON object; NULL = none), and '
  'restarts the expiry as session_set does (NULL = default period). Returns false and creates '
  'nothing when the key is unknown, cleared or expired. if_version: as in session_set. Errors: '
  '22023 set_fields not an object, expiry out of range; 22004 NULL in unset_fields; 22001 merged '
  'value too large; SP001 the version has moved; SP002 the session is not set or its value is not '
  'a JSON object. Nothing is written on an error.');

ALTER FUNCTION session.session_merge(text, jsonb, text[], bigint, bigint) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.route('session_clear', ARRAY['key text'], 'void',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Ends a session. From the moment it returns, no call (get, set, touch, put) finds or writes the '
  'key again. Idempotent: unknown, expired or NULL keys are a no-op.');

ALTER FUNCTION session.session_clear(text) SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                         subject text DEFAULT NULL, label text DEFAULT NULL,
                                         lifetime bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_key constant text := session_proxy.new_key();
BEGIN
  PERFORM session_proxy.partition_generate(new_key, expiry, value, subject, label, lifetime);
  RETURN new_key;
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_generate',
  ARRAY['expiry bigint', 'value text', 'subject text', 'label text', 'lifetime bigint'], ARRAY['client']);

COMMENT ON FUNCTION session.session_generate(bigint, text, text, text, bigint) IS
  'Creates a session and returns its key (the only time the key is visible). expiry: seconds from '
  'now, NULL = default period, <= 0 = born expired. value: NULL = not set. subject: whose session '
  '(NULL = anonymous), label: a name for it in lists (ignored without a subject). lifetime: seconds '
  'after which the session ends however often it is extended (NULL = the configured absolute '
  'lifetime, if any). Errors: 22023 expiry or lifetime out of range, empty subject; 22001 value '
  'larger than max_value_bytes, subject or label over 256 bytes. Through the proxy: 08006 when the '
  'key''s partition is unreachable.';

ALTER FUNCTION session.session_generate(bigint, text, text, text, bigint) SET plan_cache_mode = force_generic_plan;

-- ---------------------------------------------------------------- sql/proxy/schema/30_subjects.sql

-- The absolute lifetime is the same on every partition (session_set_absolute_lifetime sets them all).
SELECT session_proxy.route('session_absolute_lifetime', ARRAY[]::text[], 'bigint', '0', ARRAY['client', 'admin'],
  'The absolute lifetime in seconds given to new sessions, NULL for none, as partition 0 has it. No errors.');

-- session_rotate: the new key is made here, on the old key's partition, which does the rotation.
SELECT session_proxy.remote('partition_rotate', ARRAY['old_key text', 'new_key text'], 'text',
  'session_proxy.key_hash(old_key)');

-- Calls over a subject: its sessions are on any partition. Each partition answers for its own
-- under the subject's advisory lock (so a rotation there cannot escape a revoke); the proxy merges.
SELECT session_proxy.remote('session_list', ARRAY['subject text', 'max_sessions integer'],
  'TABLE (handle uuid, created_at timestamptz, written_at timestamptz, expires_at timestamptz, label text)', 'ALL');

CREATE OR REPLACE FUNCTION session.session_list(subject text, max_sessions integer DEFAULT 100)
RETURNS TABLE (handle uuid, created_at timestamptz, written_at timestamptz, expires_at timestamptz, label text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Every partition checks max_sessions (22023) and returns at most that many: the newest overall
  -- are among them. LIMIT 0 would not call the partitions at all, so not even for a bad max_sessions.
  RETURN QUERY SELECT l.handle, l.created_at, l.written_at, l.expires_at, l.label
                 FROM session_proxy.session_list(subject, max_sessions) l
                ORDER BY l.created_at DESC
                LIMIT greatest(max_sessions, 1);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_list', ARRAY['subject text', 'max_sessions integer'], ARRAY['client']);

COMMENT ON FUNCTION session.session_list(text, integer) IS
  'The live sessions of a subject, newest first, at most max_sessions (default 100): a handle (not '
  'the key, and no way to use the session), when it was created and last written, when it expires, '
  'and its label. A NULL subject lists nothing. Errors: 22023 max_sessions outside 1..10000. '
  'Through the proxy: every partition is asked; 08006 when one is unreachable.';

SELECT session_proxy.remote('session_revoke_handle', ARRAY['subject text', 'handle uuid'], 'SETOF boolean', 'ALL');

CREATE OR REPLACE FUNCTION session.session_revoke_handle(subject text, handle uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT coalesce(bool_or(b), false) FROM session_proxy.session_revoke_handle(subject, handle) b);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_revoke_handle', ARRAY['subject text', 'handle uuid'], ARRAY['client']);

COMMENT ON FUNCTION session.session_revoke_handle(text, uuid) IS
  'Ends the session with this handle if it belongs to subject (one user cannot end another''s). '
  'Returns whether a live session was ended. No errors. Through the proxy: every partition is '
  'asked; 08006 when one is unreachable.';

-- As session_set_default_period: a partition that is down misses the change; call it again.
SELECT session_proxy.remote('session_set_absolute_lifetime', ARRAY['lifetime bigint'], 'SETOF void', 'ALL');

CREATE OR REPLACE FUNCTION session.session_set_absolute_lifetime(lifetime bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM session_proxy.session_set_absolute_lifetime(lifetime);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_set_absolute_lifetime', ARRAY['lifetime bigint'], ARRAY['admin']);

COMMENT ON FUNCTION session.session_set_absolute_lifetime(bigint) IS
  'Admin role. Sets on every partition the lifetime of sessions created from now on, however often '
  'they are extended (NULL = none, the default). Existing sessions keep theirs. Errors: 22023 outside '
  '1..3155760000. Through the proxy: 08006 when a partition is unreachable (it misses the change: '
  'call again).';

-- Calls with a key: one partition, the key's.
SELECT session_proxy.route('session_set_subject', ARRAY['key text', 'subject text', 'label text DEFAULT NULL'], 'boolean',
  'session_proxy.key_hash(key)', ARRAY['client'],
  'Says whose session this is (e.g. at login), with an optional label (NULL keeps the current one). '
  'subject NULL makes it anonymous again. Returns false, creating nothing, when the key is unknown, '
  'cleared or expired. Errors: 22023 empty subject; 22001 subject or label over 256 bytes.');

ALTER FUNCTION session.session_set_subject(text, text, text) SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION session.session_rotate(key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN session_proxy.partition_rotate(key, session_proxy.new_key_like(key));
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_rotate', ARRAY['key text'], ARRAY['client']);

COMMENT ON FUNCTION session.session_rotate(text) IS
  'Gives a live session a new key (at login or a privilege change) and returns it: same value, '
  'expiry, subject, label and handle. From the moment it returns, the old key is not found and no '
  'write can revive it. NULL when the key is unknown, cleared or expired. No errors. Through the '
  'proxy: 08006 when the key''s partition is unreachable.';

ALTER FUNCTION session.session_rotate(text) SET plan_cache_mode = force_generic_plan;

SELECT session_proxy.remote('session_revoke', ARRAY['subject text', 'except_key text'], 'SETOF bigint', 'ALL');

CREATE OR REPLACE FUNCTION session.session_revoke(subject text, except_key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT sum(n)::bigint FROM session_proxy.session_revoke(subject, except_key) n);
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;

SELECT session_proxy.grant_public('session_revoke', ARRAY['subject text', 'except_key text'], ARRAY['client']);

COMMENT ON FUNCTION session.session_revoke(text, text) IS
  'Ends every live session of a subject (log out everywhere), except the one of except_key if given '
  '(this device), and returns how many it ended. No errors; a NULL subject ends nothing. Through '
  'the proxy: every partition revokes its own at once; 08006 when one is unreachable (the others '
  'have revoked theirs: call again once it is back).';

ALTER FUNCTION session.session_revoke(text, text) SET plan_cache_mode = force_generic_plan;

-- ---------------------------------------------------------------- sql/proxy/schema/40_batch.sql

-- Batched writes (group commit, what the TypeScript client sends when writes pile up). Keys of
-- generate elements are made here; the elements then go to their partitions, one call per
-- partition with that partition's elements, in partition order. Each partition applies its part
-- as session_write_batch does on one database (one transaction, one WAL flush). A partition that
-- fails (unreachable: 08006; or an error of its whole call, e.g. 55P03 when a lock waits too long)
-- fails only its own elements, with that SQLSTATE, and applied none of them; the other partitions'
-- elements keep their results. So a result is never an error for an element that was applied.
CREATE OR REPLACE FUNCTION session_proxy.partition_write_batch(part integer, kinds text[], keys text[], vals text[], expiries bigint[],
                                                    versions bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plproxy
AS $$
  CLUSTER 'session_partitions';
  RUN ON part;
  SELECT * FROM session.partition_write_batch(kinds, keys, vals, expiries, versions);
$$;
REVOKE ALL ON FUNCTION session_proxy.partition_write_batch(integer, text[], text[], text[], bigint[], bigint[]) FROM PUBLIC;

-- As on a partition: element i is the i-th of each array whatever its lower bound; more than one
-- dimension is refused (22023) before anything is sent.
CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
                                            versions bigint[] DEFAULT NULL)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  n constant integer := coalesce(cardinality(kinds), 0);
  mask constant integer := session_proxy.partition_count() - 1;
  sent text[] := '{}'::text[];
  parts integer[] := '{}'::integer[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  made text[] := '{}'::text[];
  mine integer[];
  p integer;
  i integer;
  r record;
  failed text;
  failure text;
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) OR array_ndims(kinds) > 1 OR array_ndims(keys) > 1
     OR array_ndims(vals) > 1 OR array_ndims(expiries) > 1
     OR (versions IS NOT NULL AND n > 0 AND (n <> cardinality(versions) OR array_ndims(versions) > 1)) THEN
    RAISE EXCEPTION 'kinds, keys, vals, expiries (and versions, unless NULL) must be one-dimensional arrays with the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF n = 0 THEN
    RETURN;
  END IF;
  kinds := kinds[array_lower(kinds, 1):array_upper(kinds, 1)];
  keys := keys[array_lower(keys, 1):array_upper(keys, 1)];
  vals := vals[array_lower(vals, 1):array_upper(vals, 1)];
  expiries := expiries[array_lower(expiries, 1):array_upper(expiries, 1)];
  versions := versions[array_lower(versions, 1):array_upper(versions, 1)];
  FOR i IN 1 .. n LOOP
    sent[i] := CASE WHEN kinds[i] = 'generate' THEN session_proxy.new_key() ELSE keys[i] END;
    parts[i] := session_proxy.key_hash(sent[i]) & mask;
  END LOOP;
  FOR p IN SELECT DISTINCT x FROM unnest(parts) x ORDER BY x LOOP
    mine := ARRAY(SELECT o FROM generate_series(1, n) o WHERE parts[o] = p ORDER BY o);
    BEGIN
      FOR r IN SELECT * FROM session_proxy.partition_write_batch(p,
                 ARRAY(SELECT kinds[o] FROM unnest(mine) o), ARRAY(SELECT sent[o] FROM unnest(mine) o),
                 ARRAY(SELECT vals[o] FROM unnest(mine) o), ARRAY(SELECT expiries[o] FROM unnest(mine) o),
                 CASE WHEN versions IS NOT NULL THEN ARRAY(SELECT versions[o] FROM unnest(mine) o) END) LOOP
        i := mine[r.ord];
        states[i] := r.sqlstate;
        messages[i] := r.message;
        oks[i] := r.ok;
        made[i] := r.key;
      END LOOP;
    EXCEPTION WHEN OTHERS THEN
      failed := SQLSTATE;
      failure := SQLERRM;
      IF failed = 'XX000' THEN
        -- Unreachable: 08006 for this partition's elements; any other internal error ends the call.
        BEGIN
          PERFORM session_proxy.unreachable(failure);
          RAISE;
        EXCEPTION WHEN connection_failure THEN
          failed := '08006';
          failure := SQLERRM;
        END;
      END IF;
      FOREACH i IN ARRAY mine LOOP
        states[i] := failed;
        messages[i] := failure;
        oks[i] := NULL;
        made[i] := NULL;
      END LOOP;
    END;
  END LOOP;
  -- The new keys go out one row at a time: a statement would be planned with them.
  FOR i IN 1 .. n LOOP
    ord := i;
    sqlstate := states[i];
    message := messages[i];
    ok := oks[i];
    key := made[i];
    RETURN NEXT;
  END LOOP;
END
$$;
SELECT session_proxy.grant_public('session_write_batch',
  ARRAY['kinds text[]', 'keys text[]', 'vals text[]', 'expiries bigint[]', 'versions bigint[]'], ARRAY['client']);
COMMENT ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[]) IS
  'Applies many generate, set, touch, put, merge and clear calls at once: element i is the i-th of '
  'kinds, keys, vals, expiries and versions (the if_version of a set, put or merge; a NULL array: '
  'all unconditional), whatever their lower bounds (a NULL array is empty); a merge''s vals[i] is '
  'a JSON object {"set": {...}, "unset": [...]}. Row ord = i (from 1) has its result, as its single '
  'call would give it: ok (set, touch, put, merge: whether it wrote; clear: whether it ended a '
  'session; generate: true) and key (generate: the new key), or sqlstate and message (nothing '
  'applied for that element; 55P03: its row was locked, send it again; SP001: its version has '
  'moved). Errors of the whole call: 22023 arrays of different lengths or of more than one '
  'dimension. Through the proxy: each partition applies its elements in a transaction of its own; '
  'when one fails (08006 unreachable, or an error of its whole call) its elements get that SQLSTATE '
  'and none of them was applied.';

-- Each partition gets the elements whose keys it holds, all partitions at once (SPLIT), with their
-- element numbers, which it puts on the rows it finds: rows from several partitions then need no
-- matching on the proxy, and a key given twice is two elements as on one database.
CREATE OR REPLACE FUNCTION session_proxy.partition_get_batch(keys text[], ords integer[])
RETURNS TABLE (ord integer, value text, period bigint, version bigint)
LANGUAGE plproxy
AS $$
  CLUSTER 'session_partitions';
  SPLIT keys, ords;
  RUN ON session_proxy.key_hash(keys);
  -- In parentheses: PL/Proxy sends an argument as $n::type, and a subscript must not follow a cast.
  SELECT (ords)[b.ord] AS ord, b.value, b.period, b.version FROM session.session_get_batch(keys) b;
$$;
REVOKE ALL ON FUNCTION session_proxy.partition_get_batch(text[], integer[]) FROM PUBLIC;

-- Elements counted from 1 whatever the array's bounds and dimensions, as on a partition.
CREATE OR REPLACE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint, version bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  flat text[] := '{}'::text[];
  k text;
  n integer := 0;
BEGIN
  IF keys IS NULL THEN
    RETURN;
  END IF;
  FOREACH k IN ARRAY keys LOOP
    n := n + 1;
    flat[n] := k;
  END LOOP;
  IF n = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT b.ord, b.value, b.period, b.version
      FROM session_proxy.partition_get_batch(flat, ARRAY(SELECT generate_series(1, n))) b
     ORDER BY b.ord;
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_get_batch', ARRAY['keys text[]'], ARRAY['client']);
COMMENT ON FUNCTION session.session_get_batch(text[]) IS
  'Many gets in one call: one row (ord, value, period, version) for each element of keys that '
  'session_get would find, ord being its position counted from 1 (elements in storage order, '
  'whatever the array''s bounds and dimensions), in ord order; no row for an element not found. A '
  'NULL or empty array gives no rows. Through the proxy: the partitions holding the keys are asked '
  'in parallel; 08006 when one of them is unreachable (the whole call fails: send the gets one by '
  'one to have the other partitions'' keys answered).';
