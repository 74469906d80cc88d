-- Reverts 002_purge_job: the job goes back to one session_purge() call a minute.
DO $$
DECLARE
  job bigint;
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    SELECT j.jobid INTO job FROM cron.job j WHERE j.jobname = 'session-purge' AND j.database = current_database();
    IF job IS NOT NULL THEN
      PERFORM cron.alter_job(job, command => 'SELECT session.session_purge()');
    END IF;
  END IF;
END
$$;

DROP PROCEDURE session.session_purge_job(integer, double precision);
