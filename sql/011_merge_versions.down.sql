-- Reverts 011_merge_versions: no versions, no merges; session_get, session_get_batch,
-- session_set, session_put and the batch functions are 010's (and its predecessors') again.
SET search_path = pg_catalog, pg_temp;

DROP FUNCTION session.session_merge(text, jsonb, text[], bigint, bigint);
DROP FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[]);
DROP FUNCTION session.partition_write_batch(text[], text[], text[], bigint[], bigint[]);
DROP FUNCTION session.write_digests(text[], bytea[], text[], text[], bigint[], bigint[], bigint, bigint, integer);
DROP FUNCTION session.batch_versions(bigint[], integer);
DROP FUNCTION session.element_problem(text, text, bigint);
DROP FUNCTION session.merged_value(text, jsonb, text[], integer);
DROP FUNCTION session.merge_problem(text);
DROP FUNCTION session.merge_fields_problem(jsonb, text[]);
DROP FUNCTION session.check_version(bigint, bigint);
DROP FUNCTION session.session_get(text);
DROP FUNCTION session.session_get_batch(text[]);
DROP FUNCTION session.session_set(text, text, bigint, bigint);
DROP FUNCTION session.session_put(text, text, bigint, bigint);

CREATE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN QUERY
    SELECT s.value, floor(extract(epoch FROM s.expires_at - t))::bigint
      FROM session.sessions s
     WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
END
$$;

COMMENT ON FUNCTION session.session_get(text) IS
  'No row: not found (unknown, cleared or expired). One row with NULL value: found, not set. '
  'Otherwise the value and the remaining whole seconds (>= 0). A NULL key is not found. No errors.';


CREATE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- One time for all elements, as for one session_get.
  t constant timestamptz := clock_timestamp();
  digests bytea[] := '{}'::bytea[];
  k text;
  n integer := 0;
BEGIN
  IF keys IS NULL THEN
    RETURN;
  END IF;
  -- Every element in storage order, whatever the bounds and dimensions: ord counts from 1.
  FOREACH k IN ARRAY keys LOOP
    n := n + 1;
    digests[n] := session.key_digest(k);
  END LOOP;
  RETURN QUERY
    SELECT u.o::integer, s.value, floor(extract(epoch FROM s.expires_at - t))::bigint
      FROM unnest(digests) WITH ORDINALITY u(d, o)
      JOIN session.sessions s ON s.digest = u.d
     WHERE s.expires_at > t AND NOT s.cleared
     ORDER BY u.o;
END
$$;

COMMENT ON FUNCTION session.session_get_batch(text[]) IS
  'session_get for each element of keys, in one statement: one row per element that session_get '
  'would find, ord = its position in keys (from 1, counting the elements in storage order whatever '
  'the array''s bounds and dimensions), with session_get''s value and period. No row for an '
  'element: not found (unknown, cleared, expired or NULL). Rows come in ord order; a key given '
  'twice gets a row for each. A NULL or empty array gives no rows. No errors.';


CREATE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION 'session value must not be NULL'
      USING ERRCODE = 'null_value_not_allowed', HINT = 'To end a session, call session_clear.';
  END IF;
  -- Validate before looking the key up, so bad input fails the same way for every key.
  new_expiry := session.expiry_at(value, expiry, t);
  UPDATE session.sessions s
     SET value = session_set.value, expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

COMMENT ON FUNCTION session.session_set(text, text, bigint) IS
  'Replaces the value of a live session and restarts its expiry (NULL = default period). Returns '
  'false and creates nothing when the key is unknown, cleared or expired. Errors: 22004 NULL value; '
  '22023 expiry out of range; 22001 value too large (the stored value is kept).';


CREATE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
  cap timestamptz;
BEGIN
  IF key IS NULL OR value IS NULL THEN
    RAISE EXCEPTION 'session_put needs a key and a value'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$' THEN
    RAISE EXCEPTION 'session_put only accepts keys of 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Generate ids with at least 24 random bytes, or use session_generate.';
  END IF;
  new_expiry := session.expiry_at(value, expiry, t);
  cap := session.ends_at(NULL, t);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT. It never writes over an expired session (not yet purged) or a cleared
  -- one (its tombstone): a request still in flight when the user logged out cannot bring it back.
  INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
  VALUES (d, least(new_expiry, cap), session_put.value, t, t, cap)
  ON CONFLICT (digest) DO UPDATE
    SET value = excluded.value, expires_at = least(excluded.expires_at, s.ends_at), written_at = t
  WHERE s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

COMMENT ON FUNCTION session.session_put(text, text, bigint) IS
  'Creates or replaces the session with this key (for frameworks that make their own ids, and only '
  'for an id just made). Returns false, storing nothing, when the key belongs to an expired session '
  'not yet purged or to a cleared one. Errors: 22004 NULL key or value; 22023 key not 32-1024 '
  'base64url characters, or expiry out of range; 22001 value too large.';


CREATE OR REPLACE FUNCTION session.write_problem(kind text, key text, value text, expiry bigint, max_value_bytes integer)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE
  WHEN kind IS NULL OR kind NOT IN ('generate', 'set', 'touch', 'put', 'clear')
    THEN '22023 kind must be generate, set, touch, put or clear'
  WHEN kind = 'set' AND value IS NULL
    THEN '22004 session value must not be NULL'
  WHEN kind = 'put' AND (key IS NULL OR value IS NULL)
    THEN '22004 session_put needs a key and a value'
  WHEN kind = 'put' AND (octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$')
    THEN '22023 session_put only accepts keys of 32 to 1024 base64url characters'
  WHEN kind IN ('generate', 'set', 'put') AND octet_length(value) > max_value_bytes
    THEN format('22001 session value is %s bytes, more than the limit of %s bytes', octet_length(value), max_value_bytes)
  WHEN kind <> 'clear' AND expiry NOT BETWEEN -3155760000 AND 3155760000
    THEN format('22023 expiry must be between -3155760000 and 3155760000 seconds (100 years), got %s', expiry)
END;


CREATE FUNCTION session.write_digests(kinds text[], digests bytea[], problems text[], vals text[], expiries bigint[],
                                      period bigint, lifetime bigint)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := cardinality(kinds);
  -- One time for the whole batch: its elements happen together, as they commit together.
  t constant timestamptz := clock_timestamp();
  cap constant timestamptz := t + make_interval(secs => lifetime);
  oks boolean[] := '{}'::boolean[];
  -- The sets and touches written first; the elements left, by key (in digest order), and the
  -- digests of the existing sessions they write, in digest order.
  applied integer[];
  by_digest integer[];
  wanted bytea[] := '{}'::bytea[];
  -- The rows of wanted that this transaction locked, in digest order; those it could not lock;
  -- the new rows that another transaction inserted first.
  row_digest bytea[] := '{}'::bytea[];
  row_tid tid[] := '{}'::tid[];
  row_expires timestamptz[] := '{}'::timestamptz[];
  row_ends timestamptz[] := '{}'::timestamptz[];
  row_cleared boolean[] := '{}'::boolean[];
  busy bytea[] := '{}'::bytea[];
  lost bytea[] := '{}'::bytea[];
  -- The rows to write: changed ones (u_*, by ctid) and new ones (i_*).
  u_tid tid[] := '{}'::tid[];
  u_value text[] := '{}'::text[];
  u_value_set boolean[] := '{}'::boolean[];
  u_expires timestamptz[] := '{}'::timestamptz[];
  u_written timestamptz[] := '{}'::timestamptz[];
  u_cleared boolean[] := '{}'::boolean[];
  i_digest bytea[] := '{}'::bytea[];
  i_value text[] := '{}'::text[];
  i_expires timestamptz[] := '{}'::timestamptz[];
  i_cleared boolean[] := '{}'::boolean[];
  i_ends timestamptz[] := '{}'::timestamptz[];
  inserted bytea[];
  -- The key being worked out in the loop: its row as its elements so far left it.
  d bytea;
  is_busy boolean;
  r_exists boolean;
  r_new boolean := false;
  r_changed boolean := false;
  r_value text;
  r_value_set boolean;
  r_expires timestamptz;
  r_ends timestamptz;
  r_written timestamptz;
  r_cleared boolean;
  live boolean;
  j integer := 1;
  i integer;
BEGIN
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;

  -- The common case first, in one statement: sets and touches of keys that occur once in the
  -- batch, checked, written together. It locks their live rows without waiting and writes them;
  -- what it does not write (a failed check, no live session, a row held elsewhere, a row changed
  -- since the statement began) goes the general way below, which gives each such element its result.
  WITH target AS MATERIALIZED (
    SELECT u.o::integer AS o, u.kind, u.v, u.e, s.ctid AS tid
      FROM unnest(kinds, digests, problems, vals, expiries) WITH ORDINALITY u(kind, d, problem, v, e, o)
      JOIN session.sessions s ON s.digest = u.d
     WHERE u.kind IN ('set', 'touch') AND u.problem IS NULL
       AND u.d NOT IN (SELECT x.d FROM unnest(digests) x(d) WHERE x.d IS NOT NULL GROUP BY x.d HAVING count(*) > 1)
       AND s.expires_at > t AND NOT s.cleared
       FOR UPDATE OF s SKIP LOCKED),
  written AS (
    UPDATE session.sessions s
       SET value = CASE WHEN target.kind = 'set' THEN target.v ELSE s.value END,
           expires_at = least(t + make_interval(secs => coalesce(target.e, period)), s.ends_at),
           written_at = t
      FROM target
     WHERE s.ctid = target.tid
    RETURNING target.o)
  SELECT coalesce(array_agg(written.o), '{}') INTO applied FROM written;
  IF cardinality(applied) = n THEN
    PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    RETURN QUERY SELECT g.o::integer, NULL::text, NULL::text, true FROM generate_series(1, n) g(o);
    RETURN;
  END IF;
  FOREACH i IN ARRAY applied LOOP
    oks[i] := true;
  END LOOP;

  -- The rest: each key's elements in element order, keys in digest order. Elements that failed a
  -- check are not applied. A NULL digest (a NULL key, or one over 1024 bytes) matches no session:
  -- such an element returns false.
  SELECT array_agg(y.o ORDER BY y.d, y.o), coalesce(array_agg(DISTINCT y.d) FILTER (WHERE y.kind <> 'generate'), '{}')
    INTO by_digest, wanted
    FROM (SELECT u.o::integer AS o, u.d, kinds[u.o] AS kind FROM unnest(digests) WITH ORDINALITY u(d, o)
           WHERE u.d IS NOT NULL AND problems[u.o] IS NULL AND oks[u.o] IS NULL) y;

  -- A row's ctid stays valid while this transaction holds its lock: the UPDATE below goes
  -- straight to it, without a second index probe. One sort for all five arrays: the aggregates
  -- take the rows in the order of the sorted subquery.
  IF cardinality(wanted) > 0 THEN
    SELECT coalesce(array_agg(s.digest), '{}'), coalesce(array_agg(s.ctid), '{}'), coalesce(array_agg(s.expires_at), '{}'),
           coalesce(array_agg(s.ends_at), '{}'), coalesce(array_agg(s.cleared), '{}')
      INTO row_digest, row_tid, row_expires, row_ends, row_cleared
      FROM (SELECT l.* FROM (SELECT s.digest, s.ctid, s.expires_at, s.ends_at, s.cleared
                               FROM unnest(wanted) w(digest) JOIN session.sessions s ON s.digest = w.digest
                                FOR UPDATE OF s SKIP LOCKED) l
             ORDER BY l.digest) s;
    IF cardinality(row_digest) < cardinality(wanted) THEN
      busy := ARRAY(SELECT s.digest FROM session.sessions s
                     WHERE s.digest = ANY (ARRAY(SELECT unnest(wanted) EXCEPT SELECT unnest(row_digest))));
    END IF;
  END IF;

  -- Position cardinality + 1 ends the last key.
  FOR p IN 1 .. coalesce(cardinality(by_digest), 0) + 1 LOOP
    i := by_digest[p];
    IF p = 1 OR i IS NULL OR digests[i] <> d THEN
      -- The previous key is worked out: what to write.
      IF r_new THEN
        i_digest := i_digest || d;
        i_value := i_value || r_value;
        i_expires := i_expires || r_expires;
        i_cleared := i_cleared || r_cleared;
        i_ends := i_ends || r_ends;
      ELSIF r_changed THEN
        u_tid := u_tid || row_tid[j];
        u_value := u_value || r_value;
        u_value_set := u_value_set || r_value_set;
        u_expires := u_expires || r_expires;
        u_written := u_written || r_written;
        u_cleared := u_cleared || r_cleared;
      END IF;
      EXIT WHEN i IS NULL;
      d := digests[i];
      WHILE j <= cardinality(row_digest) AND row_digest[j] < d LOOP
        j := j + 1;
      END LOOP;
      r_exists := j <= cardinality(row_digest) AND row_digest[j] = d;
      is_busy := NOT r_exists AND d = ANY (busy);
      r_new := false;
      r_changed := false;
      r_value := NULL;
      r_value_set := false;
      r_written := NULL;
      IF r_exists THEN
        r_expires := row_expires[j];
        r_ends := row_ends[j];
        r_cleared := row_cleared[j];
      END IF;
    END IF;
    CONTINUE WHEN is_busy;

    live := r_exists AND r_expires > t AND NOT r_cleared;
    IF kinds[i] = 'generate' OR (kinds[i] = 'put' AND NOT r_exists) THEN
      -- A new row ends at the configured absolute lifetime, if any.
      r_exists := true;
      r_new := true;
      r_value := vals[i];
      r_expires := least(t + make_interval(secs => coalesce(expiries[i], period)), cap);
      r_ends := cap;
      r_cleared := false;
      oks[i] := true;
    ELSIF kinds[i] IN ('set', 'put', 'touch') THEN
      IF live THEN
        IF kinds[i] <> 'touch' THEN
          r_value := vals[i];
          r_value_set := true;
        END IF;
        r_expires := least(t + make_interval(secs => coalesce(expiries[i], period)), r_ends);
        r_written := t;
        r_changed := true;
      END IF;
      oks[i] := live;
    ELSE
      -- clear: true when a session ended (it existed and was not cleared before).
      oks[i] := r_exists AND NOT r_cleared;
      IF oks[i] THEN
        r_cleared := true;
        r_value := NULL;
        r_value_set := true;
        r_expires := least(r_expires, t + interval '1 day');
        r_changed := true;
      END IF;
    END IF;
  END LOOP;

  IF cardinality(u_tid) > 0 THEN
    UPDATE session.sessions s
       SET value = CASE WHEN u.value_set THEN u.value ELSE s.value END,
           expires_at = u.expires, written_at = coalesce(u.written, s.written_at), cleared = u.cleared
      FROM unnest(u_tid, u_value, u_value_set, u_expires, u_written, u_cleared)
           u(tid, value, value_set, expires, written, cleared)
     WHERE s.ctid = u.tid;
  END IF;
  IF cardinality(i_digest) > 0 THEN
    WITH ins AS (
      INSERT INTO session.sessions AS s (digest, expires_at, value, cleared, created_at, written_at, ends_at)
      SELECT u.digest, u.expires, u.value, u.cleared, t, t, u.ends
        FROM unnest(i_digest, i_value, i_expires, i_cleared, i_ends) u(digest, value, expires, cleared, ends)
       ORDER BY u.digest
      ON CONFLICT (digest) DO NOTHING
      RETURNING s.digest)
    SELECT coalesce(array_agg(ins.digest), '{}') INTO inserted FROM ins;
    IF cardinality(inserted) < cardinality(i_digest) THEN
      lost := ARRAY(SELECT unnest(i_digest) EXCEPT SELECT unnest(inserted));
    END IF;
  END IF;

  PERFORM set_config('lock_timeout', caller_lock_timeout, true);
  -- Why an element was not applied, as 'SQLSTATE message' like its check's; NULL when it was.
  RETURN QUERY
    SELECT g.o::integer, left(w.why, 5), substr(w.why, 7), CASE WHEN w.why IS NULL THEN coalesce(oks[g.o], false) END
      FROM generate_series(1, n) g(o)
      CROSS JOIN LATERAL (
        SELECT CASE WHEN problems[g.o] IS NOT NULL THEN problems[g.o]
                    WHEN digests[g.o] = ANY (busy) THEN '55P03 the session is locked by another transaction; not applied'
                    WHEN digests[g.o] = ANY (lost) THEN '55P03 another transaction created this session first; not applied'
               END AS why) w;
END
$$;


CREATE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := session.batch_length(kinds, keys, vals, expiries);
  cfg session.config;
  -- Per element: the key a generate made, the digest, 'SQLSTATE message' of a failed check.
  new_keys text[];
  digests bytea[] := '{}'::bytea[];
  problems text[] := '{}'::text[];
  r record;
BEGIN
  IF n = 0 THEN
    RETURN;
  END IF;
  -- Element i is the i-th of each array, whatever its lower bound (a slice is numbered from 1).
  kinds := kinds[array_lower(kinds, 1):array_upper(kinds, 1)];
  keys := keys[array_lower(keys, 1):array_upper(keys, 1)];
  vals := vals[array_lower(vals, 1):array_upper(vals, 1)];
  expiries := expiries[array_lower(expiries, 1):array_upper(expiries, 1)];
  SELECT * INTO STRICT cfg FROM session.config;
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                      || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
    problems[i] := session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes);
  END LOOP;
  IF new_keys IS NULL THEN
    RETURN QUERY SELECT w.ord, w.sqlstate, w.message, w.ok, NULL::text
                   FROM session.write_digests(kinds, digests, problems, vals, expiries, cfg.default_period, cfg.absolute_lifetime) w;
    RETURN;
  END IF;
  -- New keys go out one row at a time: a statement would be planned with them.
  FOR r IN SELECT * FROM session.write_digests(kinds, digests, problems, vals, expiries, cfg.default_period, cfg.absolute_lifetime) LOOP
    ord := r.ord;
    sqlstate := r.sqlstate;
    message := r.message;
    ok := r.ok;
    key := CASE WHEN r.sqlstate IS NULL THEN new_keys[r.ord] END;
    RETURN NEXT;
  END LOOP;
END
$$;

COMMENT ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[]) IS
  'Applies many writes in one transaction (one WAL flush). Element i is the call kinds[i] (generate, '
  'set, touch, put or clear) with keys[i], vals[i], expiries[i], each array counted from its first '
  'element whatever its lower bound (a NULL array is empty); one row per element, in element '
  'order, ord = i from 1: sqlstate NULL and ok = what the single call returns (clear: whether a '
  'session ended), key = the new key of a generate; or the SQLSTATE the single call would raise '
  '(22004, 22001, 22023) with nothing written for that element, or 55P03 when another transaction '
  'holds the row or created the same new session first (not applied; call it again). Elements of '
  'one key apply in element order. Errors of the whole call: 22023 arrays of different lengths or '
  'of more than one dimension; 55P03 a lock wait longer than lock_timeout, at most 2 s.';


CREATE FUNCTION session.partition_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
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
      r_problems := r_problems || session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes);
      r_vals := r_vals || vals[i];
      r_expiries := r_expiries || expiries[i];
    END IF;
  END LOOP;
  IF cardinality(rest) > 0 THEN
    FOR r IN SELECT * FROM session.write_digests(r_kinds, r_digests, r_problems, r_vals, r_expiries,
                                                  cfg.default_period, cfg.absolute_lifetime) LOOP
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

COMMENT ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[]) IS
  'For the PL/Proxy proxy only: session_write_batch for the elements of one partition, where a '
  'generate element carries the key the proxy made for it (returned in key when stored). Results '
  'and errors as in session_write_batch; 22023 (the whole call) for a generate key not 32-1024 '
  'base64url characters, 23505 if it exists.';


REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM PUBLIC;

ALTER TABLE session.sessions DROP COLUMN version;

-- 009's grants.
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
  -- The proxy role (006) calls partition_write_batch, made again above.
  IF cfg.proxy_role IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) cfg.proxy_role) THEN
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[]) TO %I',
                              cfg.proxy_role);
  END IF;
END
$$;
