-- Reverts 004_batch: clients fall back to the single calls, which 004 left unchanged, and
-- session.grant_roles() is 003's again.
SET search_path = pg_catalog, pg_temp;

DROP FUNCTION session.session_write_batch(text[], text[], text[], bigint[]);
DROP FUNCTION session.write_check(text, text, text, bigint, integer);

CREATE OR REPLACE FUNCTION session.grant_roles() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  EXECUTE format('GRANT USAGE ON SCHEMA session TO %1$I, %2$I', cfg.client_role, cfg.admin_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_generate(bigint, text), session.session_get(text), '
    'session.session_set(text, text, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint), session.session_clear(text), '
    'session.session_count(), session.session_default_period() TO %I', cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count() TO %I', cfg.admin_role);
END
$$;
