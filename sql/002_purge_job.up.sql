-- session-postgresql 002: the pg_cron job drains a backlog instead of deleting at most one batch.
--
-- Under 001 the job made one session_purge() call a minute, about 10000 rows: a site where more
-- sessions than that expire per minute (bots that never send their cookie back, short periods)
-- would grow the table forever. The job now calls session_purge_job(), which repeats
-- session_purge() until it returns 0, committing after each call, resting between calls so that
-- the application keeps the server, and stopping after a time budget (the next run goes on).

-- A procedure, not a function: only a procedure can COMMIT between batches, so no transaction
-- grows with the backlog. For the same reason it cannot be SECURITY DEFINER or pin its
-- search_path (PostgreSQL forbids transaction control then): it runs with its caller's rights, and
-- every name in it is schema-qualified. Only the owner (and so the pg_cron job it schedules) may
-- call it; session_purge, which it calls, is SECURITY DEFINER as before.
CREATE PROCEDURE session.session_purge_job(budget_seconds integer DEFAULT 30,
                                           pause double precision DEFAULT 4)
LANGUAGE plpgsql
AS $$
DECLARE
  started     timestamptz := pg_catalog.clock_timestamp();
  call_start  timestamptz;
  took        double precision;
  n           bigint;
BEGIN
  IF budget_seconds IS NULL OR budget_seconds OPERATOR(pg_catalog.<) 0
     OR pause IS NULL OR NOT (pause OPERATOR(pg_catalog.>=) 0 AND pause OPERATOR(pg_catalog.<=) 1000) THEN
    RAISE EXCEPTION 'budget_seconds must be >= 0 and pause between 0 and 1000, got % and %',
                    coalesce(budget_seconds::text, 'NULL'), coalesce(pause::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  LOOP
    call_start := pg_catalog.clock_timestamp();
    n := session.session_purge();
    -- Each batch is its own transaction: row locks and the snapshot are released here.
    COMMIT;
    EXIT WHEN n OPERATOR(pg_catalog.=) 0;
    took := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) call_start);
    -- Stop when the rest and the next call would overrun the budget; the next run resumes.
    EXIT WHEN pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started)
              OPERATOR(pg_catalog.+) took OPERATOR(pg_catalog.*) (pause OPERATOR(pg_catalog.+) 1)
              OPERATOR(pg_catalog.>) budget_seconds;
    PERFORM pg_catalog.pg_sleep(took OPERATOR(pg_catalog.*) pause);
  END LOOP;
END
$$;
COMMENT ON PROCEDURE session.session_purge_job(integer, double precision) IS
  'Owner only; what the pg_cron job calls. Repeats session_purge() until it returns 0 or '
  'budget_seconds have passed, committing after each call and resting pause times each call''s '
  'duration in between. Must be CALLed outside a transaction block (else 2D000). '
  'Errors: 22023 budget_seconds NULL or < 0, pause NULL or outside 0..1000.';
REVOKE ALL ON PROCEDURE session.session_purge_job(integer, double precision) FROM PUBLIC;

-- Point the job at it. Only a job this database's migration scheduled can be changed from here;
-- for one scheduled from pg_cron's database (session-purge-<db>), print the call that updates it.
DO $$
DECLARE
  job_command constant text := 'CALL session.session_purge_job()';
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
        RAISE NOTICE 'session-postgresql: % has no pg_cron job named session-purge here; if another role scheduled it, it still makes one call a minute', current_user
          USING HINT = 'That role or a superuser must run: ' || by_hand;
      END IF;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: % may not change pg_cron jobs; the purge job still makes one call a minute', current_user
        USING HINT = 'A superuser must run: ' || by_hand;
    END;
    RETURN;
  END IF;
  BEGIN
    cron_db := current_setting('cron.database_name', true);
  EXCEPTION WHEN insufficient_privilege THEN
    cron_db := NULL;
  END;
  IF cron_db IS NOT NULL AND cron_db <> current_database() THEN
    -- schedule_in_database upserts by name: this also updates a job scheduled as 001 advised.
    RAISE NOTICE 'session-postgresql: the purge job for this database belongs in database % and should call session_purge_job()', cron_db
      USING HINT = format('In database %I, run: SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                          cron_db, 'session-purge-' || current_database(), '* * * * *', job_command,
                          current_database());
  ELSE
    RAISE NOTICE 'session-postgresql: if you schedule the purge yourself, call session_purge_job()'
      USING HINT = 'Every minute, outside a transaction block, as the owner: ' || job_command;
  END IF;
END
$$;
