-- Reverts 006_partition. The proxy role is kept: roles are cluster-wide, other databases may use it.
SET search_path = pg_catalog, pg_temp;

DO $$
DECLARE
  proxy constant name := (SELECT c.proxy_role FROM session.config c);
BEGIN
  IF proxy IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) proxy) THEN
    EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA session FROM %I', proxy);
  END IF;
END
$$;
DROP FUNCTION session.partition_write_batch(text[], text[], text[], bigint[]);
DROP FUNCTION session.partition_rotate(text, text);
DROP FUNCTION session.partition_generate(text, bigint, text, text, text, bigint);
DROP FUNCTION session.check_proxy_key(text);
ALTER TABLE session.config DROP COLUMN proxy_role;
