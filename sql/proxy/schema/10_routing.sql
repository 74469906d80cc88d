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
