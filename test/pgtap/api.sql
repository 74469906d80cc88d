-- session-postgresql, checked with pgTAP: what the SQL API does, and what session_client may do.
-- Run it against your own install as the owner or a superuser:   pg_prove -d yourdb test/pgtap/*.sql
-- Everything runs in one transaction that is rolled back, so it leaves no session, setting or pgTAP
-- behind. Meant for a quiet moment: the purge checks sweep session.sessions once and hold the purge
-- lock (a pg_cron purge waits) until the end, and the settings row stays locked until then.
-- Liveness follows the clock, not the transaction's start, so a period read back may be one second
-- less than the one given; expiry is tested with sessions born expired (expiry <= 0), not by waiting.
\set QUIET 1
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SET LOCAL client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(82);

-- The DBA may have changed these; the checks below work from their values.
SELECT session.session_default_period() AS dba_period,
       (SELECT max_value_bytes FROM session.config) AS dba_max_value_bytes \gset
SELECT diag(format('default period %s s%s, max_value_bytes %s', :dba_period,
                   CASE WHEN :dba_period = 604800 THEN ' (as installed)' ELSE ' (changed since install)' END,
                   :dba_max_value_bytes));

-- generate, get, clear (ocaml-session's semantics) ---------------------------------------------------------
SELECT session.session_generate(3600, 'v') AS live, session.session_generate(60) AS unset,
       session.session_generate() AS default_period, session.session_generate(0) AS expired_now,
       session.session_generate(-1, 'v') AS expired_before \gset
SELECT ok(:'live' ~ '^[A-Za-z0-9_-]{64}$', 'generate returns a key of 64 base64url characters');
SELECT isnt(:'live'::text, :'unset'::text, 'two keys differ');
SELECT results_eq(format('SELECT value, period BETWEEN 3599 AND 3600 FROM session.session_get(%L)', :'live'),
                  $$ VALUES ('v'::text, true) $$, 'get gives the value and the remaining period');
SELECT results_eq(format('SELECT value, period BETWEEN 59 AND 60 FROM session.session_get(%L)', :'unset'),
                  $$ VALUES (NULL::text, true) $$, 'a session generated without a value: one row, NULL value (not set)');
SELECT results_eq(format('SELECT period BETWEEN %s - 1 AND %s FROM session.session_get(%L)', :dba_period, :dba_period, :'default_period'),
                  $$ VALUES (true) $$, 'no expiry: the default period');
SELECT is_empty(format('SELECT * FROM session.session_get(%L)', :'expired_now'), 'born expired (expiry 0): not found');
SELECT is_empty(format('SELECT * FROM session.session_get(%L)', :'expired_before'), 'born expired with a value (expiry -1): not found');
SELECT is_empty($$ SELECT * FROM session.session_get('no such key') $$, 'an unknown key: not found');
SELECT is_empty($$ SELECT * FROM session.session_get(NULL) $$, 'a NULL key: not found');
SELECT is_empty(format('SELECT * FROM session.session_get(%L)', repeat('k', 100000)), 'a key over 1024 bytes: not found');
SELECT lives_ok(format('SELECT session.session_clear(%L)', :'unset'), 'clear');
SELECT is_empty(format('SELECT * FROM session.session_get(%L)', :'unset'), 'a cleared key: not found');
SELECT lives_ok(format('SELECT session.session_clear(%L)', :'unset'), 'clear again: no error (idempotent)');
SELECT lives_ok($$ SELECT session.session_clear(NULL) $$, 'clear of a NULL key: no error');

-- set and put --------------------------------------------------------------------------------------------
SELECT is(session.session_set(:'live', 'w', 7200), true, 'set on a live session returns true');
SELECT results_eq(format('SELECT value, period BETWEEN 7199 AND 7200 FROM session.session_get(%L)', :'live'),
                  $$ VALUES ('w'::text, true) $$, 'set replaces the value and restarts the expiry');
SELECT is(session.session_set('chosen by a client', 'v'), false, 'set on an unknown key returns false');
SELECT is_empty($$ SELECT FROM session.sessions WHERE digest = sha256(convert_to('chosen by a client', 'UTF8')) $$,
                '... and creates nothing');
SELECT is(session.session_set(:'expired_before', 'v'), false, 'set on an expired key returns false');
SELECT is_empty(format('SELECT * FROM session.session_get(%L)', :'expired_before'), '... and does not revive it');
SELECT is(session.session_set(:'unset', 'v'), false, 'set on a cleared key returns false');
SELECT is(session.session_set(NULL, 'v'), false, 'set on a NULL key returns false');
SELECT is(session.session_put(repeat('p', 32), 'one', 60), true, 'put creates a session under a 32-character id');
SELECT is(session.session_put(repeat('p', 32), 'two'), true, 'put replaces a live session');
SELECT results_eq(format('SELECT value, period BETWEEN %s - 1 AND %s FROM session.session_get(%L)', :dba_period, :dba_period, repeat('p', 32)),
                  $$ VALUES ('two'::text, true) $$, '... which get then sees, with the default period');
SELECT is(session.session_put(repeat('q', 32), 'born expired', 0), true, 'put of a born-expired session');
SELECT is(session.session_put(repeat('q', 32), 'revive?'), false, 'put never revives an expired session that is not purged yet');

-- touch, and what a clear leaves behind ------------------------------------------------------------------------
SELECT session.session_generate(3600, 'kept') AS touched \gset
SELECT is(session.session_touch(:'touched', 60), true, 'touch on a live session returns true');
SELECT results_eq(format('SELECT value, period BETWEEN 59 AND 60 FROM session.session_get(%L)', :'touched'),
                  $$ VALUES ('kept'::text, true) $$, '... moves only the expiry: the value is kept');
SELECT is(session.session_touch('chosen by a client'), false, 'touch on an unknown key returns false and creates nothing');
SELECT is(session.session_touch(:'expired_before'), false, 'touch on an expired key returns false');
SELECT throws_ok(format('SELECT session.session_touch(%L, 3155760001)', :'touched'), '22023', NULL, 'touch: expiry out of range: 22023');
SELECT is(session.session_put(repeat('c', 32), 'before logout'), true, 'put creates a session');
SELECT lives_ok(format('SELECT session.session_clear(%L)', repeat('c', 32)), '... which is cleared');
SELECT is(session.session_put(repeat('c', 32), 'in flight'), false, 'put never writes over a cleared session');
SELECT is(session.session_set(repeat('c', 32), 'in flight'), false, 'nor does set');
SELECT is(session.session_touch(repeat('c', 32)), false, 'nor touch');
SELECT is_empty(format('SELECT * FROM session.session_get(%L)', repeat('c', 32)), '... the cleared key stays not found');

-- session_count is STABLE: it sees the same snapshot as the subquery, whatever other connections do.
SELECT is(session.session_count(), (SELECT count(*) FROM session.sessions WHERE expires_at > clock_timestamp() AND NOT cleared),
          'count counts live sessions only (expired ones exist at this point)');

-- the default period ---------------------------------------------------------------------------------------
SELECT CASE WHEN :dba_period = 3600 THEN 7200 ELSE 3600 END AS new_period \gset
SELECT lives_ok(format('SELECT session.session_set_default_period(%s)', :new_period), 'set_default_period');
SELECT is(session.session_default_period(), :new_period::bigint, 'default_period reads back what was set');
SELECT session.session_generate() AS after_change \gset
SELECT results_eq(format('SELECT period BETWEEN %s - 1 AND %s FROM session.session_get(%L)', :new_period, :new_period, :'after_change'),
                  $$ VALUES (true) $$, 'a session generated afterwards gets the new period');
SELECT results_eq(format('SELECT period BETWEEN %s - 2 AND %s FROM session.session_get(%L)', :dba_period, :dba_period, :'default_period'),
                  $$ VALUES (true) $$, 'an existing session keeps its expiry');
SELECT lives_ok(format('SELECT session.session_set_default_period(%s)', :dba_period), 'set_default_period back');
SELECT is(session.session_default_period(), :dba_period::bigint, 'default_period is the DBA''s value again');

-- documented SQLSTATEs (README, "SQL API reference") -------------------------------------------------------
SELECT throws_ok('SELECT session.session_generate(3155760001)', '22023', NULL, 'generate: expiry over 100 years: 22023');
SELECT throws_ok('SELECT session.session_generate(-3155760001)', '22023', NULL, 'generate: expiry under -100 years: 22023');
SELECT throws_ok($$ SELECT session.session_set('no such key', 'v', 9223372036854775807) $$, '22023', NULL,
                 'set: expiry out of range: 22023, even for an unknown key (checked before the look-up)');
SELECT throws_ok('SELECT session.session_set_default_period(0)', '22023', NULL, 'set_default_period(0): 22023');
SELECT throws_ok('SELECT session.session_set_default_period(NULL)', '22023', NULL, 'set_default_period(NULL): 22023');
SELECT throws_ok('SELECT session.session_set_default_period(3155760001)', '22023', NULL, 'set_default_period over 100 years: 22023');
SELECT throws_ok('SELECT session.session_purge(0)', '22023', NULL, 'purge with batch_size 0: 22023');
SELECT throws_ok($$ SELECT session.session_put('short', 'v') $$, '22023', NULL, 'put with a key under 32 characters: 22023');
SELECT throws_ok(format('SELECT session.session_put(%L, %L)', repeat('a', 31) || '=', 'v'), '22023', NULL,
                 'put with a key that is not base64url: 22023');
SELECT throws_ok('CALL session.session_purge_job(-1)', '22023', NULL, 'purge_job with a negative budget: 22023');
SELECT throws_ok(format('SELECT session.session_set(%L, NULL)', :'live'), '22004', NULL, 'set with a NULL value: 22004');
SELECT throws_ok($$ SELECT session.session_put(NULL, 'v') $$, '22004', NULL, 'put with a NULL key: 22004');
-- A small limit, in this transaction only, keeps the over-long values small.
UPDATE session.config SET max_value_bytes = 16;
SELECT throws_ok(format('SELECT session.session_generate(60, %L)', repeat('x', 17)), '22001', NULL,
                 'generate with a value over max_value_bytes: 22001');
SELECT throws_ok(format('SELECT session.session_set(%L, %L)', :'live', repeat('é', 9)), '22001', NULL,
                 'set with 9 characters but 18 bytes over a 16-byte limit: 22001 (the limit is in bytes)');
SELECT results_eq(format('SELECT value FROM session.session_get(%L)', :'live'), $$ VALUES ('w'::text) $$,
                  '... and the stored value is kept');
SELECT is(session.session_set(:'live', repeat('x', 16)), true, 'a value of exactly max_value_bytes is accepted');
-- PostgreSQL raises these before the functions run; the README lists them for callers who build SQL.
SELECT throws_ok($$ SELECT session.session_generate('NaN') $$, '22P02', NULL, 'a non-integer expiry: 22P02');
SELECT throws_ok($$ SELECT session.session_generate('9223372036854775808') $$, '22003', NULL, 'an expiry beyond bigint: 22003');
SELECT throws_ok($$ SELECT session.session_get(E'\000') $$, '22021', NULL, 'a key holding a NUL byte: 22021');
SELECT throws_ok('SELECT session.session_get(42)', '42883', NULL, 'an integer key: 42883');
-- A procedure that commits needs a transaction of its own: throws_ok runs it inside this one.
SELECT throws_ok('CALL session.session_purge_job()', '2D000', NULL, 'purge_job inside a transaction block: 2D000');

-- storage ----------------------------------------------------------------------------------------------
SELECT is_empty(format($$ SELECT FROM session.sessions x
                           WHERE strpos(x::text, %1$L) > 0 OR strpos(x::text, encode(convert_to(%1$L, 'UTF8'), 'hex')) > 0 $$, :'live'),
                'the key appears nowhere in session.sessions, as text or as bytes');
SELECT isnt_empty(format($$ SELECT FROM session.sessions WHERE digest = sha256(convert_to(%L, 'UTF8')) $$, :'live'),
                  'its row is keyed by sha256(key)');

-- purge -------------------------------------------------------------------------------------------------
-- The first call also takes whatever backlog this database has (rolled back with the rest); from
-- then on this transaction holds the purge lock, so the counts below are this file's rows alone.
SELECT ok(session.session_purge(2147483647) >= 3, 'a purge of the whole table deletes at least the three expired sessions made above');
SELECT is(session.session_purge(), 0::bigint, 'after a purge of the whole table, purge returns 0');
SELECT session.session_generate(0) AS e1, session.session_generate(-1, 'v') AS e2,
       session.session_generate(-60, 'v') AS e3 \gset
SELECT is(session.session_purge(2147483647), 3::bigint, 'purge deletes the three born-expired sessions and returns 3');
SELECT is_empty(format('SELECT FROM session.sessions WHERE digest IN (sha256(convert_to(%L, ''UTF8'')), sha256(convert_to(%L, ''UTF8'')), sha256(convert_to(%L, ''UTF8'')))',
                       :'e1', :'e2', :'e3'), '... their rows are gone');
SELECT results_eq(format('SELECT value FROM session.session_get(%L)', :'live'), format('VALUES (%L::text)', repeat('x', 16)),
                  '... and a live session is untouched');

-- as session_client ----------------------------------------------------------------------------------------
SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'session_client')
            THEN pg_catalog.pg_has_role('session_client', 'MEMBER') ELSE false END AS can_be_client \gset
\if :can_be_client
SET LOCAL ROLE session_client;
SELECT session.session_generate(60, 'client') AS client_key \gset
SELECT results_eq(format('SELECT value, period BETWEEN 59 AND 60 FROM session.session_get(%L)', :'client_key'),
                  $$ VALUES ('client'::text, true) $$, 'session_client: generate and get');
SELECT is(session.session_set(:'client_key', 'changed'), true, 'session_client: set');
SELECT lives_ok(format('SELECT session.session_clear(%L)', :'client_key'), 'session_client: clear');
SELECT throws_ok('SELECT * FROM session.sessions', '42501', NULL, 'session_client: reading session.sessions: 42501');
SELECT throws_ok('UPDATE session.config SET max_value_bytes = 1', '42501', NULL, 'session_client: changing session.config: 42501');
SELECT throws_ok('SELECT * FROM session.session_stats()', '42501', NULL, 'session_client: the owner-only session_stats: 42501');
SELECT throws_ok('CALL session.session_purge_job()', '42501', NULL, 'session_client: the owner-only session_purge_job: 42501');
SELECT throws_ok('SELECT session.session_set_default_period(1)', '42501', NULL, 'session_client: set_default_period is the admin role''s: 42501');
SELECT throws_ok($$ SELECT session.key_digest('k') $$, '42501', NULL, 'session_client: the private key_digest: 42501');
RESET ROLE;
\else
SELECT skip('SET ROLE session_client needs membership (GRANT session_client TO ' || current_user || ')', 9);
\endif

SELECT * FROM finish();
ROLLBACK;
