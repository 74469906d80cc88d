-- session-postgresql 009: many gets in one call.
--
-- A get is one short statement, and under load most of its cost is the statement itself (the
-- protocol messages, the call, the snapshot), not finding the row. session_get_batch answers many
-- gets in one statement; the TypeScript client sends the gets made in one event-loop turn as one
-- call of it.
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- One time for all elements, as for one session_get.
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN QUERY
    SELECT u.o::integer, s.value, floor(extract(epoch FROM s.expires_at - t))::bigint
      FROM unnest(keys) WITH ORDINALITY u(k, o)
      JOIN session.sessions s ON s.digest = session.key_digest(u.k)
     WHERE s.expires_at > t AND NOT s.cleared
     ORDER BY u.o;
END
$$;
COMMENT ON FUNCTION session.session_get_batch(text[]) IS
  'session_get for each element of keys, in one statement: one row per element that session_get '
  'would find, ord = its position in keys (from 1), with session_get''s value and period. No row for '
  'an element: not found (unknown, cleared, expired or NULL). Rows come in ord order; a key given '
  'twice gets a row for each. No errors.';
REVOKE ALL ON FUNCTION session.session_get_batch(text[]) FROM PUBLIC;

-- Granted like session_get, to the client role this install chose (003).
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
    'session.session_set(text, text, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint), session.session_clear(text), '
    'session.session_count(), session.session_default_period(), '
    'session.session_set_subject(text, text, text), session.session_list(text, integer), '
    'session.session_revoke(text, text), session.session_revoke_handle(text, uuid), '
    'session.session_rotate(text), session.session_absolute_lifetime(), '
    'session.session_write_batch(text[], text[], text[], bigint[]), session.session_get_batch(text[]) TO %I', cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count(), '
    'session.session_set_absolute_lifetime(bigint), session.session_absolute_lifetime() TO %I', cfg.admin_role);
END
$$;

DO $$
DECLARE
  cfg session.config;
  missing text := '';
  role_name name;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  FOREACH role_name IN ARRAY ARRAY[cfg.client_role, cfg.admin_role] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
      missing := missing OPERATOR(pg_catalog.||) pg_catalog.format('CREATE ROLE %I NOLOGIN; ', role_name);
    END IF;
  END LOOP;
  IF missing OPERATOR(pg_catalog.=) '' THEN
    PERFORM session.grant_roles();
  ELSE
    RAISE WARNING 'session-postgresql: roles are missing; %', 'the new functions are not granted until a DBA creates them'
      USING HINT = 'A DBA must run: ' OPERATOR(pg_catalog.||) missing OPERATOR(pg_catalog.||) 'SELECT session.grant_roles(); '
                   OPERATOR(pg_catalog.||) pg_catalog.format('Then GRANT %I TO <your application role>; GRANT %I TO <your admin role>;', cfg.client_role, cfg.admin_role);
  END IF;
END
$$;
