-- session-postgresql proxy 004: session_get_batch (many gets in one call), routed. Needs partition
-- migration 009_get_batch on every partition.
SET search_path = pg_catalog, pg_temp;

-- Each partition gets the elements whose keys it holds, all partitions at once (SPLIT), with their
-- element numbers, which it puts on the rows it finds: rows from several partitions then need no
-- matching on the proxy, and a key given twice is two elements as on one database.
CREATE FUNCTION session_proxy.partition_get_batch(keys text[], ords integer[])
RETURNS TABLE (ord integer, value text, period bigint)
LANGUAGE plproxy
AS $$
  CLUSTER 'session_partitions';
  SPLIT keys, ords;
  RUN ON session_proxy.key_hash(keys);
  -- In parentheses: PL/Proxy sends an argument as $n::type, and a subscript must not follow a cast.
  SELECT (ords)[b.ord] AS ord, b.value, b.period FROM session.session_get_batch(keys) b;
$$;
REVOKE ALL ON FUNCTION session_proxy.partition_get_batch(text[], integer[]) FROM PUBLIC;

CREATE FUNCTION session.session_get_batch(keys text[]) RETURNS TABLE (ord integer, value text, period bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- One dimension, numbered from 1, as unnest WITH ORDINALITY numbers the elements on one database.
  flat constant text[] := ARRAY(SELECT k FROM unnest(keys) k);
BEGIN
  IF cardinality(flat) = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT b.ord, b.value, b.period
      FROM session_proxy.partition_get_batch(flat, ARRAY(SELECT generate_series(1, cardinality(flat)))) b
     ORDER BY b.ord;
EXCEPTION WHEN internal_error THEN
  PERFORM session_proxy.unreachable(SQLERRM);
  RAISE;
END
$$;
SELECT session_proxy.grant_public('session_get_batch', ARRAY['keys text[]'], ARRAY['client']);
COMMENT ON FUNCTION session.session_get_batch(text[]) IS
  'Many gets in one call: one row (ord, value, period) for each element of keys that session_get '
  'would find, ord being its 1-based position, in ord order; no row for an element not found. A '
  'NULL or empty array gives no rows. Through the proxy: the partitions holding the keys are asked '
  'in parallel; 08006 when one of them is unreachable (the whole call fails: send the gets one by '
  'one to have the other partitions'' keys answered).';
