-- Reverts 008_batch_fast: session_write_batch as 007 left it.
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := coalesce(cardinality(kinds), 0);
  -- One time for the whole batch: its elements happen together, as they commit together.
  t constant timestamptz := clock_timestamp();
  period bigint;
  max_bytes integer;
  cap timestamptz;
  -- Per element: the key a generate made, the digest, 'SQLSTATE message' of a failed check, and
  -- what the call returns.
  new_keys text[];
  digests bytea[];
  problems text[];
  oks boolean[] := '{}'::boolean[];
  -- How many elements passed the checks; the sets and touches tried first (and those written);
  -- the elements left, by key (in digest order), and the digests of the existing sessions they
  -- write, in digest order.
  valid integer;
  fast_o integer[];
  fast_d bytea[];
  applied integer[] := '{}'::integer[];
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
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must have the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF n = 0 THEN
    RETURN;
  END IF;
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;
  SELECT c.default_period, c.max_value_bytes, t + make_interval(secs => c.absolute_lifetime)
    INTO STRICT period, max_bytes, cap FROM session.config c;

  -- Keys are hashed first: no statement after this one holds a key.
  SELECT array_agg(x.new_key ORDER BY x.o), array_agg(session.key_digest(coalesce(x.new_key, x.k)) ORDER BY x.o),
         array_agg(session.write_problem(x.kind, x.k, x.v, x.e, max_bytes) ORDER BY x.o)
    INTO new_keys, digests, problems
    FROM (SELECT u.o, u.kind, u.k, u.v, u.e,
                 CASE WHEN u.kind = 'generate'
                      THEN translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                            || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_') END AS new_key
            FROM unnest(kinds, keys, vals, expiries) WITH ORDINALITY u(kind, k, v, e, o)) x;

  -- Elements that failed a check are not applied. A NULL digest (a NULL key, or one over 1024
  -- bytes) matches no session: such an element returns false.
  --
  -- The common case first, in one statement: sets and touches of keys written once in the batch.
  -- It locks their live rows without waiting and writes them; what it does not write (no live
  -- session, a row held elsewhere, a row changed since the statement began) goes the general way
  -- below, which gives each such element its result.
  SELECT count(*)::integer, array_agg(y.o) FILTER (WHERE y.fast), array_agg(y.d) FILTER (WHERE y.fast)
    INTO valid, fast_o, fast_d
    FROM (SELECT u.o::integer AS o, u.d,
                 kinds[u.o] IN ('set', 'touch') AND count(*) OVER (PARTITION BY u.d) = 1 AS fast
            FROM unnest(digests) WITH ORDINALITY u(d, o)
           WHERE u.d IS NOT NULL AND problems[u.o] IS NULL) y;
  IF fast_o IS NOT NULL THEN
    WITH target AS MATERIALIZED (
      SELECT f.o, s.ctid AS tid
        FROM unnest(fast_d, fast_o) f(d, o) JOIN session.sessions s ON s.digest = f.d
       WHERE s.expires_at > t AND NOT s.cleared
         FOR UPDATE OF s SKIP LOCKED),
    written AS (
      UPDATE session.sessions s
         SET value = CASE WHEN kinds[target.o] = 'set' THEN vals[target.o] ELSE s.value END,
             expires_at = least(t + make_interval(secs => coalesce(expiries[target.o], period)), s.ends_at),
             written_at = t
        FROM target
       WHERE s.ctid = target.tid
      RETURNING target.o)
    SELECT coalesce(array_agg(written.o), '{}') INTO applied FROM written;
    FOREACH i IN ARRAY applied LOOP
      oks[i] := true;
    END LOOP;
  END IF;

  IF valid > cardinality(applied) THEN
    -- The rest: each key's elements in element order, keys in digest order.
    SELECT array_agg(y.o ORDER BY y.d, y.o), coalesce(array_agg(DISTINCT y.d) FILTER (WHERE y.kind <> 'generate'), '{}')
      INTO by_digest, wanted
      FROM (SELECT u.o::integer AS o, u.d, kinds[u.o] AS kind FROM unnest(digests) WITH ORDINALITY u(d, o)
             WHERE u.d IS NOT NULL AND problems[u.o] IS NULL AND oks[u.o] IS NULL) y;
  END IF;

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
    SELECT g.o::integer, left(w.why, 5), substr(w.why, 7),
           CASE WHEN w.why IS NULL THEN coalesce(oks[g.o], false) END,
           CASE WHEN w.why IS NULL THEN new_keys[g.o] END
      FROM generate_series(1, n) g(o)
      CROSS JOIN LATERAL (
        SELECT CASE WHEN problems[g.o] IS NOT NULL THEN problems[g.o]
                    WHEN digests[g.o] = ANY (busy) THEN '55P03 the session is locked by another transaction; not applied'
                    WHEN digests[g.o] = ANY (lost) THEN '55P03 another transaction created this session first; not applied'
               END AS why) w;
END
$$;
