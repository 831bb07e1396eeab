"""memcache: tables against a private memcached (and a scripted server for the faults memcached
does not make): keys and their formats, the backup table and what is stored back, size
limits, retries, a server down or silent, and the same answers as Postfix's postmap."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.memcache import MemcacheTable
from tests.support.peers import memcached
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.postmap import has_map_type, same_answers
from tests.support.tableservers import STALL, LineServer, Raw, Reply


@pytest.fixture(scope="module")
def mc() -> Iterator[memcached.Memcached]:
    if not memcached.available():
        pytest.skip("memcached is not installed (Debian memcached)")
    server = memcached.Memcached().start()
    try:
        yield server
    finally:
        server.stop()


def open_mc(tmp_path: Path, name: str = "mc.cf", **params: str) -> MemcacheTable:
    cf = tmp_path / name
    cf.write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    table = open_table(f"memcache:{cf}")
    assert isinstance(table, MemcacheTable)
    return table


def test_plain_lookups(mc: memcached.Memcached, tmp_path: Path) -> None:
    mc.set(b"plain-alice@example.com", b"alice@mail.example.com")
    mc.set(b"plain-empty", b"")
    t = open_mc(tmp_path, memcache=mc.endpoint)
    assert (t.kind, t.fixed, t.network) == ("memcache", True, True)
    assert t.lookup("plain-alice@example.com") == "alice@mail.example.com"
    assert t.lookup("PLAIN-Alice@Example.COM") == "alice@mail.example.com"  # folded
    assert t.lookup("plain-nobody@example.com") is None
    assert t.lookup("plain-empty") == ""
    assert t.take_warnings() == []
    assert t.files() == (tmp_path / "mc.cf",)


def test_key_format_and_domain(mc: memcached.Memcached, tmp_path: Path) -> None:
    mc.set(b"aliases:bob@example.com", b"bob@mail.example.com")
    mc.set(b"user:carol", b"carol-by-user")
    mc.set(b"aliases:dave@other.example", b"never asked")
    t = open_mc(tmp_path, memcache=mc.endpoint, key_format="aliases:%s", domain="example.com")
    assert t.lookup("bob@example.com") == "bob@mail.example.com"
    assert t.lookup("dave@other.example") is None  # outside domain: not asked
    assert t.lookup("@example.com") is None  # domain needs a local part
    users = open_mc(tmp_path, "u.cf", memcache=mc.endpoint, key_format="user:%u")
    assert users.lookup("Carol@Example.COM") == "carol-by-user"
    assert users.lookup("carol") == "carol-by-user"  # %u of a bare name: the name
    assert users.lookup("@example.com") is None  # empty local part: skipped
    domains = open_mc(tmp_path, "d.cf", memcache=mc.endpoint, key_format="dom:%d:%1")
    mc.set(b"dom:example.com:com", b"by-domain")
    assert domains.lookup("x@example.com") == "by-domain"
    assert domains.lookup("example.com") is None  # no @: %d cannot be filled
    assert t.take_warnings() == users.take_warnings() == domains.take_warnings() == []


def test_key_digest(mc: memcached.Memcached, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"k:erin@example.com").hexdigest().encode()
    mc.set(digest, b"by-digest")
    t = open_mc(tmp_path, memcache=mc.endpoint, key_format="k:%s", key_digest="sha256")
    assert t.lookup("Erin@example.com") == "by-digest"
    with pytest.raises(TableError) as caught:
        open_mc(tmp_path, "bad.cf", memcache=mc.endpoint, key_digest="nosuchdigest")
    assert str(caught.value) == (
        f"{tmp_path}/bad.cf:2: open {tmp_path}/bad.cf: key digest nosuchdigest is not available"
    )


def test_keys_that_are_never_sent(tmp_path: Path) -> None:
    """Empty keys, and keys with white space or controls, are skipped silently."""
    srv = LineServer(lambda _: b"END\r\n").start()
    try:
        t = open_mc(tmp_path, memcache=srv.endpoint, key_format="x:%s")
        for key in ("", "two words", "tab\there", "ctl\x01", "del\x7f"):
            assert t.lookup(key) is None
        assert srv.requests == []
        assert t.lookup("jörg") is None  # UTF-8 is fine
        assert srv.requests == ["get x:jörg\r\n".encode()]
        assert t.take_warnings() == []
    finally:
        srv.stop()


def test_backup_answers_and_is_stored_back(mc: memcached.Memcached, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    backup.write_text("frank@example.com frank@mail.example.com\nlong@example.com " + "y" * 50)
    t = open_mc(
        tmp_path,
        memcache=mc.endpoint,
        key_format="bk:%s",
        backup=f"texthash:{backup}",
        flags="7",
        ttl="600",
        data_size_limit="40",
    )
    assert mc.get(b"bk:frank@example.com") is None
    assert t.lookup("Frank@example.com") == "frank@mail.example.com"
    assert mc.get(b"bk:frank@example.com") == (7, b"frank@mail.example.com")
    assert t.lookup("nobody@example.com") is None
    assert mc.get(b"bk:nobody@example.com") is None
    # Too long to store: the answer stands, memcache is left alone.
    assert t.lookup("long@example.com") == "y" * 50
    assert mc.get(b"bk:long@example.com") is None
    assert t.take_warnings() == [
        f"database memcache:{tmp_path}/mc.cf: data for key bk:long@example.com is too long "
        "(data_size_limit=40) -- not stored"
    ]
    assert t.files() == (tmp_path / "mc.cf", backup)


def test_set_command_bytes(tmp_path: Path) -> None:
    def answer(line: bytes) -> Reply:
        if line.startswith(b"get "):
            return b"END\r\n"
        return b"" if line.startswith(b"set ") else b"STORED\r\n"

    srv = LineServer(answer).start()
    try:
        t = open_mc(
            tmp_path, memcache=srv.endpoint, backup="inline:{ {a@b=value} }", ttl="42", flags="3"
        )
        assert t.lookup("a@b") == "value"
        assert srv.requests == [b"get a@b\r\n", b"set a@b 3 42 5\r\n", b"value\r\n"]
    finally:
        srv.stop()


def test_server_down_is_a_temporary_failure(tmp_path: Path) -> None:
    port = free_port()
    t = open_mc(tmp_path, memcache=f"inet:127.0.0.1:{port}")
    with pytest.raises(TableLookupError):
        t.lookup("k@example.com")
    # No connection: not tried again (memcache_table(5), max_try).
    assert t.take_warnings() == [f"connect to 127.0.0.1:{port}: Connection refused"]


def test_server_down_with_a_backup(tmp_path: Path) -> None:
    """As Postfix: the backup answers when memcache cannot, and its miss is a miss."""
    port = free_port()
    t = open_mc(tmp_path, memcache=f"inet:127.0.0.1:{port}", backup="inline:{ {a@b=value} }")
    assert t.lookup("a@b") == "value"
    assert t.lookup("c@d") is None
    refused = f"connect to 127.0.0.1:{port}: Connection refused"
    assert t.take_warnings() == [refused, refused, refused]  # get, set back, get


def test_server_that_never_answers(tmp_path: Path) -> None:
    srv = LineServer(lambda _: STALL).start()
    try:
        t = open_mc(tmp_path, memcache=srv.endpoint, timeout="1", max_try="1")
        with pytest.raises(TableLookupError):
            t.lookup("k")
        assert srv.connections == 1
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("reply", "warning"),
    [
        (
            b"SERVER_ERROR out of memory\r\n",
            "{name}: unexpected memcache server reply: SERVER_ERROR out of memory",
        ),
        (b"VALUE k 0 99999\r\n", "{name}: unexpected memcache server reply: VALUE k 0 99999"),
        (b"VALUE k 0 10\r\nshort\r\n", "{name}: EOF receiving memcache server reply"),
        (b"VALUE k 0 2\r\nabcd\r\nEND\r\n", "{name}: EOF receiving memcache server reply"),
        (b"x" * 40 + b"\r\n", "database memcache:{name}: I/O error"),
    ],
)
def test_bad_replies_are_retried_then_fail(tmp_path: Path, reply: bytes, warning: str) -> None:
    srv = LineServer(lambda _: Raw(reply, close=True)).start()
    try:
        t = open_mc(tmp_path, memcache=srv.endpoint, line_size_limit="30", data_size_limit="100")
        with pytest.raises(TableLookupError):
            t.lookup("k")
        name = f"{tmp_path}/mc.cf"
        # The first failure is silent, the second (max_try = 2) is warned about.
        assert t.take_warnings() == [warning.format(name=name)]
        assert srv.connections == 2
    finally:
        srv.stop()


def test_missing_end_after_a_value(tmp_path: Path) -> None:
    srv = LineServer(lambda _: Raw(b"VALUE k 0 2\r\nok\r\nNOT-END\r\n")).start()
    try:
        t = open_mc(tmp_path, memcache=srv.endpoint)
        assert t.lookup("k") == "ok"
        assert t.lookup("k") == "ok"
        assert srv.connections == 2  # the connection was not trusted again
    finally:
        srv.stop()


def test_unix_socket(short_tmp: Path, tmp_path: Path) -> None:
    if not memcached.available():
        pytest.skip("memcached is not installed (Debian memcached)")
    server = memcached.Memcached(unix_path=short_tmp / "mc.sock").start()
    try:
        server.set(b"unix-key", b"over the socket")
        t = open_mc(tmp_path, memcache=server.endpoint)
        assert t.lookup("unix-key") == "over the socket"
    finally:
        server.stop()


def test_main_cf_style(mc: memcached.Memcached) -> None:
    mc.set(b"mcf:grace", b"from main.cf parameters")
    values = {"mcsource_memcache": mc.endpoint, "mcsource_key_format": "mcf:%s"}
    t = open_table("memcache:mcsource", main_cf=values.get)
    assert t.lookup("grace") == "from main.cf parameters"


def test_same_answers_as_postmap(mc: memcached.Memcached, tmp_path: Path) -> None:
    if not has_map_type("memcache"):
        pytest.skip("postmap has no memcache tables")
    tmp_path.chmod(0o755)
    mc.set(b"pm:alice@example.com", b"alice@mail.example.com")
    mc.set(b"pm:bob@example.com", b"")
    backup = tmp_path / "backup"
    backup.write_text("carol@example.com carol@mail.example.com\n")
    cf = tmp_path / "pm.cf"
    cf.write_text(
        f"memcache = {mc.endpoint}\nkey_format = pm:%s\ndomain = example.com\n"
        f"backup = texthash:{backup}\n"
    )
    keys = [
        "alice@example.com",
        "ALICE@Example.COM",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "alice@other.example",
        "two words@example.com",
        "jörg@example.com",
    ]
    theirs, mine = same_answers(tmp_path, f"memcache:{cf}", keys)
    assert mine.stdout == (
        "alice@example.com\talice@mail.example.com\n"
        "ALICE@Example.COM\talice@mail.example.com\n"
        "bob@example.com\t\n"
        "carol@example.com\tcarol@mail.example.com\n"
    )
    assert mine.warnings == theirs.warnings
    assert mc.get(b"pm:carol@example.com") == (0, b"carol@mail.example.com")
