-- session-postgresql uninstall for psql, without Node (what "session-pg migrate down" does for each
-- applied migration, newest first):
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/uninstall.sql
-- Drops schema session with every session in it. The roles are kept: they are cluster-wide.
\set ON_ERROR_STOP on
BEGIN;
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true) AS search_path \gset
SELECT pg_catalog.pg_advisory_xact_lock(7241865325823964) AS locked \gset
SELECT pg_catalog.to_regclass('public.session_migrations') IS NOT NULL AS installed \gset
\if :installed

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '011_merge_versions') AS revert \gset
\if :revert
\ir 011_merge_versions.down.sql
DELETE FROM public.session_migrations WHERE name = '011_merge_versions';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '010_batch_arrays') AS revert \gset
\if :revert
\ir 010_batch_arrays.down.sql
DELETE FROM public.session_migrations WHERE name = '010_batch_arrays';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '009_get_batch') AS revert \gset
\if :revert
\ir 009_get_batch.down.sql
DELETE FROM public.session_migrations WHERE name = '009_get_batch';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '008_batch_fast') AS revert \gset
\if :revert
\ir 008_batch_fast.down.sql
DELETE FROM public.session_migrations WHERE name = '008_batch_fast';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '007_batch_rows') AS revert \gset
\if :revert
\ir 007_batch_rows.down.sql
DELETE FROM public.session_migrations WHERE name = '007_batch_rows';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '006_partition') AS revert \gset
\if :revert
\ir 006_partition.down.sql
DELETE FROM public.session_migrations WHERE name = '006_partition';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '005_accounts') AS revert \gset
\if :revert
\ir 005_accounts.down.sql
DELETE FROM public.session_migrations WHERE name = '005_accounts';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '004_batch') AS revert \gset
\if :revert
\ir 004_batch.down.sql
DELETE FROM public.session_migrations WHERE name = '004_batch';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '003_security') AS revert \gset
\if :revert
\ir 003_security.down.sql
DELETE FROM public.session_migrations WHERE name = '003_security';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '002_purge_job') AS revert \gset
\if :revert
\ir 002_purge_job.down.sql
DELETE FROM public.session_migrations WHERE name = '002_purge_job';
\endif

SELECT EXISTS (SELECT FROM public.session_migrations WHERE name = '001_core') AS revert \gset
\if :revert
\ir 001_core.down.sql
DELETE FROM public.session_migrations WHERE name = '001_core';
\endif

\endif
COMMIT;
