#!/usr/bin/env python3
"""generate / get / set / clear from Python, with psycopg 3.

psycopg comes from the system Python: on Debian/Ubuntu `apt-get install python3-psycopg`, then run
this file with /usr/bin/python3 (a pyenv or virtualenv python does not see Debian's packages; there,
`pip install "psycopg[binary]"`). Connect as a role granted the client role (session_client).

    DATABASE_URL=postgresql://app@localhost/mydb /usr/bin/python3 session_demo.py demo
    python3 session_demo.py generate [VALUE]    # prints the new key
    python3 session_demo.py get KEY             # prints the value, or not_found / not_set
    python3 session_demo.py set KEY VALUE       # prints true / false
    python3 session_demo.py clear KEY
Exit status: 0 done, 1 database error, 2 wrong usage (no command, or DATABASE_URL unset).
"""
import os
import sys

try:
    import psycopg
except ImportError:
    sys.exit(f"psycopg 3 is not importable by {sys.executable}: apt-get install python3-psycopg "
             "and run /usr/bin/python3, or pip install 'psycopg[binary]'")


def generate(conn, value=None, expiry=None):
    return conn.execute("SELECT session.session_generate(%s, %s)", (expiry, value)).fetchone()[0]


def get(conn, key):
    """(value, period) or the string 'not_found' / 'not_set', as in ocaml-session."""
    row = conn.execute("SELECT value, period FROM session.session_get(%s)", (key,)).fetchone()
    if row is None:
        return "not_found"
    if row[0] is None:
        return "not_set"
    return row


def set_(conn, key, value, expiry=None):
    return conn.execute("SELECT session.session_set(%s, %s, %s)", (key, value, expiry)).fetchone()[0]


def clear(conn, key):
    conn.execute("SELECT session.session_clear(%s)", (key,))


def demo(conn):
    key = generate(conn)
    print(f"generate() -> a key of {len(key)} characters")
    print(f"get(key) -> {get(conn, key)}")
    print(f"set(key, 'hello from python') -> {set_(conn, key, 'hello from python')}")
    value, period = get(conn, key)
    print(f"get(key) -> {value!r}, {period} s left")
    clear(conn, key)
    print(f"clear(key); get(key) -> {get(conn, key)}")


# command -> (required arguments, optional arguments)
USAGE = {"demo": (0, 0), "generate": (0, 1), "get": (1, 0), "set": (2, 0), "clear": (1, 0)}


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    arity = USAGE.get(command)
    if arity is None or not arity[0] <= len(args) <= arity[0] + arity[1]:
        print(__doc__, file=sys.stderr)
        return 2
    # Without them libpq would try a local socket and answer "No such file or directory".
    if not any(os.environ.get(v) for v in ("DATABASE_URL", "PGHOST", "PGSERVICE", "PGDATABASE")):
        print("session_demo: set DATABASE_URL to the database to use, e.g. postgresql://app@localhost/mydb\n",
              file=sys.stderr)
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with psycopg.connect(os.environ.get("DATABASE_URL", ""), autocommit=True) as conn:
            if command == "demo":
                demo(conn)
            elif command == "generate":
                print(generate(conn, *args))
            elif command == "get":
                r = get(conn, args[0])
                print(r if isinstance(r, str) else r[0])
            elif command == "set":
                print("true" if set_(conn, args[0], args[1]) else "false")
            elif command == "clear":
                clear(conn, args[0])
    except psycopg.Error as e:
        print(f"session_demo: {type(e).__name__}: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
