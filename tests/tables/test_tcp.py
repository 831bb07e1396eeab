"""tcp: tables against a tcp_table(5) server written here: the %XX encoding of requests and
replies, the 200/500/400 statuses, malformed and oversized replies, retries, a server that
is down or never answers, connection reuse, and the same answers as Postfix's postmap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.tcp import MAX_REPLY, TcpLimits, TcpTable, hex_quote, hex_unquote
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.postmap import has_map_type, same_answers
from tests.support.tableservers import CLOSE, STALL, LineServer, Raw, Reply

DATA = {
    b"alice@example.com": b"200 alice@mail.example.com\n",
    b"Alice@Example.COM": b"200 case%20kept\n",
    b"j%C3%B6rg@example.de": b"200 %6a%C3%B6rg%25%0Aline\n",  # lower-case hex too
    b"empty": b"200 \n",
    b"temp": b"400 try again later\n",
    b"nul": b"200 before%00after\n",
    b"bad-hex": b"200 100%ZZ\n",
    b"bad-status": b"300 moved\n",
    b"no-space": b"200-text\n",
    b"short": b"20\n",
    b"too-long": b"200 " + b"x" * MAX_REPLY + b"\n",
}


def answer(line: bytes) -> Reply:
    verb, _, key = line.rstrip(b"\n").partition(b" ")
    assert verb == b"get"
    return DATA.get(key, b"500 not found\n")


FAST = TcpLimits(timeout=1, max_try=3, retry_pause=0)


@pytest.fixture
def server() -> Iterator[LineServer]:
    srv = LineServer(answer).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_hex_quote() -> None:
    assert hex_quote(b"a b%c\td\x7f\x01") == b"a%20b%25c%09d%7F%01"
    assert hex_quote("jörg".encode()) == b"j%C3%B6rg"
    assert hex_quote(b"<>@[]:;,.!~") == b"<>@[]:;,.!~"
    assert hex_unquote(b"%6a%C3%B6rg%25") == "jörg%".encode()
    assert hex_unquote(b"100%") is None
    assert hex_unquote(b"%4") is None
    assert hex_unquote(b"%zz") is None


@given(st.binary(max_size=64))
def test_hex_quote_round_trip(raw: bytes) -> None:
    quoted = hex_quote(raw)
    assert hex_unquote(quoted) == raw
    assert all(0x21 <= c <= 0x7E for c in quoted)  # no white space, no controls


def test_answers_and_request_bytes(server: LineServer) -> None:
    t = open_table(f"tcp:{server.inet}")
    assert isinstance(t, TcpTable)
    assert (t.kind, t.fixed, t.pattern, t.network) == ("tcp", False, True, True)
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert t.lookup("Alice@Example.COM") == "case kept"  # never folded
    assert t.lookup("jörg@example.de") == "jörg%\nline"
    assert t.lookup("empty") == ""
    assert t.lookup("nul") == "before"
    assert t.lookup("nobody here") is None
    assert server.requests == [
        b"get alice@example.com\n",
        b"get Alice@Example.COM\n",
        b"get j%C3%B6rg@example.de\n",
        b"get empty\n",
        b"get nul\n",
        b"get nobody%20here\n",
    ]
    assert server.connections == 1
    assert t.take_warnings() == []


def test_400_is_a_silent_temporary_failure(server: LineServer) -> None:
    t = TcpTable(f"tcp:{server.inet}", FAST)
    with pytest.raises(TableLookupError, match="400 try again later"):
        t.lookup("temp")
    assert t.take_warnings() == []  # as Postfix: nothing logged, the connection closed
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("key", "warning"),
    [
        ("bad-hex", "malformed reply: 200 100%ZZ"),
        ("no-space", "malformed reply: 200-text"),
        ("short", "malformed reply: 20"),
        ("bad-status", "bad status code: 300 moved"),
    ],
)
def test_malformed_replies(server: LineServer, key: str, warning: str) -> None:
    t = TcpTable(f"tcp:{server.inet}", FAST)
    with pytest.raises(TableLookupError):
        t.lookup(key)
    assert t.take_warnings() == [f"read TCP map reply from {server.inet}: {warning}"]


def test_reply_too_long_is_retried(server: LineServer) -> None:
    t = TcpTable(f"tcp:{server.inet}", FAST)
    with pytest.raises(TableLookupError):
        t.lookup("too-long")
    warning = f"read TCP map reply from {server.inet}: text longer than {MAX_REPLY}"
    assert t.take_warnings() == [warning] * 3
    assert server.connections == 3


def test_reply_of_the_longest_length() -> None:
    srv = LineServer(lambda _: b"200 " + b"y" * (MAX_REPLY - 5) + b"\n").start()  # 4096 bytes
    try:
        assert TcpTable(f"tcp:{srv.inet}", FAST).lookup("longest") == "y" * (MAX_REPLY - 5)
    finally:
        srv.stop()


def test_server_that_closes_is_retried_then_fails() -> None:
    srv = LineServer(lambda _: CLOSE).start()
    try:
        t = TcpTable(f"tcp:{srv.inet}", FAST)
        with pytest.raises(TableLookupError):
            t.lookup("k")
        warning = f"read TCP map reply from {srv.inet}: unexpected EOF (Success)"
        assert t.take_warnings() == [warning] * 3
        assert srv.requests == [b"get k\n"] * 3
    finally:
        srv.stop()


def test_restarted_server_is_asked_again(server: LineServer) -> None:
    t = TcpTable(f"tcp:{server.inet}", FAST)
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    server.drop_connections()
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert t.take_warnings() == []  # the closed connection was seen before it was used


def test_server_down_is_a_temporary_failure() -> None:
    port = free_port()
    t = TcpTable(f"tcp:127.0.0.1:{port}", FAST)
    with pytest.raises(TableLookupError):
        t.lookup("alice@example.com")
    assert t.take_warnings() == [f"connect to TCP map 127.0.0.1:{port}: Connection refused"] * 3


async def test_server_that_never_answers() -> None:
    srv = LineServer(lambda _: STALL).start()
    try:
        t = TcpTable(f"tcp:{srv.inet}", TcpLimits(timeout=0.3, max_try=2, retry_pause=0))
        with pytest.raises(TableLookupError):
            await t.lookup_async("k")
        warning = f"read TCP map reply from {srv.inet}: unexpected EOF (Connection timed out)"
        assert t.take_warnings() == [warning] * 2
    finally:
        srv.stop()


def test_raw_reply_without_encoding() -> None:
    """A server may skip the encoding when the text has no % or newline."""
    srv = LineServer(lambda _: Raw(b"200 plain text, no percent\n")).start()
    try:
        assert TcpTable(f"tcp:{srv.inet}", FAST).lookup("k") == "plain text, no percent"
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("127.0.0.1", "missing service information: 127.0.0.1"),
        ("127.0.0.1:smtpx", "unknown service: smtpx/tcp"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(TableError) as caught:
        open_table(f"tcp:{name}")
    assert str(caught.value) == f"tcp:{name}: {message}"


def test_same_answers_as_postmap(server: LineServer, tmp_path: Path) -> None:
    if not has_map_type("tcp"):
        pytest.skip("postmap has no tcp tables")
    keys = ["alice@example.com", "Alice@Example.COM", "jörg@example.de", "nobody", "nul"]
    theirs, mine = same_answers(tmp_path, f"tcp:{server.inet}", keys)
    assert mine.stdout == (
        "alice@example.com\talice@mail.example.com\n"
        "Alice@Example.COM\tcase kept\n"
        "jörg@example.de\tjörg%\nline\n"
        "nul\tbefore\n"
    )
    assert mine.warnings == theirs.warnings == []
