-- Reverts 004_batch: clients fall back to the single calls, which 004 left unchanged.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

DROP FUNCTION session.session_write_batch(text[], text[], text[], bigint[]);
DROP FUNCTION session.write_check(text, text, text, bigint, integer);
