-- Reverts 009_get_batch: session_get_batch goes, and grant_roles is 005's again.
SET search_path = pg_catalog, pg_temp;

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
    'session.session_write_batch(text[], text[], text[], bigint[]) TO %I', cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count(), '
    'session.session_set_absolute_lifetime(bigint), session.session_absolute_lifetime() TO %I', cfg.admin_role);
END
$$;

DROP FUNCTION session.session_get_batch(text[]);
