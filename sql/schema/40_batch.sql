-- Many calls in one statement: session_write_batch (what the client's group commit sends) and
-- session_get_batch (its read batching), with the checks they share with the single calls.

-- Private helper: the checks the single calls make before writing, as 'SQLSTATE message', NULL
-- when the element may be applied. A plain SQL expression, so the batch checks all its elements
-- in one statement instead of calling a function once per element.
CREATE OR REPLACE FUNCTION session.write_problem(kind text, key text, value text, expiry bigint, max_value_bytes integer)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE
  WHEN kind IS NULL OR kind NOT IN ('generate', 'set', 'touch', 'put', 'merge', 'clear')
    THEN '22023 kind must be generate, set, touch, put, merge or clear'
  WHEN kind = 'set' AND value IS NULL
    THEN '22004 session value must not be NULL'
  WHEN kind = 'put' AND (key IS NULL OR value IS NULL)
    THEN '22004 session_put needs a key and a value'
  WHEN kind = 'put' AND NOT session.well_formed_key(key)
    THEN '22023 session_put only accepts keys of 32 to 1024 base64url characters'
  WHEN kind IN ('generate', 'set', 'put') AND octet_length(value) > max_value_bytes
    THEN format('22001 session value is %s bytes, more than the limit of %s bytes', octet_length(value), max_value_bytes)
  WHEN kind <> 'clear' AND expiry NOT BETWEEN -3155760000 AND 3155760000
    THEN format('22023 expiry must be between -3155760000 and 3155760000 seconds (100 years), got %s', expiry)
END;
COMMENT ON FUNCTION session.write_problem(text, text, text, bigint, integer) IS
  'Private. What a single call would refuse in this write, as ''SQLSTATE message''; NULL when none.';

-- Private helper: write_problem as (SQLSTATE, message), for partition_write_batch, which checks
-- generate elements one by one: the rules stay in one place.
CREATE OR REPLACE FUNCTION session.write_check(kind text, key text, value text, expiry bigint, max_value_bytes integer,
                                              OUT state text, OUT message text)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  problem constant text := session.write_problem(kind, key, value, expiry, max_value_bytes);
BEGIN
  state := left(problem, 5);
  message := substr(problem, 7);
END
$$;
COMMENT ON FUNCTION session.write_check(text, text, text, bigint, integer) IS
  'Private. write_problem split into SQLSTATE and message; both NULL when the element may be applied.';

-- The number of elements of a batch: its four arrays must be one-dimensional and of one length
-- (22023); a NULL array is empty. An expression, so that a caller checks without a statement.
CREATE OR REPLACE FUNCTION session.batch_length(kinds text[], keys text[], vals text[], expiries bigint[]) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := coalesce(cardinality(kinds), 0);
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) OR array_ndims(kinds) > 1 OR array_ndims(keys) > 1
     OR array_ndims(vals) > 1 OR array_ndims(expiries) > 1 THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must be one-dimensional arrays with the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN n;
END
$$;
COMMENT ON FUNCTION session.batch_length(text[], text[], text[], bigint[]) IS
  'Private. The number of elements of a batch. Errors: 22023 arrays of several dimensions or of different lengths.';

-- Private helper: what a batch merge's fields, already read as jsonb, break: 'SQLSTATE message' or
-- NULL. A plain SQL expression (no subquery), so that the batch checks all its merges in one
-- statement; merge_problem applies it one element at a time.
CREATE OR REPLACE FUNCTION session.merge_shape_problem(f jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
  WHEN jsonb_typeof(f) <> 'object' OR f - '{set,unset}'::text[] <> '{}'::jsonb
    THEN '22023 a merge''s fields must be a JSON object with only "set" and "unset"'
  -- The path query only when there is something to look at: it costs more than the rest.
  WHEN jsonb_typeof(f->'unset') NOT IN ('array', 'null')
       OR (f->'unset' <> '[]'::jsonb AND (f->'unset') @? 'strict $[*] ? (@.type() != "string")')
    THEN '22023 "unset" must be an array of field names (strings)'
  ELSE session.merge_fields_problem(CASE WHEN jsonb_typeof(f->'set') <> 'null' THEN f->'set' END, NULL)
END;
COMMENT ON FUNCTION session.merge_shape_problem(jsonb) IS
  'Private. What a batch merge''s fields, as jsonb, break (see merge_problem), as ''SQLSTATE message''; NULL when none.';

-- Private helper: a batch merge's fields, vals[i] = '{"set": {...}, "unset": [...]}' (either
-- member may be left out), checked as session_merge checks its arguments: 'SQLSTATE message' or
-- NULL. PostgreSQL 15 cannot test text for JSON without trying: the block catches the cast's error.
CREATE OR REPLACE FUNCTION session.merge_problem(fields text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f jsonb;
BEGIN
  IF fields IS NULL THEN
    RETURN '22004 a merge needs its fields: {"set": {...}, "unset": [...]}';
  END IF;
  BEGIN
    f := fields::jsonb;
  EXCEPTION WHEN data_exception THEN
    RETURN '22023 a merge''s fields must be JSON: {"set": {...}, "unset": [...]}';
  END;
  RETURN session.merge_shape_problem(f);
END
$$;
COMMENT ON FUNCTION session.merge_problem(text) IS
  'Private. What a batch merge''s fields {"set": ..., "unset": [...]} break, as ''SQLSTATE message''; NULL when none.';

-- The checks of a batch element beyond write_problem's, for the elements that need them: a
-- merge's fields, and a version given to a kind that takes none. 'SQLSTATE message' or NULL.
CREATE OR REPLACE FUNCTION session.element_problem(kind text, value text, version bigint) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF version IS NOT NULL AND kind NOT IN ('set', 'put', 'merge') THEN
    RETURN '22023 only set, put and merge take a version';
  END IF;
  IF kind = 'merge' THEN
    RETURN session.merge_problem(value);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION session.element_problem(text, text, bigint) IS
  'Private. What a batch element breaks beyond write_problem (a merge''s fields, a version on a kind that takes none); NULL when none.';

-- Private helper: a batch's versions, numbered from 1 (NULL: every element unconditional). 22023
-- when they are not one-dimensional with n elements. An expression, so a caller checks without a
-- statement.
CREATE OR REPLACE FUNCTION session.batch_versions(versions bigint[], n integer) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF versions IS NULL OR n = 0 THEN
    RETURN NULL;
  END IF;
  IF cardinality(versions) <> n OR array_ndims(versions) > 1 THEN
    RAISE EXCEPTION 'versions must be NULL or a one-dimensional array with as many elements as kinds'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN versions[array_lower(versions, 1):array_upper(versions, 1)];
END
$$;
COMMENT ON FUNCTION session.batch_versions(bigint[], integer) IS
  'Private. A batch''s versions numbered from 1 (NULL: all unconditional). Errors: 22023 not one-dimensional with n elements.';

-- Private helper: a batch after its checks, over digests: what session_write_batch and
-- partition_write_batch share. The caller gives each element's digest (a generate's: of the new
-- key it made) and the problem write_problem found ('SQLSTATE message', NULL when none), in
-- one-dimensional arrays numbered from 1, and the settings it read. versions[i]: the if_version
-- of a set, put or merge (NULL: unconditional); max_value_bytes bounds a merged value. An element
-- whose version has moved, or whose merge the stored value refuses, gets its SQLSTATE and is not
-- applied; the key's other elements still are.
CREATE OR REPLACE FUNCTION session.write_digests(kinds text[], digests bytea[], problems text[], vals text[], expiries bigint[],
                                      versions bigint[], period bigint, lifetime bigint, max_value_bytes integer)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := cardinality(kinds);
  -- One time for the whole batch: its elements happen together, as they commit together.
  t constant timestamptz := clock_timestamp();
  cap constant timestamptz := t + make_interval(secs => lifetime);
  -- A merge needs the stored values; the other kinds never read them.
  merging constant boolean := 'merge' = ANY (kinds);
  oks boolean[] := '{}'::boolean[];
  -- Why an element found at its turn could not be applied ('SQLSTATE message').
  fails text[] := '{}'::text[];
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
  row_version bigint[] := '{}'::bigint[];
  row_value text[] := '{}'::text[];
  busy bytea[] := '{}'::bytea[];
  lost bytea[] := '{}'::bytea[];
  -- The rows to write: changed ones (u_*, by ctid) and new ones (i_*).
  u_tid tid[] := '{}'::tid[];
  u_value text[] := '{}'::text[];
  u_value_set boolean[] := '{}'::boolean[];
  u_expires timestamptz[] := '{}'::timestamptz[];
  u_written timestamptz[] := '{}'::timestamptz[];
  u_cleared boolean[] := '{}'::boolean[];
  u_version bigint[] := '{}'::bigint[];
  i_digest bytea[] := '{}'::bytea[];
  i_value text[] := '{}'::text[];
  i_expires timestamptz[] := '{}'::timestamptz[];
  i_cleared boolean[] := '{}'::boolean[];
  i_ends timestamptz[] := '{}'::timestamptz[];
  i_version bigint[] := '{}'::bigint[];
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
  r_version bigint;
  live boolean;
  fields jsonb;
  merged text;
  j integer := 1;
  i integer;
BEGIN
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;

  -- The common case first, in one statement: sets, touches and merges of keys that occur once in
  -- the batch, checked, written together. It locks their live rows without waiting and writes
  -- them; what it does not write (a failed check, no live session, a row held elsewhere, a version
  -- that moved, a merge the stored value refuses) goes the general way below, which gives each
  -- such element its result. A stored value that is not JSON fails the statement's cast: the block
  -- then undoes it, and every element goes the general way.
  BEGIN
    WITH target AS MATERIALIZED (
      SELECT u.o::integer AS o, u.kind, u.v, u.e, s.ctid AS tid, CASE WHEN u.kind = 'merge' THEN s.value END AS stored
        FROM unnest(kinds, digests, problems, vals, expiries, versions) WITH ORDINALITY u(kind, d, problem, v, e, ver, o)
        JOIN session.sessions s ON s.digest = u.d
       WHERE u.kind IN ('set', 'touch', 'merge') AND u.problem IS NULL AND (u.ver IS NULL OR u.ver = s.version)
         AND u.d NOT IN (SELECT x.d FROM unnest(digests) x(d) WHERE x.d IS NOT NULL GROUP BY x.d HAVING count(*) > 1)
         AND s.expires_at > t AND NOT s.cleared
         FOR UPDATE OF s SKIP LOCKED),
    -- A merge as merged_value makes it: removed fields, then set ones, printed by jsonb; NULL when
    -- the stored value is not a JSON object (merged_value's error). Materialized: the UPDATE reads
    -- it twice.
    made AS MATERIALIZED (
      SELECT target.o, target.kind, target.v, target.e, target.tid,
             CASE WHEN target.kind = 'merge' AND jsonb_typeof(m.stored) = 'object'
                  THEN ((CASE WHEN jsonb_typeof(m.f->'unset') = 'array' AND m.f->'unset' <> '[]'::jsonb
                              THEN m.stored - ARRAY(SELECT jsonb_array_elements_text(m.f->'unset')) ELSE m.stored END)
                        || CASE WHEN jsonb_typeof(m.f->'set') = 'object' THEN m.f->'set' ELSE '{}'::jsonb END)::text END AS merged
        FROM target
        CROSS JOIN LATERAL (SELECT target.stored::jsonb AS stored, CASE WHEN target.kind = 'merge' THEN target.v::jsonb END AS f) m),
    written AS (
      UPDATE session.sessions s
         SET value = CASE made.kind WHEN 'set' THEN made.v WHEN 'merge' THEN made.merged ELSE s.value END,
             version = CASE WHEN made.kind = 'touch' THEN s.version ELSE s.version + 1 END,
             expires_at = least(t + make_interval(secs => coalesce(made.e, period)), s.ends_at),
             written_at = t
        FROM made
       WHERE s.ctid = made.tid AND (made.kind <> 'merge' OR octet_length(made.merged) <= max_value_bytes)
      RETURNING made.o)
    SELECT coalesce(array_agg(written.o), '{}') INTO applied FROM written;
  EXCEPTION WHEN data_exception THEN
    applied := '{}';
  END;
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
  -- straight to it, without a second index probe. One sort for all the arrays: the aggregates
  -- take the rows in the order of the sorted subquery.
  IF cardinality(wanted) > 0 THEN
    SELECT coalesce(array_agg(s.digest), '{}'), coalesce(array_agg(s.ctid), '{}'), coalesce(array_agg(s.expires_at), '{}'),
           coalesce(array_agg(s.ends_at), '{}'), coalesce(array_agg(s.cleared), '{}'), coalesce(array_agg(s.version), '{}'),
           coalesce(array_agg(s.value), '{}')
      INTO row_digest, row_tid, row_expires, row_ends, row_cleared, row_version, row_value
      FROM (SELECT l.* FROM (SELECT s.digest, s.ctid, s.expires_at, s.ends_at, s.cleared, s.version,
                                    CASE WHEN merging THEN s.value END AS value
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
        i_version := i_version || r_version;
      ELSIF r_changed THEN
        u_tid := u_tid || row_tid[j];
        u_value := u_value || r_value;
        u_value_set := u_value_set || r_value_set;
        u_expires := u_expires || r_expires;
        u_written := u_written || r_written;
        u_cleared := u_cleared || r_cleared;
        u_version := u_version || r_version;
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
        r_version := row_version[j];
        r_value := row_value[j];
      END IF;
    END IF;
    CONTINUE WHEN is_busy;

    live := r_exists AND r_expires > t AND NOT r_cleared;
    IF kinds[i] = 'generate' OR (kinds[i] = 'put' AND NOT r_exists AND versions[i] IS NULL) THEN
      -- A new row ends at the configured absolute lifetime, if any.
      r_exists := true;
      r_new := true;
      r_value := vals[i];
      r_expires := least(t + make_interval(secs => coalesce(expiries[i], period)), cap);
      r_ends := cap;
      r_cleared := false;
      r_version := floor(extract(epoch FROM t) * 1000000)::bigint;
      oks[i] := true;
    ELSIF kinds[i] = 'clear' THEN
      -- clear: true when a session ended (it existed and was not cleared before).
      oks[i] := r_exists AND NOT r_cleared;
      IF oks[i] THEN
        r_cleared := true;
        r_value := NULL;
        r_value_set := true;
        r_expires := least(r_expires, t + interval '1 day');
        r_changed := true;
      END IF;
    ELSIF NOT live THEN
      oks[i] := false;
    ELSIF versions[i] IS NOT NULL AND versions[i] <> r_version THEN
      fails[i] := format('SP001 the session was written since version %s was read; nothing was written', versions[i]);
    ELSE
      IF kinds[i] = 'merge' THEN
        fields := vals[i]::jsonb;
        BEGIN
          merged := session.merged_value(r_value, CASE WHEN jsonb_typeof(fields->'set') = 'object' THEN fields->'set' END,
                                         ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(fields->'unset') = 'array'
                                                                                     THEN fields->'unset' END)),
                                         max_value_bytes);
        EXCEPTION WHEN OTHERS THEN
          fails[i] := SQLSTATE || ' ' || SQLERRM;
        END;
      END IF;
      IF fails[i] IS NULL THEN
        IF kinds[i] IN ('set', 'put') THEN
          r_value := vals[i];
        ELSIF kinds[i] = 'merge' THEN
          r_value := merged;
        END IF;
        IF kinds[i] <> 'touch' THEN
          r_value_set := true;
          r_version := r_version + 1;
        END IF;
        r_expires := least(t + make_interval(secs => coalesce(expiries[i], period)), r_ends);
        r_written := t;
        r_changed := true;
        oks[i] := true;
      END IF;
    END IF;
  END LOOP;

  IF cardinality(u_tid) > 0 THEN
    UPDATE session.sessions s
       SET value = CASE WHEN u.value_set THEN u.value ELSE s.value END, version = u.version,
           expires_at = u.expires, written_at = coalesce(u.written, s.written_at), cleared = u.cleared
      FROM unnest(u_tid, u_value, u_value_set, u_expires, u_written, u_cleared, u_version)
           u(tid, value, value_set, expires, written, cleared, version)
     WHERE s.ctid = u.tid;
  END IF;
  IF cardinality(i_digest) > 0 THEN
    WITH ins AS (
      INSERT INTO session.sessions AS s (digest, expires_at, value, cleared, created_at, written_at, ends_at, version)
      SELECT u.digest, u.expires, u.value, u.cleared, t, t, u.ends, u.version
        FROM unnest(i_digest, i_value, i_expires, i_cleared, i_ends, i_version) u(digest, value, expires, cleared, ends, version)
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
                    ELSE fails[g.o]
               END AS why) w;
END
$$;

-- Elements are applied in digest order (then element order), so that concurrent batches take
-- their row locks in one global order and cannot deadlock. A row another transaction holds is
-- skipped, not waited for: that element (and the later ones of the same key, to keep their
-- order) returns 55P03 and is not applied, the others commit. The waits left (a put racing
-- another transaction's insert of the same new key, a table lock) are bounded by lock_timeout, at
-- most 2 s, so that one lock cannot hold a whole batch of callers for long.
CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
                                            versions bigint[] DEFAULT NULL)
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n constant integer := session.batch_length(kinds, keys, vals, expiries);
  cfg session.config;
  caller_lock_timeout constant text := current_setting('lock_timeout');
  t constant timestamptz := clock_timestamp();
  written bigint;
  -- The lock_timeout the batch runs under.
  lock_timeout_set text;
  -- Per element: the key a generate made, the digest, 'SQLSTATE message' of a failed check.
  new_keys text[];
  digests bytea[] := '{}'::bytea[];
  problems text[] := '{}'::text[];
  r record;
BEGIN
  versions := session.batch_versions(versions, n);
  IF n = 0 THEN
    RETURN;
  END IF;
  -- Element i is the i-th of each array, whatever its lower bound (a slice is numbered from 1).
  kinds := kinds[array_lower(kinds, 1):array_upper(kinds, 1)];
  keys := keys[array_lower(keys, 1):array_upper(keys, 1)];
  vals := vals[array_lower(vals, 1):array_upper(vals, 1)];
  expiries := expiries[array_lower(expiries, 1):array_upper(expiries, 1)];
  SELECT * INTO STRICT cfg FROM session.config;
  -- Per element: the digest (a generate's: of the key it makes) and what write_problem finds.
  -- Assignments of expressions, not a statement: a statement's plan could carry the keys as
  -- literals into a log (auto_explain), and these expressions are evaluated without one.
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := session.new_key();
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
    problems[i] := session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes);
  END LOOP;

  -- The framework stores' saves, in one statement: sets, touches and merges, with a merge or a
  -- version among them, each of a live session that no other transaction holds, each key once,
  -- every check passed, every version current (and none given to a touch), every merge into a
  -- JSON object. Either all of them are written here, or none: a batch with any other element is
  -- undone (SP999, never raised out of here; or a cast's error for text that is not JSON) and
  -- goes the general way below, which gives each element its own result. What it writes is what
  -- the general way writes for the same elements. Plain sets and touches go the general way
  -- first: its one-statement path writes big batches of them for less.
  IF kinds <@ '{set,touch,merge}'::text[] AND (array_position(kinds, 'merge') IS NOT NULL OR versions IS NOT NULL) THEN
    -- As in write_digests: a caller's shorter lock_timeout still applies, a longer one is cut to 2 s.
    -- (An assignment, not PERFORM: a simple expression costs no statement.)
    lock_timeout_set := CASE WHEN caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s'
                             THEN set_config('lock_timeout', '2s', true) ELSE caller_lock_timeout END;
    BEGIN
      WITH target AS MATERIALIZED (
        SELECT u.o, u.kind, u.v, u.e, s.ctid AS tid,
               CASE WHEN u.kind = 'merge' THEN s.value::jsonb END AS stored, CASE WHEN u.kind = 'merge' THEN u.v::jsonb END AS f
          FROM unnest(kinds, digests, problems, vals, expiries, versions) WITH ORDINALITY u(kind, d, problem, v, e, ver, o)
          JOIN session.sessions s ON s.digest = u.d
         WHERE u.problem IS NULL
           AND (u.kind <> 'merge' OR (u.v IS NOT NULL AND session.merge_shape_problem(u.v::jsonb) IS NULL))
           AND (u.ver IS NULL OR (u.kind <> 'touch' AND u.ver = s.version)) AND s.expires_at > t AND NOT s.cleared
           FOR UPDATE OF s SKIP LOCKED),
      -- A merge as merged_value makes it; NULL when the stored value is not a JSON object.
      made AS MATERIALIZED (
        SELECT target.o, target.kind, target.v, target.e, target.tid,
               CASE WHEN target.kind = 'merge' AND jsonb_typeof(target.stored) = 'object'
                    THEN ((CASE WHEN jsonb_typeof(target.f->'unset') = 'array' AND target.f->'unset' <> '[]'::jsonb
                                THEN target.stored - ARRAY(SELECT jsonb_array_elements_text(target.f->'unset'))
                                ELSE target.stored END)
                          || CASE WHEN jsonb_typeof(target.f->'set') = 'object' THEN target.f->'set' ELSE '{}'::jsonb END)::text
               END AS merged
          FROM target),
      changed AS (
        UPDATE session.sessions s
           SET value = CASE made.kind WHEN 'set' THEN made.v WHEN 'merge' THEN made.merged ELSE s.value END,
               version = CASE WHEN made.kind = 'touch' THEN s.version ELSE s.version + 1 END,
               expires_at = least(t + make_interval(secs => coalesce(made.e, cfg.default_period)), s.ends_at),
               written_at = t
          FROM made
         WHERE s.ctid = made.tid AND (made.kind <> 'merge' OR octet_length(made.merged) <= cfg.max_value_bytes)
        RETURNING made.o)
      SELECT count(*) INTO written FROM changed;
      IF written < n THEN
        RAISE SQLSTATE 'SP999';
      END IF;
      IF lock_timeout_set <> caller_lock_timeout THEN
        lock_timeout_set := set_config('lock_timeout', caller_lock_timeout, true);
      END IF;
      ok := true;
      FOR i IN 1 .. n LOOP
        ord := i;
        RETURN NEXT;
      END LOOP;
      RETURN;
    EXCEPTION WHEN data_exception OR SQLSTATE 'SP999' THEN
      -- The block's writes and settings are undone: the general way starts from scratch.
      NULL;
    END;
  END IF;

  -- Then element_problem's checks, for all elements in one statement too; a merge whose fields
  -- are not JSON fails the cast, and only then are the elements checked one at a time.
  IF 'merge' = ANY (kinds) OR versions IS NOT NULL THEN
    BEGIN
      SELECT array_agg(coalesce(x.problem,
                                CASE WHEN x.ver IS NOT NULL AND x.kind NOT IN ('set', 'put', 'merge')
                                       THEN '22023 only set, put and merge take a version'
                                     WHEN x.kind = 'merge' AND x.v IS NULL
                                       THEN '22004 a merge needs its fields: {"set": {...}, "unset": [...]}'
                                     WHEN x.kind = 'merge' THEN session.merge_shape_problem(x.v::jsonb) END) ORDER BY x.o)
        INTO problems
        FROM unnest(kinds, vals, versions, problems) WITH ORDINALITY x(kind, v, ver, problem, o);
    EXCEPTION WHEN data_exception THEN
      FOR i IN 1 .. n LOOP
        IF problems[i] IS NULL AND (kinds[i] = 'merge' OR versions[i] IS NOT NULL) THEN
          problems[i] := session.element_problem(kinds[i], vals[i], versions[i]);
        END IF;
      END LOOP;
    END;
  END IF;
  IF new_keys IS NULL THEN
    RETURN QUERY SELECT w.ord, w.sqlstate, w.message, w.ok, NULL::text
                   FROM session.write_digests(kinds, digests, problems, vals, expiries, versions,
                                              cfg.default_period, cfg.absolute_lifetime, cfg.max_value_bytes) w;
    RETURN;
  END IF;
  -- New keys go out one row at a time: a statement would be planned with them.
  FOR r IN SELECT * FROM session.write_digests(kinds, digests, problems, vals, expiries, versions,
                                                cfg.default_period, cfg.absolute_lifetime, cfg.max_value_bytes) LOOP
    ord := r.ord;
    sqlstate := r.sqlstate;
    message := r.message;
    ok := r.ok;
    key := CASE WHEN r.sqlstate IS NULL THEN new_keys[r.ord] END;
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[]) IS
  'Applies many writes in one transaction (one WAL flush). Element i is the call kinds[i] (generate, '
  'set, touch, put, merge or clear) with keys[i], vals[i], expiries[i] and versions[i] (the '
  'if_version of a set, put or merge; a NULL array: all unconditional), each array counted from its '
  'first element whatever its lower bound (a NULL array is empty). A merge''s vals[i] is a JSON '
  'object {"set": {...}, "unset": [...]} (either member may be left out), applied as session_merge '
  'applies its set_fields and unset_fields. One row per element, in element order, ord = i from 1: '
  'sqlstate NULL and ok = what the single call returns (clear: whether a session ended), key = the '
  'new key of a generate; or the SQLSTATE the single call would raise (22004, 22001, 22023, SP001, '
  'SP002) with nothing written for that element, or 55P03 when another transaction holds the row or '
  'created the same new session first (not applied; call it again). Elements of one key apply in '
  'element order. Errors of the whole call: 22023 arrays of different lengths or of more than one '
  'dimension; 55P03 a lock wait longer than lock_timeout, at most 2 s.';

CREATE OR REPLACE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint, version bigint)
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
  -- Every element in storage order, whatever the bounds and dimensions: ord counts from 1. The
  -- digests are made here, not in the statement: its plan could carry the keys into a log.
  FOREACH k IN ARRAY keys LOOP
    n := n + 1;
    digests[n] := session.key_digest(k);
  END LOOP;
  RETURN QUERY
    SELECT u.o::integer, s.value, floor(extract(epoch FROM s.expires_at - t))::bigint, s.version
      FROM unnest(digests) WITH ORDINALITY u(d, o)
      JOIN session.sessions s ON s.digest = u.d
     WHERE s.expires_at > t AND NOT s.cleared
     ORDER BY u.o;
END
$$;
COMMENT ON FUNCTION session.session_get_batch(text[]) IS
  'session_get for each element of keys, in one statement: one row per element that session_get '
  'would find, ord = its position in keys (from 1, counting the elements in storage order whatever '
  'the array''s bounds and dimensions), with session_get''s value, period and version. No row for an '
  'element: not found (unknown, cleared, expired or NULL). Rows come in ord order; a key given '
  'twice gets a row for each. A NULL or empty array gives no rows. No errors.';
