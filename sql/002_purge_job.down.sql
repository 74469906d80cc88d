-- Reverts 002_purge_job: the job goes back to one session_purge() call a minute. A job left calling
-- the dropped procedure would fail every minute, so where this role cannot change it (as in the up
-- migration), it prints the call that does.
DO $$
DECLARE
  job_command constant text := 'SELECT session.session_purge()';
  by_hand constant text := format(
    'SELECT cron.alter_job(jobid, command => %L) FROM cron.job WHERE jobname = %L AND database = %L;',
    job_command, 'session-purge', current_database());
  cron_db text;
  job bigint;
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    BEGIN
      -- cron.job has row-level security: a role other than a superuser sees only its own jobs.
      SELECT j.jobid INTO job FROM cron.job j WHERE j.jobname = 'session-purge' AND j.database = current_database();
      IF job IS NOT NULL THEN
        PERFORM cron.alter_job(job, command => job_command);
      ELSIF NOT pg_catalog.current_setting('is_superuser')::boolean THEN
        RAISE NOTICE 'session-postgresql: % has no pg_cron job named session-purge here; if another role scheduled it, it now calls a procedure that is gone', current_user
          USING HINT = 'That role or a superuser must run: ' || by_hand;
      END IF;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: % may not change pg_cron jobs; the purge job now calls a procedure that is gone', current_user
        USING HINT = 'A superuser must run: ' || by_hand;
    END;
  ELSE
    BEGIN
      cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
      cron_db := NULL;
    END;
    IF cron_db IS NOT NULL AND cron_db <> current_database() THEN
      RAISE NOTICE 'session-postgresql: if a purge job for this database runs in database %, it must go back to session_purge()', cron_db
        USING HINT = format('In database %I, run: SELECT cron.alter_job(jobid, command => %L) FROM cron.job WHERE jobname = %L;',
                            cron_db, job_command, 'session-purge-' || current_database());
    END IF;
  END IF;
END
$$;

DROP PROCEDURE session.session_purge_job(integer, double precision);
