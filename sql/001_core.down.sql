-- Reverts 001_core. The cluster-wide role session_client is kept: other databases of the cluster
-- may still use it. A DBA who wants it gone runs: DROP ROLE session_client;
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    -- cron.unschedule errors on an unknown name, hence the look-up first.
    IF EXISTS (SELECT FROM cron.job WHERE jobname = 'session-purge') THEN
      PERFORM cron.unschedule('session-purge');
    END IF;
  ELSIF current_setting('cron.database_name', true) IS DISTINCT FROM NULL THEN
    RAISE NOTICE 'session-postgresql: if a purge job for this database was scheduled in database %, remove it there',
                 current_setting('cron.database_name', true)
      USING HINT = format('SELECT cron.unschedule(%L);', 'session-purge-' || current_database());
  END IF;
END
$$;

DROP SCHEMA session CASCADE;
