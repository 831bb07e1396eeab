"""The same configuration files and keys through Postfix's ``postmap -q`` (postfix-sqlite,
postfix-pgsql, postfix-mysql) and ``mailcarrier map -q``: the same answers, line for line.

The configurations cover the plain query, %u/%d/%1 expansions, result_format with %s/%U/%D,
the domain filter, the obsolete table/select_field/where_field query, and keys that try SQL
injection, carry quotes, backslashes, upper case and non-ASCII letters. Servers are the
session's private ones (tests/conftest.py); the test skips when postmap lacks the map type.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mailcarrier.tables.command import map_main
from tests.support import sqldata
from tests.support.peers.mariadb import MariaDb
from tests.support.peers.pgsql import PgServer

KEYS = [
    "alice@example.com",
    "ALICE@Example.COM",
    "o'hara@example.com",
    "back\\slash",
    "@example.com",
    "plain",
    "null@example.com",
    "smtp.example.net",
    "jörg@example.de",
    "x' or '1'='1",
    "'; DROP TABLE m; --",
    "nobody@example.org",
    "user@sub.example.com",
]

QUERIES: dict[str, dict[str, str]] = {
    "plain": {"query": "SELECT v FROM m WHERE k='%s'"},
    "parts": {"query": "SELECT v FROM m WHERE k='%u@%d' OR k='@%d' OR k='%1'"},
    "result": {
        "query": "SELECT v FROM m WHERE k='%s'",
        "result_format": "smtp:[%s] for %U at %D",
    },
    "domain": {"query": "SELECT v FROM m WHERE k='%s'", "domain": "example.com, example.de"},
    "legacy": {"table": "m", "select_field": "v", "where_field": "k"},
    "keyed": {"query": "SELECT k FROM m WHERE v='%s' OR k='%s'"},
}


def _has_map_type(kind: str) -> bool:
    """Debian's postfix-KIND package: its plugin, registered in dynamicmaps.cf.d."""
    return shutil.which("postmap") is not None and any(
        Path(d, f"postfix-{kind}.so").exists() for d in ("/usr/lib/postfix", "/usr/libexec/postfix")
    )


def _postfix_version(config_dir: Path) -> tuple[int, ...]:
    (config_dir / "main.cf").write_text("compatibility_level = 3.7\n")
    done = subprocess.run(
        ["postconf", "-c", str(config_dir), "-dh", "mail_version"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return tuple(int(p) for p in done.stdout.strip().split(".")[:2] if p.isdigit())


def _keys(tmp_path: Path, kind: str) -> list[str]:
    """Before Postfix 3.8 its pgsql client was hard-wired to LATIN1 (pgsql_table(5),
    "encoding"): UTF-8 keys then miss where mailcarrier (and Postfix 3.8+) finds them."""
    if kind == "pgsql" and _postfix_version(tmp_path) < (3, 8):
        return [k for k in KEYS if k.isascii()]
    return KEYS


def _compare(tmp_path: Path, kind: str, params: dict[str, str]) -> None:
    if not _has_map_type(kind):
        pytest.skip(f"postmap has no {kind} tables (Debian postfix-{kind})")
    keys = _keys(tmp_path, kind)
    cf = tmp_path / f"{kind}.cf"
    cf.write_text(sqldata.cf_text(**params))
    cf.chmod(0o644)
    spec = f"{kind}:{cf}"
    theirs = sqldata.postmap(tmp_path, spec, keys)
    out, err = io.StringIO(), io.StringIO()
    status = map_main(["-q", "-", spec], out, err, io.StringIO("".join(k + "\n" for k in keys)))
    assert theirs.returncode in (0, 1), theirs.stderr
    assert out.getvalue() == theirs.stdout
    assert status == theirs.returncode
    # Postfix's warnings (empty results, ...) are ours too, under our program name.
    ours = sorted(line.split(": ", 1)[1] for line in err.getvalue().splitlines())
    postfix = sorted(line.split(": ", 1)[1] for line in theirs.stderr.splitlines())
    assert ours == postfix


Params = Callable[[], dict[str, str]]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_sqlite_answers_as_postmap(tmp_path: Path, name: str) -> None:
    tmp_path.chmod(0o755)
    db = sqldata.fill_sqlite(tmp_path / "m.db")
    _compare(tmp_path, "sqlite", {"dbpath": str(db), **QUERIES[name]})


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_pgsql_answers_as_postmap(tmp_path: Path, pg_server: PgServer, name: str) -> None:
    _compare(tmp_path, "pgsql", sqldata.pgsql_params(pg_server, **QUERIES[name]))


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_mysql_answers_as_postmap(tmp_path: Path, maria_server: MariaDb, name: str) -> None:
    _compare(tmp_path, "mysql", sqldata.mysql_params(maria_server, **QUERIES[name]))


def test_pgsql_over_the_unix_socket_and_a_uri(tmp_path: Path, pg_server: PgServer) -> None:
    """Connection URIs (their own user, password and database; Postfix 3.10 and later), one
    of them to the UNIX-domain socket: the answers postmap gives through the TCP host."""
    if not _has_map_type("pgsql"):
        pytest.skip("postmap has no pgsql tables (Debian postfix-pgsql)")
    keys = _keys(tmp_path, "pgsql")
    cf = tmp_path / "tcp.cf"
    cf.write_text(sqldata.cf_text(**sqldata.pgsql_params(pg_server, **QUERIES["plain"])))
    theirs = sqldata.postmap(tmp_path, f"pgsql:{cf}", keys)
    login = f"{sqldata.USER}:{sqldata.PASSWORD}"
    for n, hosts in enumerate(
        (
            f"postgresql://{login}@127.0.0.1:{pg_server.port}/mail",
            f"postgresql://{login}@/mail?host={pg_server.run}&port={pg_server.port}",
        )
    ):
        uri_cf = tmp_path / f"uri{n}.cf"
        uri_cf.write_text(sqldata.cf_text(hosts=hosts, **QUERIES["plain"]))
        out, err = io.StringIO(), io.StringIO()
        stdin = io.StringIO("".join(k + "\n" for k in keys))
        status = map_main(["-q", "-", f"pgsql:{uri_cf}"], out, err, stdin)
        assert (status, out.getvalue()) == (theirs.returncode, theirs.stdout)
