"""The SQL tables' test data, the same in SQLite, PostgreSQL and MariaDB, and the servers.

`ROWS` fill one table ``m (k, v)`` (several values for one key, quotes, backslashes, a NULL,
an ``@domain`` key, non-ASCII) and ``passwd (host, creds)`` holds SASL credentials.
`fill_sqlite`, `fill_pgsql` and `fill_mysql` create them (and the ``postfix`` login with
password ``pfpw`` and SELECT only); `cf_text` writes a ``*_table(5)`` file. `SqlServers`
starts each real server once for a pytest session (`pg_server`, `maria_server` fixtures in
tests/conftest.py) in a directory under /tmp that the unprivileged server user can reach,
and stops it at the end. `postmap(config_dir, key, spec)` runs Postfix's postmap -q.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.support.peers.mariadb import MariaDb
from tests.support.peers.pgsql import PgServer

USER, PASSWORD, DATABASE = "postfix", "pfpw", "mail"
ROWS: list[tuple[str, str | None]] = [
    ("alice@example.com", "alice-1"),
    ("alice@example.com", "alice-2"),
    ("o'hara@example.com", "irish"),
    ("back\\slash", "bs"),
    ("@example.com", "catch-all"),
    ("plain", "p"),
    ("null@example.com", None),
    ("empty@example.com", ""),
    ("smtp.example.net", "relay@gateway.example"),
    ("jörg@example.de", "umlaut"),
    ("x' or '1'='1", "injected"),
]
CREDS: list[tuple[str, str]] = [("127.0.0.1", "alice:s3cret-Pa55")]


def _sql_literal(value: str | None, backslash: bool = False) -> str:
    if value is None:
        return "NULL"
    text = value.replace("\\", "\\\\") if backslash else value
    return "'" + text.replace("'", "''") + "'"


def _inserts(backslash: bool = False) -> str:
    rows = ", ".join(
        f"({_sql_literal(k, backslash)}, {_sql_literal(v, backslash)})" for k, v in ROWS
    )
    creds = ", ".join(f"({_sql_literal(h)}, {_sql_literal(c)})" for h, c in CREDS)
    return f"INSERT INTO m VALUES {rows}; INSERT INTO passwd VALUES {creds};"


def fill_sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE m (k TEXT, v TEXT)")
    conn.execute("CREATE TABLE passwd (host TEXT PRIMARY KEY, creds TEXT)")
    conn.executemany("INSERT INTO m VALUES (?, ?)", ROWS)
    conn.executemany("INSERT INTO passwd VALUES (?, ?)", CREDS)
    conn.commit()
    conn.close()
    path.chmod(0o644)
    return path


def fill_pgsql(server: PgServer) -> None:
    server.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    server.sql(f"CREATE DATABASE {DATABASE}")
    server.sql(
        "CREATE TABLE m (k text, v text); CREATE TABLE passwd (host text PRIMARY KEY, creds text);"
        + _inserts()
        + f" GRANT SELECT ON m, passwd TO {USER};",
        database=DATABASE,
    )


def fill_mysql(server: MariaDb) -> None:
    grants = "".join(
        f"CREATE USER '{USER}'@'{h}' IDENTIFIED BY '{PASSWORD}'; "
        f"GRANT SELECT ON {DATABASE}.* TO '{USER}'@'{h}'; "
        for h in ("%", "localhost")
    )
    server.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4; {grants}")
    server.sql(
        "CREATE TABLE m (k VARCHAR(100), v VARCHAR(100)) CHARACTER SET utf8mb4; "
        "CREATE TABLE passwd (host VARCHAR(100) PRIMARY KEY, creds VARCHAR(100)); "
        + _inserts(backslash=True),
        DATABASE,
    )


def cf_text(**params: str) -> str:
    return "".join(f"{name} = {value}\n" for name, value in params.items())


def pgsql_params(server: PgServer, **extra: str) -> dict[str, str]:
    params = {
        "hosts": f"inet:127.0.0.1:{server.port}",
        "user": USER,
        "password": PASSWORD,
        "dbname": DATABASE,
    }
    params.update(extra)
    return params


def mysql_params(server: MariaDb, **extra: str) -> dict[str, str]:
    params = {
        "hosts": f"inet:127.0.0.1:{server.port}",
        "user": USER,
        "password": PASSWORD,
        "dbname": DATABASE,
    }
    params.update(extra)
    return params


def postmap(config_dir: Path, spec: str, keys: list[str]) -> subprocess.CompletedProcess[str]:
    """Postfix's ``postmap -q - spec`` with `keys` on standard input."""
    main_cf = config_dir / "main.cf"
    if not main_cf.exists():
        main_cf.write_text("compatibility_level = 3.7\n")
    return subprocess.run(
        ["postmap", "-c", str(config_dir), "-q", "-", spec],
        input="".join(k + "\n" for k in keys),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
