-- The schema and its tables. The public interface is the session.session_* functions (and, for a
-- PL/Proxy proxy, session.partition_*). The tables are private and not an interface: their shape
-- may change in any release. Every function that touches them is SECURITY DEFINER with a pinned
-- search_path, so a caller's own search_path can never redirect a name used there.

CREATE SCHEMA session;
COMMENT ON SCHEMA session IS
  'session-postgresql. Call the session_* functions; the tables are private, not an interface.';

-- One row. default_period and max_value_bytes are read on every write, so they live here rather
-- than in a GUC that each connection could override. client_role, admin_role and proxy_role are
-- the roles this install grants to (chosen at install: one set per database); absolute_lifetime
-- NULL means no absolute lifetime unless a session is generated with one.
CREATE TABLE session.config (
  singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  default_period    bigint  NOT NULL DEFAULT 604800 CHECK (default_period BETWEEN 1 AND 3155760000),
  max_value_bytes   integer NOT NULL DEFAULT 1048576 CHECK (max_value_bytes > 0),
  client_role       name    NOT NULL DEFAULT 'session_client',
  admin_role        name    NOT NULL DEFAULT 'session_admin',
  absolute_lifetime bigint  CHECK (absolute_lifetime BETWEEN 1 AND 3155760000),
  proxy_role        name
);
INSERT INTO session.config DEFAULT VALUES;
COMMENT ON TABLE session.config IS
  'Private. default_period: see session_set_default_period(). max_value_bytes: the largest value '
  'session_generate/session_set accept; only the owner may change it (UPDATE session.config).';

-- digest = sha256(key): a dump, replica or backup holds no usable key.
-- There is deliberately no index on expires_at: every session_set moves it, and in PostgreSQL 15
-- any index on a changed column (B-tree or BRIN) forbids HOT updates. session_purge sweeps the
-- heap by block ranges instead. fillfactor 80: most writes change a session's value and expiry,
-- none of them indexed; with room left on each page, PostgreSQL keeps the new row version on the
-- same page (a HOT update) and writes no index entry. See docs/performance.md#fillfactor.
-- A cleared session stays as a tombstone (value NULL, cleared) until its expiry, at most a day;
-- the purge removes it like any expired row. Of the other columns only written_at changes on
-- session_set or session_touch, and it is in no index, so those updates stay HOT. The subject
-- index is partial: anonymous sessions cost it nothing. A new row's version is the microsecond it
-- was made and each write of the value adds one: a session made again under the same key after the
-- old one was purged starts far above any version the old one reached, so a version read from the
-- old one never matches the new one.
CREATE TABLE session.sessions (
  expires_at timestamptz NOT NULL,
  digest     bytea       NOT NULL PRIMARY KEY,
  value      text,
  cleared    boolean     NOT NULL DEFAULT false,
  created_at timestamptz,
  written_at timestamptz,
  ends_at    timestamptz,
  subject    text,
  label      text,
  handle     uuid,
  version    bigint      NOT NULL DEFAULT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint
) WITH (fillfactor = 80);
COMMENT ON TABLE session.sessions IS 'Private. One row per session, keyed by sha256(key).';
COMMENT ON COLUMN session.sessions.version IS
  'Private. Changes on every write of the value; starts at the microsecond the row was made.';
COMMENT ON COLUMN session.sessions.ends_at IS
  'Private. The absolute end: expires_at never passes it (NULL = no cap).';
COMMENT ON COLUMN session.sessions.handle IS
  'Private. A random, non-secret name for the session in lists; set with the subject.';
CREATE INDEX sessions_subject ON session.sessions (subject, created_at DESC) WHERE subject IS NOT NULL;

-- Where the next session_purge() call resumes its sweep; the row lock also serialises purges.
CREATE TABLE session.purge_state (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  next_block bigint  NOT NULL DEFAULT 0
);
INSERT INTO session.purge_state DEFAULT VALUES;
COMMENT ON TABLE session.purge_state IS 'Private. The block at which session_purge resumes.';
