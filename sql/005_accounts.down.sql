-- Reverts 005_accounts: the 003 and 004 definitions and table shape. Subjects, labels and lifetimes are lost.
SET search_path = pg_catalog, pg_temp;

DROP FUNCTION session.session_set_subject(text, text, text), session.session_list(text, integer),
  session.session_revoke(text, text), session.session_revoke_handle(text, uuid), session.session_rotate(text),
  session.session_set_absolute_lifetime(bigint), session.session_absolute_lifetime();
DROP FUNCTION session.session_generate(bigint, text, text, text, bigint);

CREATE FUNCTION session.session_generate(expiry bigint DEFAULT NULL, value text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- Three version-4 UUIDs come from pg_strong_random: 366 random bits, 64 base64url characters.
  new_key constant text := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                            || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
  d constant bytea := session.key_digest(new_key);
  t constant timestamptz := clock_timestamp();
BEGIN
  INSERT INTO session.sessions (digest, expires_at, value)
  VALUES (d, session.expiry_at(session_generate.value, expiry, t), session_generate.value);
  RETURN new_key;
END
$$;
COMMENT ON FUNCTION session.session_generate(bigint, text) IS
  'Creates a session and returns its key (the only time the key is visible). expiry: seconds from '
  'now, NULL = default period, <= 0 = born expired. value: NULL = not set. '
  'Errors: 22023 expiry out of range; 22001 value larger than session.config.max_value_bytes.';

CREATE OR REPLACE FUNCTION session.session_set(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION 'session value must not be NULL'
      USING ERRCODE = 'null_value_not_allowed', HINT = 'To end a session, call session_clear.';
  END IF;
  -- Validate before looking the key up, so bad input fails the same way for every key.
  new_expiry := session.expiry_at(value, expiry, t);
  UPDATE session.sessions s
     SET value = session_set.value, expires_at = new_expiry
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION session.session_touch(key text, expiry bigint DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry constant timestamptz := session.expiry_at(NULL, expiry, t);
BEGIN
  UPDATE session.sessions s SET expires_at = new_expiry
   WHERE s.digest = d AND s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION session.session_put(key text, value text, expiry bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  d constant bytea := session.key_digest(key);
  t constant timestamptz := clock_timestamp();
  new_expiry timestamptz;
BEGIN
  IF key IS NULL OR value IS NULL THEN
    RAISE EXCEPTION 'session_put needs a key and a value'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF octet_length(key) > 1024 OR key !~ '^[A-Za-z0-9_-]{32,}$' THEN
    RAISE EXCEPTION 'session_put only accepts keys of 32 to 1024 base64url characters'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Generate ids with at least 24 random bytes, or use session_generate.';
  END IF;
  new_expiry := session.expiry_at(value, expiry, t);
  -- One statement, so that concurrent puts of a new key cannot make one of them miss both the
  -- UPDATE and the INSERT. It never writes over an expired session (not yet purged) or a cleared
  -- one (its tombstone): a request still in flight when the user logged out cannot bring it back.
  INSERT INTO session.sessions AS s (digest, expires_at, value)
  VALUES (d, new_expiry, session_put.value)
  ON CONFLICT (digest) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
   WHERE s.expires_at > t AND NOT s.cleared;
  RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION session.session_write_batch(kinds text[], keys text[], vals text[], expiries bigint[])
RETURNS TABLE (ord integer, sqlstate text, message text, ok boolean, key text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller_lock_timeout constant text := current_setting('lock_timeout');
  n constant integer := coalesce(cardinality(kinds), 0);
  max_bytes constant integer := (SELECT c.max_value_bytes FROM session.config c);
  period constant bigint := (SELECT c.default_period FROM session.config c);
  digests bytea[] := '{}'::bytea[];
  new_keys text[] := '{}'::text[];
  states text[] := '{}'::text[];
  messages text[] := '{}'::text[];
  oks boolean[] := '{}'::boolean[];
  busy bytea;
  i integer;
  d bytea;
  t timestamptz;
  new_expiry timestamptz;
  chk record;
  live boolean;
  was_cleared boolean;
BEGIN
  IF n <> coalesce(cardinality(keys), 0) OR n <> coalesce(cardinality(vals), 0)
     OR n <> coalesce(cardinality(expiries), 0) THEN
    RAISE EXCEPTION 'kinds, keys, vals and expiries must have the same number of elements'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Not a SET clause: a caller's shorter lock_timeout must still apply. A local setting ends with
  -- the transaction, or with the savepoint if the caller's rolls back; it is restored below.
  IF caller_lock_timeout::interval = interval '0' OR caller_lock_timeout::interval > interval '2s' THEN
    PERFORM set_config('lock_timeout', '2s', true);
  END IF;
  -- Keys are hashed into variables first: no statement below ever holds a key.
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 'generate' THEN
      new_keys[i] := translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                      || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_');
      digests[i] := session.key_digest(new_keys[i]);
    ELSE
      digests[i] := session.key_digest(keys[i]);
    END IF;
  END LOOP;

  FOR i IN SELECT u.o::integer FROM unnest(digests) WITH ORDINALITY u(d, o) ORDER BY u.d, u.o LOOP
    d := digests[i];
    t := clock_timestamp();
    chk := session.write_check(kinds[i], keys[i], vals[i], expiries[i], max_bytes);
    IF chk.state IS NOT NULL THEN
      states[i] := chk.state;
      messages[i] := chk.message;
      CONTINUE;
    END IF;
    IF d = busy THEN
      states[i] := '55P03';
      messages[i] := 'an earlier element of this key could not lock its row; not applied';
      CONTINUE;
    END IF;
    new_expiry := t + make_interval(secs => coalesce(expiries[i], period));
    IF kinds[i] = 'generate' THEN
      INSERT INTO session.sessions (digest, expires_at, value) VALUES (d, new_expiry, vals[i]);
      oks[i] := true;
      CONTINUE;
    END IF;
    SELECT s.expires_at > t AND NOT s.cleared, s.cleared INTO live, was_cleared
      FROM session.sessions s WHERE s.digest = d FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT FROM session.sessions s WHERE s.digest = d) THEN
      busy := d;
      states[i] := '55P03';
      messages[i] := 'the session is locked by another transaction; not applied';
      CONTINUE;
    END IF;
    IF kinds[i] = 'set' AND live THEN
      UPDATE session.sessions s SET value = vals[i], expires_at = new_expiry WHERE s.digest = d;
    ELSIF kinds[i] = 'touch' AND live THEN
      UPDATE session.sessions s SET expires_at = new_expiry WHERE s.digest = d;
    ELSIF kinds[i] = 'clear' AND NOT was_cleared THEN
      UPDATE session.sessions s
         SET cleared = true, value = NULL, expires_at = least(s.expires_at, t + interval '1 day')
       WHERE s.digest = d;
    ELSIF kinds[i] = 'put' AND live IS NULL THEN
      -- No row: as in session_put, one statement, in case another transaction inserts it now.
      INSERT INTO session.sessions AS s (digest, expires_at, value) VALUES (d, new_expiry, vals[i])
      ON CONFLICT (digest) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
       WHERE s.expires_at > t AND NOT s.cleared;
      live := FOUND;
    ELSIF kinds[i] = 'put' AND live THEN
      UPDATE session.sessions s SET value = vals[i], expires_at = new_expiry WHERE s.digest = d;
    END IF;
    oks[i] := CASE WHEN kinds[i] = 'clear' THEN was_cleared IS NOT NULL AND NOT was_cleared ELSE coalesce(live, false) END;
  END LOOP;

  PERFORM set_config('lock_timeout', caller_lock_timeout, true);
  RETURN QUERY SELECT o::integer, states[o], messages[o], oks[o], CASE WHEN states[o] IS NULL THEN new_keys[o] END
                 FROM generate_series(1, n) o;
END
$$;

DROP FUNCTION session.check_subject(text, text), session.ends_at(bigint, timestamptz), session.lock_subject(text, boolean);
DROP INDEX session.sessions_subject;
ALTER TABLE session.sessions DROP COLUMN created_at, DROP COLUMN written_at, DROP COLUMN ends_at,
  DROP COLUMN subject, DROP COLUMN label, DROP COLUMN handle;
ALTER TABLE session.config DROP COLUMN absolute_lifetime;

REVOKE ALL ON FUNCTION session.session_generate(bigint, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION session.grant_roles() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  EXECUTE format('GRANT USAGE ON SCHEMA session TO %1$I, %2$I', cfg.client_role, cfg.admin_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_generate(bigint, text), session.session_get(text), '
    'session.session_set(text, text, bigint), session.session_touch(text, bigint), '
    'session.session_put(text, text, bigint), session.session_clear(text), '
    'session.session_count(), session.session_default_period(), '
    'session.session_write_batch(text[], text[], text[], bigint[]) TO %I', cfg.client_role);
  EXECUTE format(
    'GRANT EXECUTE ON FUNCTION session.session_set_default_period(bigint), session.session_purge(integer), '
    'session.session_stats(), session.session_default_period(), session.session_count() TO %I', cfg.admin_role);
END
$$;
DO $$
DECLARE
  cfg session.config;
BEGIN
  SELECT * INTO STRICT cfg FROM session.config;
  IF (SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[cfg.client_role, cfg.admin_role]))
     OPERATOR(pg_catalog.=) 2 THEN
    PERFORM session.grant_roles();
  END IF;
END
$$;
