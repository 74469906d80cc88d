-- generate / get / set / clear from psql:   psql -X -v ON_ERROR_STOP=1 -d yourdb -f examples/psql.sql
-- Run it as a role that is a member of session_client (or the owner).
\pset footer off
SELECT session.session_generate(3600) AS key \gset
SELECT length(:'key') AS key_length;
\echo get (not set yet):
SELECT value IS NULL AS not_set, period > 3590 AS about_an_hour FROM session.session_get(:'key');
\echo set:
SELECT session.session_set(:'key', 'hello from psql') AS updated;
\echo get:
SELECT value FROM session.session_get(:'key');
\echo clear, then get (not found: no rows):
SELECT session.session_clear(:'key');
SELECT count(*) AS rows_found FROM session.session_get(:'key');
