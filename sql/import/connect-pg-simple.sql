-- session-postgresql: copy the live sessions of a connect-pg-simple table into session.sessions.
--
-- Not a migration: `session-pg import connect-pg-simple` (src/import.ts) reads these statements,
-- separated by "-- name:" lines, and runs them as the owner of schema session with
-- search_path = pg_catalog, pg_temp. In the statements marked "template", %1$I and %2$I stand for
-- the source schema and table: the CLI fills them in with pg_catalog.format(), which quotes them.
-- The source table is only ever read.
--
-- connect-pg-simple stores sid (express-session's id, the cookie's content), sess (the session as
-- JSON) and expire (timestamp without time zone, written and read in the connection's TimeZone).
-- Our Express store keeps sha256(sid) as the digest, the session's JSON text as the value, and the
-- expiry as a timestamptz: the cookie the browser holds keeps working unchanged.
--
-- The source is normally owned by the application's role, and the import runs with the owner's
-- rights: reading it must run no code that the table's owner controls. So the import reads only a
-- plain table (a view's, a foreign table's or a partition's definition can call functions), ONLY
-- that table (not inheritance children), columns of PostgreSQL's own types (another type's cast or
-- output function could be the owner's), no virtual generated column, with row_security = off (a
-- policy's expression runs as the reader; with it off, a policy that applies is an error instead).
-- No index or statistics object on an expression or with a predicate either: planning a read
-- folds their immutable function calls, which run then as the reader, and the owner can declare
-- its own function immutable. Triggers and rules do not fire on SELECT (a SELECT rule makes the
-- table a view); operators and functions resolve in pg_catalog (pg_temp is never searched for
-- them), and casts between built-in types belong to the bootstrap superuser. Each read runs in a
-- transaction that first locks the table (ACCESS SHARE: the app's reads and writes go on, but no
-- ALTER can change the table until the read is over) and checks it again, and again after the
-- read: CREATE INDEX and CREATE STATISTICS do not wait for that lock, so one made during the read
-- rolls the transaction back, with whatever its expression did in it.

-- name: setup
-- $1: the time zone in which to read expire (NULL: the connection's, as connect-pg-simple did).
-- session_pg.import_after is where the next batch resumes: '' at the start, then '>' and the last
-- sid read. It stays in this connection: a sid sent back as a parameter could reach the server log
-- (log_min_duration_statement logs parameters), and sids are session keys.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),
       pg_catalog.set_config('row_security', 'off', false),
       -- 'on' would fold the immutable calls of the table's CHECK constraints while planning.
       pg_catalog.set_config('constraint_exclusion', 'partition', false),
       -- The batch's estimates (session.config's row count unknown) crossed the JIT threshold:
       -- compiling took 85 ms of a 160 ms batch.
       pg_catalog.set_config('jit', 'off', false),
       pg_catalog.set_config('TimeZone', coalesce($1::text, pg_catalog.current_setting('TimeZone')), false),
       pg_catalog.set_config('session_pg.import_after', '', false);

-- name: fill
-- Fills a template with the source schema and table, quoted as identifiers.
SELECT format($1::text, $2::text, $3::text) AS text;

-- name: inspect
-- $1 schema, $2 table. One row: the relation's oid and kind (NULL: none of that name), its
-- columns with their types (name and oid), its virtual generated columns, whether row-level
-- security applies to this role, whether sid is unique on its own (keyset pagination and ON
-- CONFLICT need one row per sid), whether migration 005 is installed here, and whether this role
-- may read the source and write ours. Looked up in the catalog rather than with to_regclass,
-- which fails outright without USAGE on the schema: a role that may not read the table gets the
-- answer "may not read", not an error.
WITH src AS (SELECT c.oid AS rel, c.relkind::text AS kind
               FROM (VALUES (1)) one
               LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace)
                 ON n.nspname = $1::text AND c.relname = $2::text),
ours AS (SELECT to_regclass('session.sessions') AS rel)
SELECT src.rel IS NOT NULL AS found, src.rel::int8 AS oid, src.kind,
       (SELECT coalesce(json_object_agg(a.attname, format_type(a.atttypid, NULL)), '{}')
          FROM pg_attribute a
         WHERE a.attrelid = src.rel AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       (SELECT coalesce(json_object_agg(a.attname, a.atttypid::int8), '{}')
          FROM pg_attribute a
         WHERE a.attrelid = src.rel AND a.attnum > 0 AND NOT a.attisdropped) AS type_oids,
       (SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
          FROM pg_attribute a
         WHERE a.attrelid = src.rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = 'v') AS virtual,
       CASE WHEN src.kind = 'r' THEN row_security_active(src.rel) ELSE false END AS rls,
       (SELECT coalesce(array_agg(x.name ORDER BY x.name), '{}') FROM (
          SELECT i.indexrelid::regclass::text AS name FROM pg_index i
           WHERE i.indrelid = src.rel AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)
          UNION ALL
          SELECT format('%I.%I', n.nspname, e.stxname) FROM pg_statistic_ext e JOIN pg_namespace n ON n.oid = e.stxnamespace
           WHERE e.stxrelid = src.rel AND e.stxexprs IS NOT NULL) x) AS expressions,
       EXISTS (SELECT FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = src.rel AND i.indisunique AND i.indnkeyatts = 1
                  AND i.indpred IS NULL AND a.attname = 'sid') AS sid_unique,
       EXISTS (SELECT FROM pg_attribute a
                WHERE a.attrelid = ours.rel AND a.attname = 'written_at' AND NOT a.attisdropped) AS installed,
       CASE WHEN src.rel IS NULL THEN false
            ELSE has_schema_privilege($1::text, 'USAGE') AND has_table_privilege(src.rel, 'SELECT') END AS can_read,
       CASE WHEN ours.rel IS NULL THEN false
            ELSE has_table_privilege(ours.rel, 'SELECT, INSERT, UPDATE')
                 AND has_table_privilege('session.config', 'SELECT') END AS can_write
  FROM src, ours;

-- name: lock
-- Template. Opens the transaction of one read: nothing can alter or replace the table until it ends.
BEGIN; LOCK TABLE ONLY %1$I.%2$I IN ACCESS SHARE MODE;

-- name: count
-- Template. The live sessions of the source, for the progress lines ("imported N of M").
SELECT count(*) AS live FROM ONLY %1$I.%2$I src WHERE src.expire::timestamptz > clock_timestamp();

-- name: batch
-- Template. $1: the batch size. Reads the next $1 source rows in sid order after
-- session_pg.import_after (keyset pagination over the primary key, expired rows included so every
-- batch is bounded), writes the eligible ones, and moves session_pg.import_after, in one statement:
--  - expired source rows are skipped, and so are rows without expire or sess (connect-pg-simple
--    never returns them);
--  - an expire more than 100 years ahead is skipped: session.expiry_at's bound, which any write
--    obeys (3155760000 s);
--  - ids our Express store would refuse to save (session_put's rule: 32 to 1024 base64url
--    characters) are skipped, or the user's next change would fail instead of starting afresh;
--  - values over session.config.max_value_bytes are skipped (session_set would refuse them too);
--  - an existing row of ours wins when it is live (written by our store, or a previous import) or
--    a tombstone (the user logged out with our store); only an expired row that is not a tombstone
--    is replaced, by a source session that expires later. Running the import again writes nothing.
-- A session written here is a new session, as session_generate makes one: created now, ending at the
-- configured absolute lifetime if any (session.ends_at), its expiry capped by that end. A replaced
-- row of ours becomes that new session too: its old end, subject, label and handle go.
WITH clock AS MATERIALIZED (SELECT now.t, session.ends_at(NULL, now.t) AS cap
                              FROM (SELECT clock_timestamp() AS t) now),
pos AS MATERIALIZED (
  SELECT substr(v, 2) AS after, v <> '' AS started
    FROM (SELECT current_setting('session_pg.import_after') AS v) setting
),
page AS (
  -- ">=" keeps the index range scan; the first batch also reads a sid equal to '' (counted as a bad id).
  SELECT src.sid, src.sess::text AS value, src.expire::timestamptz AS expires_at
    FROM ONLY %1$I.%2$I src
   WHERE src.sid >= (SELECT pos.after FROM pos)
     AND (src.sid <> (SELECT pos.after FROM pos) OR NOT (SELECT pos.started FROM pos))
   ORDER BY src.sid
   LIMIT $1
),
verdicts AS (
  SELECT p.sid, p.value, p.expires_at, session.key_digest(p.sid::text) AS digest,
         -- What of ours has this id, in the snapshot before this statement: for a row the INSERT
         -- below leaves alone, whether it was a live session or a tombstone. A subquery per row, one
         -- index probe each: as a join, the planner (with session.sessions' statistics not yet
         -- updated by the import) chose a hash join over the whole table, once per batch.
         (SELECT o.cleared FROM session.sessions o WHERE o.digest = session.key_digest(p.sid::text)) AS ours_cleared,
         CASE WHEN p.expires_at IS NULL OR p.value IS NULL OR p.expires_at <= clock.t THEN 'expired'
              WHEN p.expires_at > clock.t + make_interval(secs => 3155760000) THEN 'too_far'
              WHEN octet_length(p.sid) > 1024 OR p.sid !~ '^[A-Za-z0-9_-]{32,}$' THEN 'bad_id'
              WHEN octet_length(p.value) > cfg.max_value_bytes THEN 'too_large'
              ELSE 'ok' END AS verdict
    FROM page p CROSS JOIN clock CROSS JOIN session.config cfg
),
written AS (
  INSERT INTO session.sessions AS s (digest, expires_at, value, created_at, written_at, ends_at)
  SELECT r.digest, least(r.expires_at, c.cap), r.value, c.t, c.t, c.cap FROM verdicts r, clock c WHERE r.verdict = 'ok'
  ON CONFLICT (digest) DO UPDATE
    SET value = excluded.value, expires_at = excluded.expires_at, created_at = excluded.created_at,
        written_at = excluded.written_at, ends_at = excluded.ends_at,
        subject = NULL, label = NULL, handle = NULL
   WHERE NOT s.cleared AND s.expires_at <= (SELECT clock.t FROM clock)
     AND excluded.expires_at > s.expires_at
  RETURNING s.digest, s.xmax = 0 AS inserted
)
SELECT set_config('session_pg.import_after',
                  coalesce('>' || (SELECT p.sid FROM page p ORDER BY p.sid DESC LIMIT 1),
                           current_setting('session_pg.import_after')), false) IS NOT NULL AS position_saved,
       count(*) AS scanned,
       count(*) FILTER (WHERE r.verdict = 'expired') AS expired,
       count(*) FILTER (WHERE r.verdict = 'bad_id') AS bad_ids,
       count(*) FILTER (WHERE r.verdict = 'too_large') AS too_large,
       count(*) FILTER (WHERE r.verdict = 'too_far') AS too_far,
       count(*) FILTER (WHERE w.inserted) AS imported,
       count(*) FILTER (WHERE NOT w.inserted) AS replaced,
       count(*) FILTER (WHERE r.verdict = 'ok' AND w.digest IS NULL AND r.ours_cleared) AS cleared,
       count(*) FILTER (WHERE r.verdict = 'ok' AND w.digest IS NULL AND NOT coalesce(r.ours_cleared, false)) AS kept
  FROM verdicts r
  LEFT JOIN written w ON w.digest = r.digest;
