-- session-postgresql 011: versions, conditional writes and merges.
--
-- Every session has a version, which every write of its value changes (set, put, merge, and the
-- value a generate or put creates; a touch does not, and a rotate gives the session under its
-- new key a new version). session_get and
-- session_get_batch return it; session_set, session_put and session_merge take an if_version:
-- when the session's version has moved since, they raise SP001 and change nothing.
-- session_merge changes top-level fields of a stored JSON object in one UPDATE, so requests that
-- change different fields of one session in parallel all keep their changes.
SET search_path = pg_catalog, pg_temp;

-- A new row's version is the microsecond it was made, and each write adds one: a session made
-- again under the same key after the old one was purged starts far above any version the old one
-- reached, so a version read from the old one never matches the new one. Rows from before this
-- migration start at 0. A default set after ADD COLUMN: the table is not rewritten.
ALTER TABLE session.sessions ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE session.sessions ALTER COLUMN version SET DEFAULT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
COMMENT ON COLUMN session.sessions.version IS
  'Private. Changes on every write of the value; starts at the microsecond the row was made.';

-- Private helper: true when a conditional write may go ahead (wanted NULL: unconditional, or the
-- version it read is still the current one); SP001 otherwise. Called in the UPDATE that writes, on
-- the row version it locked, so nothing can move the version in between.
CREATE FUNCTION session.check_version(current bigint, wanted bigint) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF wanted IS NOT NULL AND wanted IS DISTINCT FROM current THEN
    RAISE EXCEPTION 'the session was written since version % was read; nothing was written', wanted
      USING ERRCODE = 'SP001', HINT = 'Read the session again, and write what it holds now.';
  END IF;
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION session.check_version(bigint, bigint) FROM PUBLIC;

-- Private helper: the checks of session_merge's arguments, 'SQLSTATE message' or NULL, shared
-- with the batch (which takes a merge's fields as one JSON object, see merge_problem).
CREATE FUNCTION session.merge_fields_problem(set_fields jsonb, unset_fields text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
  WHEN set_fields IS NOT NULL AND jsonb_typeof(set_fields) <> 'object'
    THEN '22023 set_fields must be a JSON object (or NULL)'
  WHEN array_position(unset_fields, NULL) IS NOT NULL
    THEN '22004 unset_fields must not contain NULL'
END;
REVOKE ALL ON FUNCTION session.merge_fields_problem(jsonb, text[]) FROM PUBLIC;

-- Private helper: a batch merge's fields, vals[i] = '{"set": {...}, "unset": [...]}' (either
-- member may be left out), checked as session_merge checks its arguments: 'SQLSTATE message' or
-- NULL. PostgreSQL 15 cannot test text for JSON without trying: the block catches the cast's error.
CREATE FUNCTION session.merge_problem(fields text) RETURNS text
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
  IF jsonb_typeof(f) <> 'object' OR f - 'set' - 'unset' <> '{}'::jsonb THEN
    RETURN '22023 a merge''s fields must be a JSON object with only "set" and "unset"';
  END IF;
  IF jsonb_typeof(f->'unset') NOT IN ('array', 'null')
     OR EXISTS (SELECT FROM jsonb_array_elements(CASE WHEN jsonb_typeof(f->'unset') = 'array' THEN f->'unset' END) e
                 WHERE jsonb_typeof(e) <> 'string') THEN
    RETURN '22023 "unset" must be an array of field names (strings)';
  END IF;
  RETURN session.merge_fields_problem(CASE WHEN jsonb_typeof(f->'set') <> 'null' THEN f->'set' END, NULL);
END
$$;
REVOKE ALL ON FUNCTION session.merge_problem(text) FROM PUBLIC;

-- Private helper: a stored value with fields removed (unset_fields) then set (set_fields, which
-- win over unset_fields), as jsonb prints it. SP002 when the value is not set or not a JSON
-- object; 22001 when the result exceeds max_value_bytes.
CREATE FUNCTION session.merged_value(value text, set_fields jsonb, unset_fields text[], max_value_bytes integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stored jsonb;
  merged text;
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION 'the session is not set: there is no JSON object to merge into'
      USING ERRCODE = 'SP002', HINT = 'Write a whole value first with session_set or session_put.';
  END IF;
  BEGIN
    stored := value::jsonb;
  EXCEPTION WHEN data_exception THEN
    stored := NULL;
  END;
  IF jsonb_typeof(stored) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'the session''s value is not a JSON object; nothing was merged'
      USING ERRCODE = 'SP002', HINT = 'Only a value holding a JSON object can be merged into.';
  END IF;
  merged := ((stored - coalesce(unset_fields, '{}'::text[])) || coalesce(set_fields, '{}'::jsonb))::text;
  IF octet_length(merged) > max_value_bytes THEN
    RAISE EXCEPTION 'session value is % bytes, more than the limit of % bytes', octet_length(merged), max_value_bytes
      USING ERRCODE = 'string_data_right_truncation',
            HINT = 'Nothing was stored. The owner can raise session.config.max_value_bytes.';
  END IF;
  RETURN merged;
END
$$;
REVOKE ALL ON FUNCTION session.merged_value(text, jsonb, text[], integer) FROM PUBLIC;

-- session_get returns the version too: a new result type.
DROP FUNCTION session.session_get(text);
CREATE FUNCTION session.session_get(key text) RETURNS TABLE (value text, period bigint, version bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
BEGIN
  RETURN QUERY
    SELECT s.value, floor(extract(epoch FROM s.expires_at - t))::bigint, s.version
      FROM session.sessions s
     WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
END
$$;
COMMENT ON FUNCTION session.session_get(text) IS
  'No row: not found (unknown, cleared or expired). One row with NULL value: found, not set. '
  'Otherwise the value, the remaining whole seconds (>= 0) and the version, which every write of '
  'the value changes (pass it as if_version to a conditional write). A NULL key is not found. No errors.';
REVOKE ALL ON FUNCTION session.session_get(text) FROM PUBLIC;

DROP FUNCTION session.session_get_batch(text[]);
CREATE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint, version bigint)
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
REVOKE ALL ON FUNCTION session.session_get_batch(text[]) FROM PUBLIC;

-- One function with a default rather than an overload: session_set(key, value[, expiry]) and
-- named arguments keep working as before.
DROP FUNCTION session.session_set(text, text, bigint);
CREATE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL, if_version bigint DEFAULT NULL)
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
  -- The version is checked on the row this UPDATE locked: the CASE tests it before the value is taken.
  UPDATE session.sessions s
     SET value = CASE WHEN session.check_version(s.version, if_version) THEN session_set.value END,
         version = s.version + 1, expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_set(text, text, bigint, bigint) IS
  'Replaces the value of a live session and restarts its expiry (NULL = default period). Returns '
  'false and creates nothing when the key is unknown, cleared or expired. if_version: write only '
  'if the session is still at this version (from session_get; NULL = unconditional). Errors: '
  '22004 NULL value; 22023 expiry out of range; 22001 value too large; SP001 the version has '
  'moved (nothing written).';
REVOKE ALL ON FUNCTION session.session_set(text, text, bigint, bigint) FROM PUBLIC;

DROP FUNCTION session.session_put(text, text, bigint);
CREATE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL, if_version bigint DEFAULT NULL)
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
  IF if_version IS NOT NULL THEN
    -- A version was read from a live session: only that session may be written, never a new one.
    UPDATE session.sessions s
       SET value = CASE WHEN session.check_version(s.version, if_version) THEN session_put.value END,
           version = s.version + 1, expires_at = least(new_expiry, s.ends_at), written_at = t
     WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
    RETURN FOUND;
  END IF;
  cap := session.ends_at(NULL, t);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT. It never writes over an expired session (not yet purged) or a cleared
  -- one (its tombstone): a request still in flight when the user logged out cannot bring it back.
  INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
  VALUES (d, least(new_expiry, cap), session_put.value, t, t, cap)
  ON CONFLICT (digest) DO UPDATE
    SET value = excluded.value, version = s.version + 1, expires_at = least(excluded.expires_at, s.ends_at), written_at = t
  WHERE s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_put(text, text, bigint, bigint) IS
  'Creates or replaces the session with this key (for frameworks that make their own ids, and only '
  'for an id just made). Returns false, storing nothing, when the key belongs to an expired session '
  'not yet purged or to a cleared one. if_version (NULL = unconditional): replace only a live '
  'session still at this version, never create one (false when there is no live session). Errors: '
  '22004 NULL key or value; 22023 key not 32-1024 base64url characters, or expiry out of range; '
  '22001 value too large; SP001 the version has moved (nothing written).';
REVOKE ALL ON FUNCTION session.session_put(text, text, bigint, bigint) FROM PUBLIC;

CREATE FUNCTION session.session_merge(key text, set_fields jsonb, unset_fields text[] DEFAULT NULL,
                                      expiry bigint DEFAULT NULL, if_version bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  problem constant text := session.merge_fields_problem(set_fields, unset_fields);
  new_expiry timestamptz;
  max_bytes integer;
BEGIN
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION '%', substr(problem, 7) USING ERRCODE = left(problem, 5);
  END IF;
  new_expiry := session.expiry_at(NULL, expiry, t);
  SELECT c.max_value_bytes INTO STRICT max_bytes FROM session.config c;
  -- One UPDATE: the new value is made from the row it locked, so merges of one session in
  -- parallel apply one after the other, each to what the previous one left.
  UPDATE session.sessions s
     SET value = CASE WHEN session.check_version(s.version, if_version)
                      THEN session.merged_value(s.value, set_fields, unset_fields, max_bytes) END,
         version = s.version + 1, expires_at = least(new_expiry, s.ends_at), written_at = t
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION session.session_merge(text, jsonb, text[], bigint, bigint) IS
  'Changes top-level fields of the JSON object a live session holds, in one statement: removes the '
  'fields named in unset_fields, then sets those of set_fields (a JSON object; NULL = none), and '
  'restarts the expiry as session_set does (NULL = default period). The value is stored as jsonb '
  'prints it. Returns false and creates nothing when the key is unknown, cleared or expired. '
  'if_version: as in session_set. Errors: 22023 set_fields not an object, expiry out of range; '
  '22004 NULL in unset_fields; 22001 merged value too large; SP001 the version has moved; SP002 '
  'the session is not set or its value is not a JSON object. Nothing is written on an error.';
REVOKE ALL ON FUNCTION session.session_merge(text, jsonb, text[], bigint, bigint) FROM PUBLIC;

-- 007's checks, with merge among the kinds.
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
  WHEN kind = 'put' AND (octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$')
    THEN '22023 session_put only accepts keys of 32 to 1024 base64url characters'
  WHEN kind IN ('generate', 'set', 'put') AND octet_length(value) > max_value_bytes
    THEN format('22001 session value is %s bytes, more than the limit of %s bytes', octet_length(value), max_value_bytes)
  WHEN kind <> 'clear' AND expiry NOT BETWEEN -3155760000 AND 3155760000
    THEN format('22023 expiry must be between -3155760000 and 3155760000 seconds (100 years), got %s', expiry)
END;
REVOKE ALL ON FUNCTION session.write_problem(text, text, text, bigint, integer) FROM PUBLIC;

-- The checks of a batch element beyond write_problem's, for the elements that need them: a
-- merge's fields, and a version given to a kind that takes none. 'SQLSTATE message' or NULL.
CREATE FUNCTION session.element_problem(kind text, value text, version bigint) RETURNS text
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
REVOKE ALL ON FUNCTION session.element_problem(text, text, bigint) FROM PUBLIC;

-- 010's write_digests with versions and merges. versions[i]: the if_version of a set, put or
-- merge (NULL: unconditional); max_value_bytes bounds a merged value. An element whose version
-- has moved, or whose merge the stored value refuses, gets its SQLSTATE and is not applied; the
-- key's other elements still are. Private.
DROP FUNCTION session.write_digests(text[], bytea[], text[], text[], bigint[], bigint, bigint);
CREATE FUNCTION session.write_digests(kinds text[], digests bytea[], problems text[], vals text[], expiries bigint[],
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

  -- The common case first, in one statement: unconditional sets and touches of keys that occur
  -- once in the batch, checked, written together. It locks their live rows without waiting and
  -- writes them; what it does not write (a failed check, no live session, a row held elsewhere, a
  -- row changed since the statement began) goes the general way below, which gives each such
  -- element its result.
  WITH target AS MATERIALIZED (
    SELECT u.o::integer AS o, u.kind, u.v, u.e, s.ctid AS tid
      FROM unnest(kinds, digests, problems, vals, expiries, versions) WITH ORDINALITY u(kind, d, problem, v, e, ver, o)
      JOIN session.sessions s ON s.digest = u.d
     WHERE u.kind IN ('set', 'touch') AND u.problem IS NULL AND u.ver IS NULL
       AND u.d NOT IN (SELECT x.d FROM unnest(digests) x(d) WHERE x.d IS NOT NULL GROUP BY x.d HAVING count(*) > 1)
       AND s.expires_at > t AND NOT s.cleared
       FOR UPDATE OF s SKIP LOCKED),
  written AS (
    UPDATE session.sessions s
       SET value = CASE WHEN target.kind = 'set' THEN target.v ELSE s.value END,
           version = CASE WHEN target.kind = 'set' THEN s.version + 1 ELSE s.version END,
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
REVOKE ALL ON FUNCTION session.write_digests(text[], bytea[], text[], text[], bigint[], bigint[], bigint, bigint, integer) FROM PUBLIC;

-- Private helper: a batch's versions, numbered from 1 (NULL: every element unconditional). 22023
-- when they are not one-dimensional with n elements. An expression, so a caller checks without a
-- statement.
CREATE FUNCTION session.batch_versions(versions bigint[], n integer) RETURNS bigint[]
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
REVOKE ALL ON FUNCTION session.batch_versions(bigint[], integer) FROM PUBLIC;

-- A new argument, versions: a new signature, so the old one goes (no overloads).
DROP FUNCTION session.session_write_batch(text[], text[], text[], bigint[]);
CREATE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
                                            versions bigint[] DEFAULT NULL)
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
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                      || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
    problems[i] := session.write_problem(kinds[i], keys[i], vals[i], expiries[i], cfg.max_value_bytes);
    IF problems[i] IS NULL AND (kinds[i] = 'merge' OR versions[i] IS NOT NULL) THEN
      problems[i] := session.element_problem(kinds[i], vals[i], versions[i]);
    END IF;
  END LOOP;
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
REVOKE ALL ON FUNCTION session.session_write_batch(text[], text[], text[], bigint[], bigint[]) FROM PUBLIC;

DROP FUNCTION session.partition_write_batch(text[], text[], text[], bigint[]);
CREATE FUNCTION session.partition_write_batch(kinds text[], keys text[], vals text[], expiries bigint[],
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
REVOKE ALL ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[], bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[], bigint[]) IS
  'For the PL/Proxy proxy only: session_write_batch for the elements of one partition, where a '
  'generate element carries the key the proxy made for it (returned in key when stored). Results '
  'and errors as in session_write_batch; 22023 (the whole call) for a generate key not 32-1024 '
  'base64url characters, 23505 if it exists.';

-- A function made by CREATE FUNCTION is executable by PUBLIC until revoked.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA session FROM PUBLIC;

-- 009's grants with the new signatures and session_merge.
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
    'session.session_set(text, text, bigint, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint, bigint), session.session_merge(text, jsonb, text[], bigint, bigint), '
    'session.session_clear(text), session.session_count(), session.session_default_period(), '
    'session.session_set_subject(text, text, text), session.session_list(text, integer), '
    'session.session_revoke(text, text), session.session_revoke_handle(text, uuid), '
    'session.session_rotate(text), session.session_absolute_lifetime(), '
    'session.session_write_batch(text[], text[], text[], bigint[], bigint[]), session.session_get_batch(text[]) TO %I',
    cfg.client_role);
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
  -- The proxy role (006) calls partition_write_batch, whose signature is new.
  IF cfg.proxy_role IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) cfg.proxy_role) THEN
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION session.partition_write_batch(text[], text[], text[], bigint[], bigint[]) TO %I',
                              cfg.proxy_role);
  END IF;
END
$$;
