"""socketmap: tables against a socketmap server written here (netstrings, asyncio): the exact
request bytes, each reply status, the size limits, connection reuse, a server restart, a
server that is down or never answers, and the same answers as Postfix's postmap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.socketmap import SocketmapLimits, SocketmapTable, netstring
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.postmap import has_map_type, same_answers
from tests.support.tableservers import CLOSE, STALL, NetstringServer, Raw, Reply

DATA = {
    b"alice@example.com": b"OK alice@mail.example.com",
    b"Alice@Example.COM": b"OK case kept",
    b"empty": b"OK ",
    b"bare": b"OK",
    b"temp": b"TEMP database restarting",
    b"timeout": b"TIMEOUT backend slow",
    b"perm": b"PERM no such map",
    b"odd": b"MAYBE later",
    b"nul": b"OK before\0after",
    b"spaces in key": b"OK found",
}


def answer(payload: bytes) -> Reply:
    name, _, key = payload.partition(b" ")
    if name != b"virtual":
        return b"PERM unknown map"
    return DATA.get(key, b"NOTFOUND ")


@pytest.fixture
def server() -> Iterator[NetstringServer]:
    srv = NetstringServer(answer).start()
    try:
        yield srv
    finally:
        srv.stop()


def table(srv: NetstringServer, limits: SocketmapLimits | None = None) -> SocketmapTable:
    spec = f"socketmap:{srv.endpoint}:virtual"
    if limits is None:
        opened = open_table(spec)
        assert isinstance(opened, SocketmapTable)
        return opened
    return SocketmapTable(spec, limits)


def test_netstring() -> None:
    assert netstring(b"virtual a@b") == b"11:virtual a@b,"
    assert netstring(b"") == b"0:,"


def test_answers_and_request_bytes(server: NetstringServer) -> None:
    t = table(server)
    assert (t.kind, t.fixed, t.pattern, t.network) == ("socketmap", False, True, True)
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert t.lookup("Alice@Example.COM") == "case kept"  # a pattern table: never folded
    assert t.lookup("nobody@example.com") is None
    assert t.lookup("empty") == ""
    assert t.lookup("bare") == ""
    assert t.lookup("nul") == "before"  # a C string in Postfix
    assert t.lookup("spaces in key") == "found"
    assert server.requests == [
        b"virtual alice@example.com",
        b"virtual Alice@Example.COM",
        b"virtual nobody@example.com",
        b"virtual empty",
        b"virtual bare",
        b"virtual nul",
        b"virtual spaces in key",
    ]
    assert server.connections == 1  # one connection, reused
    assert t.take_warnings() == []


@pytest.mark.parametrize(
    ("key", "warning"),
    [
        ("temp", "socketmap server temporary error: database restarting"),
        ("timeout", "socketmap server timeout error: backend slow"),
        ("perm", "socketmap server permanent error: no such map"),
        ("odd", "socketmap server unknown error: later"),
    ],
)
def test_failures_are_temporary(server: NetstringServer, key: str, warning: str) -> None:
    t = table(server)
    with pytest.raises(TableLookupError):
        t.lookup(key)
    assert t.take_warnings() == [f"socketmap:{server.endpoint}:virtual {warning}"]


def test_unix_socket(short_tmp: Path) -> None:
    srv = NetstringServer(answer, unix_path=short_tmp / "sockmap").start()
    try:
        t = table(srv)
        assert t.lookup("alice@example.com") == "alice@mail.example.com"
        assert t.spec == f"socketmap:unix:{short_tmp}/sockmap:virtual"
    finally:
        srv.stop()


def test_query_too_large(server: NetstringServer) -> None:
    t = table(server, SocketmapLimits(max_query=20))
    assert t.lookup("a" * 21) is None
    assert t.take_warnings() == [
        f"table {t.spec} query too large: '{'a' * 21}', returning 'not found'"
    ]
    assert t.lookup("a" * 20) is None  # sent: NOTFOUND
    assert server.requests == [b"virtual " + b"a" * 20]


def test_reply_too_large() -> None:
    srv = NetstringServer(lambda _: b"OK " + b"x" * 100).start()
    try:
        t = table(srv, SocketmapLimits(max_reply=50))
        with pytest.raises(TableLookupError):
            t.lookup("k")
        assert t.take_warnings() == [f"table {t.spec} lookup error: input exceeds size limit"]
    finally:
        srv.stop()


@pytest.mark.parametrize("raw", [b"x:OK,", b"2:OK;", b"4:OK"])
def test_malformed_netstring(raw: bytes) -> None:
    srv = NetstringServer(lambda _: Raw(raw) if raw != b"4:OK" else CLOSE).start()
    try:
        t = table(srv)
        with pytest.raises(TableLookupError):
            t.lookup("k")
        reason = "unexpected disconnect" if raw == b"4:OK" else "input format error"
        assert t.take_warnings() == [f"table {t.spec} lookup error: {reason}"]
    finally:
        srv.stop()


def test_server_restart_is_retried_once(server: NetstringServer) -> None:
    """A connection the server closed (a restart) is retried once on a new connection."""
    t = table(server)
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    server.drop_connections()
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert server.connections == 2
    assert t.take_warnings() == []


def test_server_that_closes_every_time() -> None:
    srv = NetstringServer(lambda _: CLOSE).start()
    try:
        t = table(srv)
        with pytest.raises(TableLookupError):
            t.lookup("k")
        assert srv.connections == 2  # the first failure is retried once
        assert t.take_warnings() == [f"table {t.spec} lookup error: unexpected disconnect"]
    finally:
        srv.stop()


def test_server_down_is_a_temporary_failure() -> None:
    port = free_port()
    t = SocketmapTable(f"socketmap:inet:127.0.0.1:{port}:virtual")
    with pytest.raises(TableLookupError):
        t.lookup("alice@example.com")
    assert t.take_warnings() == [
        f"connect to 127.0.0.1:{port}: Connection refused",
        f"table socketmap:inet:127.0.0.1:{port}:virtual lookup error: Connection refused",
    ]


async def test_server_that_never_answers() -> None:
    srv = NetstringServer(lambda _: STALL).start()
    try:
        t = table(srv, SocketmapLimits(timeout=0.5))
        with pytest.raises(TableLookupError):
            await t.lookup_async("k")
        assert t.take_warnings() == [f"table {t.spec} lookup error: time limit exceeded"]
        assert srv.connections == 1  # a timeout is not retried
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("virtual", "socketmap requires server:socketmap argument"),
        ("127.0.0.1:99:virtual", "invalid transport name: 127.0.0.1 in service: 127.0.0.1:99"),
        ("inet:127.0.0.1:virtual", "missing service information: 127.0.0.1"),
        ("inet:[::1]:nosuchservice:virtual", "unknown service: nosuchservice/tcp"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(TableError) as caught:
        open_table(f"socketmap:{name}")
    assert str(caught.value) == f"socketmap:{name}: {message}"


def test_same_answers_as_postmap(server: NetstringServer, tmp_path: Path) -> None:
    if not has_map_type("socketmap"):
        pytest.skip("postmap has no socketmap tables")
    keys = ["alice@example.com", "Alice@Example.COM", "nobody@example.com", "empty", "nul"]
    theirs, mine = same_answers(tmp_path, f"socketmap:{server.endpoint}:virtual", keys)
    assert mine.stdout == (
        "alice@example.com\talice@mail.example.com\n"
        "Alice@Example.COM\tcase kept\nempty\t\nnul\tbefore\n"
    )
    spec = f"socketmap:{server.endpoint}:virtual"
    assert (
        mine.warnings
        == theirs.warnings
        == [
            f"warning: table {spec}: key empty: empty string result is not allowed",
            f"warning: table {spec} should return NO RESULT in case of NOT FOUND",
        ]
    )
