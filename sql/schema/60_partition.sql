-- What a PL/Proxy proxy calls on each partition (docs/scale-out.md): the calls that make a key,
-- with the key the proxy made. Granted to the proxy role only.

-- The 32-1024 base64url characters a proxy's key must have (22023), and its digest: one
-- expression, so that a caller checks and hashes a key without a statement.
CREATE OR REPLACE FUNCTION session.proxy_key_digest(key text) RETURNS bytea
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF key IS NULL OR NOT session.well_formed_key(key) THEN
    RAISE EXCEPTION 'a key made by the proxy must be 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN session.key_digest(key);
END
$$;
COMMENT ON FUNCTION session.proxy_key_digest(text) IS
  'Private. The digest of a key a proxy made. Errors: 22023 key NULL or not 32-1024 base64url characters.';

-- session_generate with the key given: the same checks in the same order (value and
-- expiry, then subject and label, then lifetime) and the same row.
CREATE OR REPLACE FUNCTION session.partition_generate(key text, expiry bigint DEFAULT NULL, value text DEFAULT NULL,
                                                      subject text DEFAULT NULL, label text DEFAULT NULL,
                                                      lifetime bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.proxy_key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
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

-- session_rotate with the new key given, so that the proxy can choose one that lives on this
-- partition. session_rotate does the work (its subject lock, its row lock, the tombstone); the row
-- it made under its own key, which nobody has seen, then takes the proxy's key in the same
-- transaction. Rotation is rare: the extra row version costs little.
CREATE OR REPLACE FUNCTION session.partition_rotate(old_key text, new_key text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  nd constant bytea := session.proxy_key_digest(new_key);
  made bytea;
BEGIN
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

-- session_write_batch with the keys of generate elements given. The other elements go
-- to session_write_batch unchanged (its lock order, its 55P03 for busy rows); a generate element
-- only inserts a row under a new key, which no other element can name, so it runs apart, with the
-- checks and the row of a batched generate.
CREATE OR REPLACE FUNCTION session.partition_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
                                              versions bigint[] DEFAULT NULL)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := session.batch_length(kinds, keys, vals, expiries);
  cfg session.config;
  -- The elements other than generates, as write_digests takes them; their positions in the batch.
  rest integer[] := '{}'::integer[];
  r_kinds text[] := '{}'::text[];
  r_digests bytea[] := '{}'::bytea[];
  r_problems text[] := '{}'::text[];
  r_vals text[] := '{}'::text[];
  r_expiries bigint[] := '{}'::bigint[];
  r_versions bigint[] := '{}'::bigint[];
  made integer[] := '{}'::integer[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  chk record;
  r record;
  i integer;
  d bytea;
  t timestamptz;
  cap timestamptz;
BEGIN
  versions := session.batch_versions(versions, n);
  IF n = 0 THEN
    RETURN;
  END IF;
  kinds := kinds[array_lower(kinds, 1):array_upper(kinds, 1)];
  keys := keys[array_lower(keys, 1):array_upper(keys, 1)];
  vals := vals[array_lower(vals, 1):array_upper(vals, 1)];
  expiries := expiries[array_lower(expiries, 1):array_upper(expiries, 1)];
  SELECT * INTO STRICT cfg FROM session.config;
  FOR i IN 1 .. n LOOP
    IF kinds[i] IS NOT DISTINCT FROM 'generate' THEN
      made := made || i;
    ELSE
      rest := rest || i;
      r_kinds := r_kinds || kinds[i];
      r_digests := r_digests || session.key_digest(keys[i]);
      r_problems := r_problems || coalesce(session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes),
                                           CASE WHEN kinds[i] = 'merge' OR versions[i] IS NOT NULL
                                                THEN session.element_problem(kinds[i], vals[i], versions[i]) END);
      r_vals := r_vals || vals[i];
      r_expiries := r_expiries || expiries[i];
      r_versions := r_versions || versions[i];
    END IF;
  END LOOP;
  IF cardinality(rest) > 0 THEN
    FOR r IN SELECT * FROM session.write_digests(r_kinds, r_digests, r_problems, r_vals, r_expiries, r_versions,
                                                  cfg.default_period, cfg.absolute_lifetime, cfg.max_value_bytes) LOOP
      i := rest[r.ord];
      states[i] := r.sqlstate;
      messages[i] := r.message;
      oks[i] := r.ok;
    END LOOP;
  END IF;
  FOREACH i IN ARRAY made LOOP
    chk := session.write_check('generate', NULL, vals[i], expiries[i], cfg.max_value_bytes);
    IF chk.state IS NOT NULL THEN
      states[i] := chk.state;
      messages[i] := chk.message;
      CONTINUE;
    END IF;
    IF versions[i] IS NOT NULL THEN
      states[i] := '22023';
      messages[i] := 'only set, put and merge take a version';
      CONTINUE;
    END IF;
    d := session.proxy_key_digest(keys[i]);
    t := clock_timestamp();
    cap := t + make_interval(secs => cfg.absolute_lifetime);
    INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at)
    VALUES (d, least(t + make_interval(secs => coalesce(expiries[i], cfg.default_period)), cap), vals[i], t, t, cap);
    oks[i] := true;
  END LOOP;
  -- The keys of the generates go out one row at a time: a statement would be planned with them.
  FOR i IN 1 .. n LOOP
    ord := i;
    sqlstate := states[i];
    message := messages[i];
    ok := oks[i];
    key := CASE WHEN oks[i] AND kinds[i] IS NOT DISTINCT FROM 'generate' THEN keys[i] END;
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[], bigint[]) IS
  'For the PL/Proxy proxy only: session_write_batch for the elements of one partition, where a '
  'generate element carries the key the proxy made for it (returned in key when stored). Results '
  'and errors as in session_write_batch; 22023 (the whole call) for a generate key not 32-1024 '
  'base64url characters, 23505 if it exists.';
