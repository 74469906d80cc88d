-- session-postgresql install for psql, without Node:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/install.sql
-- Applies the numbered files of this folder that are not applied yet, in one transaction, and
-- records them in the same table node-pg-migrate uses, so either tool can take over later.
\set ON_ERROR_STOP on
BEGIN;
-- The advisory lock node-pg-migrate takes, so psql and Node installs never run at once.
SELECT pg_advisory_xact_lock(7241865325823964);
CREATE TABLE IF NOT EXISTS public.session_migrations (
  id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL);

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '001_core') AS apply \gset
\if :apply
\ir 001_core.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('001_core', now());
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '002_purge_job') AS apply \gset
\if :apply
\ir 002_purge_job.up.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('002_purge_job', now());
\endif

COMMIT;
