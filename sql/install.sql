-- session-postgresql install for psql, without Node:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/install.sql
-- Applies the steps of sql/steps/ that are not applied yet, in one transaction, and
-- records them in the same table node-pg-migrate uses, so either tool can take over later.
-- The roles granted to default to session_client and session_admin; one pair per database:
--   psql -v client_role=shop_session -v admin_role=shop_session_admin -d shop -f sql/install.sql
-- A PL/Proxy proxy's role defaults to session_proxy, or <client_role>_proxy: -v proxy_role=...
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

-- A database installed by a pre-release (0.1.0 development versions, before the 1.0 baseline)
-- is refused: its schema is not the baseline's, and no step upgrades it. Nothing is changed.
SELECT EXISTS (SELECT FROM public.session_migrations
                WHERE name IN ('001_core', '002_purge_job', '003_security', '004_batch', '005_accounts',
                               '006_partition', '007_batch_rows', '008_batch_fast', '009_get_batch',
                               '010_batch_arrays')) AS prerelease \gset
\if :prerelease
DO $$ BEGIN
  RAISE EXCEPTION 'session-postgresql: this database was installed by a pre-release of session-postgresql; nothing was changed'
    USING ERRCODE = 'object_not_in_prerequisite_state',
          HINT = 'Export what you need, remove it with sql/uninstall.sql (every session is lost), then install again.';
END $$;
\endif

SELECT NOT EXISTS (SELECT FROM public.session_migrations WHERE name = '001_baseline') AS apply \gset
\if :apply
\ir steps/001_baseline.sql
INSERT INTO public.session_migrations (name, run_on) VALUES ('001_baseline', now());
\endif

COMMIT;
