-- session-postgresql uninstall for psql, without Node:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/uninstall.sql
-- Drops schema session with every session in it, and the pg_cron purge job scheduled in this
-- database. Also removes an install made by a pre-release. The roles are kept: they are
-- cluster-wide, and other databases of the cluster may still use them. A DBA who wants them gone
-- runs DROP ROLE for each (session_client, session_admin, session_proxy by default).
\set ON_ERROR_STOP on
BEGIN;
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true) AS search_path \gset
SELECT pg_catalog.pg_advisory_xact_lock(7241865325823964) AS locked \gset
SELECT pg_catalog.to_regclass('public.session_migrations') IS NOT NULL AS installed \gset
\if :installed
DO $$
DECLARE
  cron_db text;
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
    -- cron.unschedule errors on an unknown name, hence the look-up first.
    IF EXISTS (SELECT FROM cron.job WHERE jobname OPERATOR(pg_catalog.=) 'session-purge') THEN
      PERFORM cron.unschedule('session-purge');
    END IF;
    RETURN;
  END IF;
  -- Where pg_cron is loaded, only a superuser may read its setting: the owner gets the advice anyway.
  BEGIN
    cron_db := pg_catalog.current_setting('cron.database_name', true);
  EXCEPTION WHEN insufficient_privilege THEN
    cron_db := 'not readable by ' OPERATOR(pg_catalog.||) CURRENT_USER;
  END;
  IF cron_db IS NOT NULL THEN
    RAISE NOTICE 'session-postgresql: if a purge job for this database was scheduled in pg_cron''s database (%), remove it there', cron_db
      USING HINT = pg_catalog.format('SELECT cron.unschedule(%L);', 'session-purge-' OPERATOR(pg_catalog.||) pg_catalog.current_database());
  END IF;
END
$$;
DROP SCHEMA IF EXISTS session CASCADE;
DELETE FROM public.session_migrations;
\endif
COMMIT;
