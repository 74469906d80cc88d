-- Settings (default period, absolute lifetime), purging, statistics and the pg_cron job: the
-- admin role's calls and the owner's.

CREATE OR REPLACE FUNCTION session.session_default_period() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.default_period FROM session.config c);
END
$$;
COMMENT ON FUNCTION session.session_default_period() IS
  'The period in seconds given to sessions generated or set without an expiry (604800 after install).';

CREATE OR REPLACE FUNCTION session.session_set_default_period(period bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF period IS NULL OR period NOT BETWEEN 1 AND 3155760000 THEN
    RAISE EXCEPTION 'default period must be between 1 and 3155760000 seconds, got %',
                    coalesce(period::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET default_period = period;
END
$$;
COMMENT ON FUNCTION session.session_set_default_period(bigint) IS
  'Admin role. Sets the default period for sessions generated or set from now on; existing '
  'sessions keep their expiry. Errors: 22023 NULL, non-positive or more than 3155760000.';

CREATE OR REPLACE FUNCTION session.session_absolute_lifetime() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT c.absolute_lifetime FROM session.config c);
END
$$;
COMMENT ON FUNCTION session.session_absolute_lifetime() IS
  'The absolute lifetime in seconds given to new sessions, NULL for none. No errors.';

CREATE OR REPLACE FUNCTION session.session_set_absolute_lifetime(lifetime bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF lifetime IS NOT NULL AND lifetime NOT BETWEEN 1 AND 3155760000 THEN
    RAISE EXCEPTION 'absolute lifetime must be NULL or between 1 and 3155760000 seconds, got %', lifetime
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE session.config SET absolute_lifetime = lifetime;
END
$$;
COMMENT ON FUNCTION session.session_set_absolute_lifetime(bigint) IS
  'Admin role. The lifetime of sessions created from now on, however often they are extended '
  '(NULL = none, the default). Existing sessions keep theirs. Errors: 22023 outside 1..3155760000.';

-- Sweeps the heap in ranges of 128 blocks (1 MiB) with TID range scans, resuming where the previous
-- call stopped, so no index on expires_at is needed and every DELETE is short. A call ends once it
-- has deleted batch_size rows or swept the whole table; 0 therefore means nothing expired is left.
-- Row locks are only taken on expired rows, which no reader or writer of a live session touches.
CREATE OR REPLACE FUNCTION session.session_purge(batch_size integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  step    constant bigint := 128::bigint;
  pages   bigint;
  at      bigint;
  swept   bigint := 0::bigint;
  deleted bigint := 0::bigint;
  n       bigint;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be a positive integer, got %', coalesce(batch_size::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Another purge holds the cursor (perhaps in a transaction left open): it will do the work, and
  -- waiting for it could stall the pg_cron job for as long as that transaction lives.
  SELECT p.next_block INTO at FROM session.purge_state p FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN 0::bigint;
  END IF;
  pages := pg_relation_size('session.sessions'::regclass) / current_setting('block_size')::bigint;
  WHILE swept < pages AND deleted < batch_size LOOP
    IF at >= pages THEN
      at := 0;
    END IF;
    DELETE FROM session.sessions s
     WHERE s.ctid >= format('(%s,0)', at)::tid
       AND s.ctid < format('(%s,0)', at + step)::tid
       AND s.expires_at <= clock_timestamp();
    GET DIAGNOSTICS n = ROW_COUNT;
    deleted := deleted + n;
    at := at + step;
    swept := swept + step;
  END LOOP;
  UPDATE session.purge_state SET next_block = at;
  RETURN deleted;
END
$$;
COMMENT ON FUNCTION session.session_purge(integer) IS
  'Deletes expired sessions (and the tombstones of cleared ones once they expire), sweeping 1 MiB '
  'block ranges until about batch_size rows are gone or the whole table was swept, and returns how '
  'many it deleted; call until it returns 0. Returns 0 at once, without waiting, while another '
  'purge is in progress. Errors: 22023 batch_size NULL or < 1.';

-- A procedure, not a function: only a procedure can COMMIT between batches, so no transaction
-- grows with the backlog. For the same reason it cannot be SECURITY DEFINER or pin its
-- search_path (PostgreSQL forbids transaction control then): it runs with its caller's rights, and
-- every name in it is schema-qualified. Only the owner (and so the pg_cron job it schedules) may
-- call it; session_purge, which it calls, is SECURITY DEFINER.
CREATE OR REPLACE PROCEDURE session.session_purge_job(budget_seconds integer DEFAULT 30,
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

-- For DBAs (the owner; not granted to session_client): counts scan the table, so not for hot paths.
CREATE OR REPLACE FUNCTION session.session_stats(OUT live bigint, OUT expired bigint, OUT table_bytes bigint,
                                                 OUT index_bytes bigint, OUT default_period bigint,
                                                 OUT max_value_bytes integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t constant timestamptz := clock_timestamp();
BEGIN
  SELECT count(*) FILTER (WHERE s.expires_at > t AND NOT s.cleared), count(*) FILTER (WHERE s.expires_at <= t)
    INTO live, expired FROM session.sessions s;
  table_bytes := pg_table_size('session.sessions'::regclass);
  index_bytes := pg_indexes_size('session.sessions'::regclass);
  SELECT c.default_period, c.max_value_bytes INTO default_period, max_value_bytes FROM session.config c;
END
$$;
COMMENT ON FUNCTION session.session_stats() IS
  'For the admin role: live and expired (not yet purged) sessions, table and index bytes, and the '
  'settings. Scans the table: not for hot paths.';

-- The purge job: every minute, session_purge_job() as the owner. Correctness never depends on it:
-- expired sessions are never returned. Where this role cannot schedule it, a NOTICE gives the
-- exact call that does.
DO $$
DECLARE
  command constant text := 'CALL session.session_purge_job()';
  elsewhere constant text := pg_catalog.format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                                    'session-purge-' OPERATOR(pg_catalog.||) pg_catalog.current_database(),
                                    '* * * * *', command, pg_catalog.current_database());
  cron_db text;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
    BEGIN
      cron_db := pg_catalog.current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: % may not read cron.database_name, so no purge job was scheduled', CURRENT_USER
        USING HINT = 'If pg_cron is installed, a superuser must run, in pg_cron''s database: ' OPERATOR(pg_catalog.||) elsewhere;
      RETURN;
    END;
    IF cron_db IS NULL THEN
      RAISE NOTICE 'session-postgresql: pg_cron is not loaded, so no purge job was scheduled'
        USING HINT = 'Expired sessions are never returned, but rows stay until purged. Every minute, outside a '
                     'transaction block, as the owner: ' OPERATOR(pg_catalog.||) command OPERATOR(pg_catalog.||) '; or install pg_cron.';
      RETURN;
    END IF;
    IF cron_db OPERATOR(pg_catalog.<>) pg_catalog.current_database() THEN
      RAISE NOTICE 'session-postgresql: pg_cron lives in database %, not %; schedule the purge job there',
                   cron_db, pg_catalog.current_database()
        USING HINT = pg_catalog.format('In database %I, run: %s', cron_db, elsewhere);
      RETURN;
    END IF;
    BEGIN
      CREATE EXTENSION pg_cron;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'session-postgresql: pg_cron is loaded but % may not CREATE EXTENSION pg_cron', CURRENT_USER
        USING HINT = pg_catalog.format('A superuser must run: CREATE EXTENSION pg_cron; SELECT cron.schedule(%L, %L, %L);',
                                       'session-purge', '* * * * *', command);
      RETURN;
    END;
  END IF;
  -- cron.schedule upserts by job name: re-running never adds a second job.
  BEGIN
    PERFORM cron.schedule('session-purge', '* * * * *', command);
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'session-postgresql: % may not use pg_cron, so no purge job was scheduled', CURRENT_USER
      USING HINT = pg_catalog.format('A superuser must run: GRANT USAGE ON SCHEMA cron TO %I; or SELECT cron.schedule(%L, %L, %L);',
                                     CURRENT_USER, 'session-purge', '* * * * *', command);
  END;
END
$$;
