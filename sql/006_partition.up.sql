-- session-postgresql 006: what a PL/Proxy proxy needs from each partition (docs/scale-out.md).
--
-- With the store spread over several databases, the proxy makes the key of a new session itself,
-- because the key decides the partition; the partition then only stores it. session_generate
-- cannot do that (it makes its own key) and session_put refuses a session without a value, so
-- this adds session.partition_generate, granted to a proxy role only: never to the client role,
-- which must not choose the keys of new sessions. The same goes for the new key of a rotation
-- (partition_rotate: the proxy picks one on the old key's partition) and for generate elements of
-- batched writes (partition_write_batch).
--
-- The proxy role (default session_proxy with the default role pair, else <client role>_proxy;
-- chosen with the session_postgresql.proxy_role setting) is a member of the client and admin
-- roles, so the one login the proxy uses may make every call it forwards. An existing role of that
-- name is used only if it carries the comment 'session-postgresql proxy role' (set when an install
-- creates it): otherwise it may be another database's role, and 42710 refuses it.
SET search_path = pg_catalog, pg_temp;

ALTER TABLE session.config ADD COLUMN proxy_role name;

-- The proxy's keys are session_generate's: 64 base64url characters. The shape check keeps a
-- mistaken caller from storing a key that session_put would refuse.
CREATE FUNCTION session.check_proxy_key(key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF key IS NULL OR octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$' THEN
    RAISE EXCEPTION 'a key made by the proxy must be 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;
REVOKE ALL ON FUNCTION session.check_proxy_key(text) FROM PUBLIC;

-- session_generate (005) with the key given: the same checks in the same order (value and
-- expiry, then subject and label, then lifetime) and the same row.
CREATE FUNCTION session.partition_generate(key text, expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                           subject text DEFAULT NULL, label text DEFAULT NULL,
                                           lifetime bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
  PERFORM session.check_proxy_key(key);
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

-- session_rotate (005) with the new key given, so that the proxy can choose one that lives on this
-- partition. session_rotate does the work (its subject lock, its row lock, the tombstone); the row
-- it made under its own key, which nobody has seen, then takes the proxy's key in the same
-- transaction. Rotation is rare: the extra row version costs little.
CREATE FUNCTION session.partition_rotate(old_key text, new_key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  nd constant bytea := session.key_digest(new_key);
  made bytea;
BEGIN
  PERFORM session.check_proxy_key(new_key);
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

-- session_write_batch (004, 005) with the keys of generate elements given. The other elements go
-- to session_write_batch unchanged (its lock order, its 55P03 for busy rows); a generate element
-- only inserts a row under a new key, which no other element can name, so it runs apart, with the
-- checks and the row of a batched generate.
CREATE FUNCTION session.partition_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := coalesce(cardinality(kinds), 0);
  max_bytes constant integer := (SELECT c.max_value_bytes FROM session.config c);
  period constant bigint := (SELECT c.default_period FROM session.config c);
  lifetime constant bigint := (SELECT c.absolute_lifetime FROM session.config c);
  made integer[];
  rest integer[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  made_keys text[] := '{}'::text[];
  chk record;
  r record;
  i integer;
  d bytea;
  t timestamptz;
  cap timestamptz;
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must have the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  made := ARRAY(SELECT o FROM generate_series(1, n) o WHERE kinds[o] IS NOT DISTINCT FROM 'generate');
  rest := ARRAY(SELECT o FROM generate_series(1, n) o WHERE kinds[o] IS DISTINCT FROM 'generate');
  IF cardinality(rest) > 0 THEN
    FOR r IN SELECT * FROM session.session_write_batch(ARRAY(SELECT kinds[o] FROM unnest(rest) o),
                                                       ARRAY(SELECT keys[o] FROM unnest(rest) o),
                                                       ARRAY(SELECT vals[o] FROM unnest(rest) o),
                                                       ARRAY(SELECT expiries[o] FROM unnest(rest) o)) LOOP
      i := rest[r.ord];
      states[i] := r.sqlstate;
      messages[i] := r.message;
      oks[i] := r.ok;
    END LOOP;
  END IF;
  FOREACH i IN ARRAY made LOOP
    chk := session.write_check('generate', NULL, vals[i], expiries[i], max_bytes);
    IF chk.state IS NOT NULL THEN
      states[i] := chk.state;
      messages[i] := chk.message;
      CONTINUE;
    END IF;
    PERFORM session.check_proxy_key(keys[i]);
    d := session.key_digest(keys[i]);
    t := clock_timestamp();
    cap := t + make_interval(secs => lifetime);
    INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at)
    VALUES (d, least(t + make_interval(secs => coalesce(expiries[i], period)), cap), vals[i], t, t, cap);
    oks[i] := true;
    made_keys[i] := keys[i];
  END LOOP;
  RETURN QUERY SELECT o::integer, states[o], messages[o], oks[o], made_keys[o] FROM generate_series(1, n) o;
END
$$;
COMMENT ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[]) IS
  'For the PL/Proxy proxy only: session_write_batch for the elements of one partition, where a '
  'generate element carries the key the proxy made for it (returned in key when stored). Results '
  'and errors as in session_write_batch; 22023 (the whole call) for a generate key not 32-1024 '
  'base64url characters, 23505 if it exists.';

REVOKE ALL ON FUNCTION session.partition_generate(text, bigint, text, text, text, bigint),
  session.partition_rotate(text, text), session.partition_write_batch(text[], text[], text[], bigint[]) FROM PUBLIC;

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
    'session.partition_rotate(text, text), session.partition_write_batch(text[], text[], text[], bigint[]) TO %1$I;', proxy);
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
