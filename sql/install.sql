-- session-postgresql install for psql, without Node:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/install.sql
-- Applies the numbered files of this folder that are not applied yet, in one transaction, and
-- records them in the same table node-pg-migrate uses, so either tool can take over later.
-- The roles granted to default to session_client and session_admin; one pair per database:
--   psql -v client_role=shop_session -v admin_role=shop_session_admin -d shop -f sql/install.sql
-- A PL/Proxy proxy's role (006) defaults to session_proxy, or <client_role>_proxy: -v proxy_role=...
\set ON_ERROR_STOP on
BEGIN;
-- Pinned for the whole install: a function or operator that another role planted in "$user" or
-- public (say a better-matching format(...)) can never run with the installer's rights.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true) AS search_path \gset
\if :{?client_role}
SELECT pg_catalog.set_config('session_postgresql.client_role', :'client_role', true) AS client_role \gset
\else
SELECT pg_catalog.set_config('session_postgresql.client_role', 'session_client', true) AS client_role \gset
\endif
\if :{?admin_role}
SELECT pg_catalog.set_config('session_postgresql.admin_role', :'admin_role', true) AS admin_role \gset
\else
SELECT pg_catalog.set_config('session_postgresql.admin_role', 'session_admin', true) AS admin_role \gset
\endif
\if :{?proxy_role}
SELECT pg_catalog.set_config('session_postgresql.proxy_role', :'proxy_role', true) AS proxy_role \gset
\endif
-- The advisory lock node-pg-migrate takes, so psql and Node installs never run at once.
SELECT pg_catalog.pg_advisory_xact_lock(7241865325823964) AS locked \gset
CREATE TABLE IF NOT EXISTS public.session_migrations (
  id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL);

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '001_core') AS apply \gset
\if :apply
-- 001's notices advise on the pg_cron job with its first command; 002, applied next, gives the
-- same advice with the job's final one (CALL session.session_purge_job()): only 002's is shown.
SELECT pg_catalog.current_setting('client_min_messages') AS min_messages \gset
SELECT pg_catalog.set_config('client_min_messages', 'warning', true) AS quiet \gset
\ir 001_core.up.sql
SELECT pg_catalog.set_config('client_min_messages', :'min_messages', true) AS quiet \gset
INSERT INTO public.session_migrations (name, run_on) VALUES ('001_core', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '002_purge_job') AS apply \gset
\if :apply
\ir 002_purge_job.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('002_purge_job', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '003_security') AS apply \gset
\if :apply
\ir 003_security.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('003_security', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '004_batch') AS apply \gset
\if :apply
\ir 004_batch.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('004_batch', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '005_accounts') AS apply \gset
\if :apply
\ir 005_accounts.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('005_accounts', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '006_partition') AS apply \gset
\if :apply
\ir 006_partition.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('006_partition', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '007_batch_rows') AS apply \gset
\if :apply
\ir 007_batch_rows.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('007_batch_rows', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '008_batch_fast') AS apply \gset
\if :apply
\ir 008_batch_fast.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('008_batch_fast', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '009_get_batch') AS apply \gset
\if :apply
\ir 009_get_batch.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('009_get_batch', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '010_batch_arrays') AS apply \gset
\if :apply
\ir 010_batch_arrays.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('010_batch_arrays', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '011_merge_versions') AS apply \gset
\if :apply
\ir 011_merge_versions.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('011_merge_versions', now());
\endif

COMMIT;
