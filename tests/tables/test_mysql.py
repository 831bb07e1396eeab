"""mysql: against a real MariaDB server (tests/conftest.py's maria_server) and its faults:
server down, a server that never answers, failover to the second host, a wrong password,
the UNIX-domain socket, quoting as mysql_real_escape_string, and a loop that never blocks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.mysql import MysqlTable, mysql_quote, parse_host
from tests.support import sqldata
from tests.support.peers.mariadb import MariaDb
from tests.tables.sqlfaults import InOrder, dead_port, silent_listener, ticks_while

QUERY = "SELECT v FROM m WHERE k='%s'"


def table(tmp_path: Path, name: str = "my.cf", **params: str) -> MysqlTable:
    cf = tmp_path / name
    cf.write_text(sqldata.cf_text(query=QUERY, **params))
    opened = open_table(f"mysql:{cf}")
    assert isinstance(opened, MysqlTable)
    opened.pool.rng = InOrder()  # type: ignore[assignment]
    return opened


def test_lookups_over_tcp_and_the_unix_socket(tmp_path: Path, maria_server: MariaDb) -> None:
    t = table(tmp_path, **sqldata.mysql_params(maria_server))
    assert t.lookup("Alice@Example.com") == "alice-1,alice-2"
    assert asyncio.run(t.lookup_async("back\\slash")) == "bs"
    assert t.lookup("null@example.com") is None  # NULL: skipped silently
    assert t.take_warnings() == []
    unix = table(tmp_path, "unix.cf", **sqldata.mysql_params(maria_server))
    unix.pool.states[0].host = parse_host(f"unix:{maria_server.socket}")
    unix.pool.states[1].host = parse_host(f"unix:{maria_server.socket}")
    assert unix.lookup("o'hara@example.com") == "irish"


def test_server_down_is_a_temporary_failure(tmp_path: Path) -> None:
    port = dead_port()
    t = table(tmp_path, hosts=f"inet:127.0.0.1:{port}", dbname="mail", user="u")
    with pytest.raises(TableLookupError):
        t.lookup("plain")
    warnings = t.take_warnings()
    assert len(warnings) == 2
    assert all(w.startswith(f"connect to mysql server inet:127.0.0.1:{port}: ") for w in warnings)


async def test_server_that_never_answers_times_out_without_blocking(tmp_path: Path) -> None:
    with silent_listener() as port:
        t = table(tmp_path, hosts=f"127.0.0.1:{port}", dbname="mail", user="u", timeout="1")
        started = time.monotonic()
        outcome, ticks = await ticks_while(asyncio.ensure_future(t.lookup_async("x@y.z")))
        elapsed = time.monotonic() - started
    assert isinstance(outcome, TableLookupError)
    assert elapsed < 10 and ticks >= 20


def test_failover_to_the_second_host(tmp_path: Path, maria_server: MariaDb) -> None:
    port = dead_port()
    params = sqldata.mysql_params(maria_server)
    params["hosts"] = f"inet:127.0.0.1:{port} inet:127.0.0.1:{maria_server.port}"
    t = table(tmp_path, **params)
    assert t.lookup("plain") == "p"
    warnings = t.take_warnings()
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0]


def test_wrong_password(tmp_path: Path, maria_server: MariaDb) -> None:
    t = table(tmp_path, **sqldata.mysql_params(maria_server, password="wrong"))
    with pytest.raises(TableLookupError):
        t.lookup("plain")
    assert all("Access denied for user 'postfix'" in w for w in t.take_warnings())


def test_dbname_is_required(tmp_path: Path) -> None:
    cf = tmp_path / "x.cf"
    cf.write_text("hosts = db1\nquery = SELECT 1\n")
    with pytest.raises(TableError) as info:
        open_table(f"mysql:{cf}")
    assert str(info.value) == f"{cf}: bad string length 0 < 1: dbname = "


@pytest.mark.parametrize(
    ("key", "quoted", "strict"),
    [
        ("x' OR '1'='1", "x\\' OR \\'1\\'=\\'1", "x'' OR ''1''=''1"),
        ('a"b\\c\n\r\x00\x1a', 'a\\"b\\\\c\\n\\r\\0\\Z', 'a"b\\c\n\r\x00\x1a'),
    ],
)
def test_quoting(key: str, quoted: str, strict: str) -> None:
    assert mysql_quote(key) == quoted
    assert mysql_quote(key, no_backslash_escapes=True) == strict


def test_hosts() -> None:
    assert parse_host("localhost").target == ("unix", "", 0)
    assert parse_host("unix:/run/mysqld/mysqld.sock").target[:2] == (
        "unix",
        "/run/mysqld/mysqld.sock",
    )
    assert parse_host("inet:db:3307").target == ("inet", "db", 3307)
    assert parse_host("db").rank == 1
    with pytest.raises(TableError, match="unknown service: nosuch/tcp"):
        parse_host("db:nosuch")
