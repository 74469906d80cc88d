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
