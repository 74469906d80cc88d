-- Reverts 007_batch_rows: session_write_batch as 005 left it, element by element.
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION session.write_check(kind text, key text, value text, expiry bigint, max_value_bytes integer,
                                    OUT state text, OUT message text)
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF kind IS NULL OR kind NOT IN ('generate', 'set', 'touch', 'put', 'clear') THEN
    state := '22023';
    message := 'kind must be generate, set, touch, put or clear';
  ELSIF kind = 'set' AND value IS NULL THEN
    state := '22004';
    message := 'session value must not be NULL';
  ELSIF kind = 'put' AND (key IS NULL OR value IS NULL) THEN
    state := '22004';
    message := 'session_put needs a key and a value';
  ELSIF kind = 'put' AND (octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$') THEN
    state := '22023';
    message := 'session_put only accepts keys of 32 to 1024 base64url characters';
  ELSIF kind IN ('generate', 'set', 'put') AND octet_length(value) > max_value_bytes THEN
    state := '22001';
    message := format('session value is %s bytes, more than the limit of %s bytes', octet_length(value), max_value_bytes);
  ELSIF kind <> 'clear' AND expiry NOT BETWEEN -3155760000 AND 3155760000 THEN
    state := '22023';
    message := format('expiry must be between -3155760000 and 3155760000 seconds (100 years), got %s', expiry);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := coalesce(cardinality(kinds), 0);
  max_bytes constant integer := (SELECT c.max_value_bytes FROM session.config c);
  period constant bigint := (SELECT c.default_period FROM session.config c);
  lifetime constant bigint := (SELECT c.absolute_lifetime FROM session.config c);
  cap timestamptz;
  digests bytea[] := '{}'::bytea[];
  new_keys text[] := '{}'::text[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  busy bytea;
  i integer;
  d bytea;
  t timestamptz;
  new_expiry timestamptz;
  chk record;
  live boolean;
  was_cleared boolean;
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must have the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;
  -- Keys are hashed into variables first: no statement below ever holds a key.
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                      || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
  END LOOP;

  FOR i IN SELECT u.o::integer FROM unnest(digests) WITH ORDINALITY u(d, o) ORDER BY u.d, u.o LOOP
    d := digests[i];
    t := clock_timestamp();
    chk := session.write_check(kinds[i], keys[i], vals[i], expiries[i], max_bytes);
    IF chk.state IS NOT NULL THEN
      states[i] := chk.state;
      messages[i] := chk.message;
      CONTINUE;
    END IF;
    IF d = busy THEN
      states[i] := '55P03';
      messages[i] := 'an earlier element of this key could not lock its row; not applied';
      CONTINUE;
    END IF;
    new_expiry := t + make_interval(secs => coalesce(expiries[i], period));
    -- New rows (generate, and put of a new id) end at the configured absolute lifetime, if any.
    cap := t + make_interval(secs => lifetime);
    IF kinds[i] = 'generate' THEN
      INSERT INTO session.sessions (digest, expires_at, value, created_at, written_at, ends_at)
      VALUES (d, least(new_expiry, cap), vals[i], t, t, cap);
      oks[i] := true;
      CONTINUE;
    END IF;
    SELECT s.expires_at > t AND NOT s.cleared, s.cleared INTO live, was_cleared
      FROM session.sessions s WHERE s.digest = d FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT FROM session.sessions s WHERE s.digest = d) THEN
      busy := d;
      states[i] := '55P03';
      messages[i] := 'the session is locked by another transaction; not applied';
      CONTINUE;
    END IF;
    IF kinds[i] = 'set' AND live THEN
      UPDATE session.sessions s SET value = vals[i], expires_at = least(new_expiry, s.ends_at), written_at = t WHERE s.digest = d;
    ELSIF kinds[i] = 'touch' AND live THEN
      UPDATE session.sessions s SET expires_at = least(new_expiry, s.ends_at), written_at = t WHERE s.digest = d;
    ELSIF kinds[i] = 'clear' AND NOT was_cleared THEN
      UPDATE session.sessions s
         SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
       WHERE s.digest = d;
    ELSIF kinds[i] = 'put' AND live IS NULL THEN
      -- No row: as in session_put, one statement, in case another transaction inserts it now.
      INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
      VALUES (d, least(new_expiry, cap), vals[i], t, t, cap)
      ON CONFLICT (digest) DO UPDATE
        SET value = excluded.value, expires_at = least(excluded.expires_at, s.ends_at), written_at = t
      WHERE s.expires_at > t AND NOT s.cleared;
      live := FOUND;
    ELSIF kinds[i] = 'put' AND live THEN
      UPDATE session.sessions s SET value = vals[i], expires_at = least(new_expiry, s.ends_at), written_at = t WHERE s.digest = d;
    END IF;
    oks[i] := CASE WHEN kinds[i] = 'clear' THEN was_cleared IS NOT NULL AND NOT was_cleared ELSE coalesce(live, false) END;
  END LOOP;

  PERFORM set_config('lock_timeout', caller_lock_timeout, true);
  RETURN QUERY SELECT o::integer, states[o], messages[o], oks[o], CASE WHEN states[o] IS NULL THEN new_keys[o] END
                 FROM generate_series(1, n) o;
END
$$;
COMMENT ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[]) IS
  'Applies many writes in one transaction (one WAL flush). Element i is the call kinds[i] '
  '(generate, set, touch, put or clear) with keys[i], vals[i], expiries[i]; one row per element, '
  'in element order: sqlstate NULL and ok = what the single call returns (clear: whether a '
  'session ended), key = the new key of a generate; or the SQLSTATE the single call would raise '
  '(22004, 22001, 22023) with nothing written for that element, or 55P03 when another '
  'transaction holds the row (not applied; call it again). Errors of the whole call: 22023 '
  'arrays of different lengths; 55P03 a lock wait longer than lock_timeout, at most 2 s.';

DROP FUNCTION session.write_problem(text, text, text, bigint, integer);
ALTER TABLE session.sessions RESET (fillfactor);
