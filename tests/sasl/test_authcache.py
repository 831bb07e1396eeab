"""The 535 failure cache: same password not retried until it changes or the entry expires;
memory and Postfix-format storage (btree:, hash:, lmdb: files, read and written by Debian's
postmap too); Postfix's entry validation and warnings; Postfix-style cache names; two
processes sharing one file."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.sasl.authcache import AuthFailureCache, cache_path, password_hash
from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import available
from mailcarrier.tables.lmdb_file import PACKAGE as LMDB
from tests.support.clock import FakeClock
from tests.support.postmap import has_map_type

NOW = 1_000_000.0
REPLY = "535 5.7.8 Error: authentication failed"


def _bdb() -> bool:
    try:
        import berkeleydb  # noqa: F401
    except ImportError:
        return False
    return True


needs_bdb = pytest.mark.skipif(not _bdb(), reason="berkeleydb not installed (make extras)")
needs_lmdb = pytest.mark.skipif(not available(LMDB), reason="lmdb not installed")
FILE_KINDS = [
    pytest.param("btree", marks=needs_bdb),
    pytest.param("hash", marks=needs_bdb),
    pytest.param("lmdb", marks=needs_lmdb),
]


def _postmap(tmp: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp / "postmap-etc"
    config.mkdir(exist_ok=True)
    (config / "main.cf").write_text("compatibility_level = 3.7\n")
    return subprocess.run(
        ["postmap", "-c", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def needs_postmap(kind: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not has_map_type(kind), reason=f"postmap without {kind}: tables")


POSTMAP_KINDS = [
    pytest.param("btree", marks=[needs_bdb, needs_postmap("btree")]),
    pytest.param("hash", marks=[needs_bdb, needs_postmap("hash")]),
    pytest.param("lmdb", marks=[needs_lmdb, needs_postmap("lmdb")]),
]


@pytest.fixture(params=["memory", *FILE_KINDS])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> AuthFailureCache:
    clock = FakeClock(NOW)
    name = "" if request.param == "memory" else f"{request.param}:{tmp_path}/sasl_auth_cache"
    return AuthFailureCache.open(name, 3600, clock=clock)


def test_same_password_found_changed_password_not(cache: AuthFailureCache) -> None:
    cache.store("Mail.Example", "u", "bad", "5.7.8", REPLY)
    hit = cache.find("mail.example", "u", "bad")
    assert hit is not None and hit.dsn == "5.7.8" and hit.text == REPLY
    assert cache.find("mail.example", "u", "new") is None
    # The stale entry was removed: even the old password no longer hits.
    assert cache.find("mail.example", "u", "bad") is None
    assert cache.take_warnings() == []


def test_other_user_or_host_misses(cache: AuthFailureCache) -> None:
    cache.store("h", "u", "bad", "5.7.8", "535 no")
    assert cache.find("h", "v", "bad") is None
    assert cache.find("other", "u", "bad") is None


def test_expiry(cache: AuthFailureCache) -> None:
    cache.store("h", "u", "bad", "5.7.8", "535 no")
    assert isinstance(cache.clock, FakeClock)
    cache.clock.now += 3600
    assert cache.find("h", "u", "bad") is not None  # time + ttl < now: not yet
    cache.clock.now += 1
    assert cache.find("h", "u", "bad") is None
    cache.clock.now -= 3601
    assert cache.find("h", "u", "bad") is None  # it was deleted when found expired


@needs_bdb
def test_file_survives_reopen_and_is_private(tmp_path: Path) -> None:
    name = f"proxy:btree:{tmp_path}/cache"
    first = AuthFailureCache.open(name, 60)
    first.store("h", "u", "bad", "5.7.8", "535 no")
    first.close()
    path = tmp_path / "cache.db"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b"bad" not in path.read_bytes()
    again = AuthFailureCache.open(name, 60)
    assert again.find("h", "u", "bad") is not None


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_entries_as_postfix_writes_them(kind: str, tmp_path: Path) -> None:
    """Key host;user, value time;base64(SHA-1(password));dsn;text, each with the trailing
    null byte dict_put() writes on Linux."""
    cache = AuthFailureCache.open(f"{kind}:{tmp_path}/c", 60, clock=FakeClock(NOW + 0.7))
    cache.store("mail.example", "u@example.org", "bad", "5.7.8", REPLY)
    assert cache.table is not None
    raw = dict(_items(kind, tmp_path / "c"))
    assert raw == {
        b"mail.example;u@example.org\0": b"1000000;GQLj1vxOeKC8xQuhK4gnaa+/Sow=;5.7.8;"
        + REPLY.encode()
        + b"\0"
    }
    assert password_hash("bad") == "GQLj1vxOeKC8xQuhK4gnaa+/Sow="


def _items(kind: str, source: Path) -> list[tuple[bytes, bytes]]:
    if kind == "lmdb":
        import lmdb

        env = lmdb.open(f"{source}.lmdb", subdir=False, lock=False, readonly=True)
        with env.begin() as txn:
            items = list(txn.cursor().iternext())
        env.close()
        return items
    from berkeleydb import db

    handle = db.DB()
    handle.open(f"{source}.db", None, db.DB_HASH if kind == "hash" else db.DB_BTREE, db.DB_RDONLY)
    items = list(handle.items())
    handle.close()
    return items


@pytest.mark.parametrize("kind", POSTMAP_KINDS)
def test_postmap_reads_what_mailcarrier_wrote(kind: str, tmp_path: Path) -> None:
    cache = AuthFailureCache.open(f"proxy:{kind}:{tmp_path}/sasl_auth_cache", 60)
    cache.store("mail.example", "user", "bad", "5.7.8", REPLY)
    done = _postmap(tmp_path, "-q", "mail.example;user", f"{kind}:{tmp_path}/sasl_auth_cache")
    assert done.returncode == 0, done.stderr
    stamp, digest, dsn, text = done.stdout.rstrip("\n").split(";", 3)
    assert int(stamp) > 0 and digest == password_hash("bad")
    assert (dsn, text) == ("5.7.8", REPLY)


@pytest.mark.parametrize("kind", POSTMAP_KINDS)
def test_mailcarrier_honours_what_postmap_wrote(kind: str, tmp_path: Path) -> None:
    source = tmp_path / "sasl_auth_cache"
    fresh = f"{int(NOW)};{password_hash('bad')};4.7.0;535 4.7.0 nope"
    source.write_text(f"mail.example;u {fresh}\nmail.example;old {int(NOW) - 61};x;5.7.8;535 o\n")
    done = _postmap(tmp_path, f"{kind}:{source}")
    assert done.returncode == 0, done.stderr
    cache = AuthFailureCache.open(f"{kind}:{source}", 60, clock=FakeClock(NOW + 1))
    hit = cache.find("mail.example", "u", "bad")
    assert hit is not None and (hit.dsn, hit.text) == ("4.7.0", "535 4.7.0 nope")
    assert cache.find("mail.example", "old", "x") is None  # expired: deleted
    listed = _postmap(tmp_path, "-s", f"{kind}:{source}")
    assert listed.stdout == f"mail.example;u\t{fresh}\n"


@needs_bdb
def test_entries_without_null_bytes_are_found_and_kept_so(tmp_path: Path) -> None:
    """A table written without trailing nulls (TRY0NULL): found, and later entries are
    written the same way, as dict_db.c decides on the first key found."""
    from berkeleydb import db

    handle = db.DB()
    handle.open(f"{tmp_path}/c.db", None, db.DB_BTREE, db.DB_CREATE, 0o600)
    value = f"{int(NOW)};{password_hash('bad')};5.7.8;535 x"
    handle.put(b"h;u", value.encode())
    handle.close()
    cache = AuthFailureCache.open(f"btree:{tmp_path}/c", 60, clock=FakeClock(NOW))
    assert cache.find("h", "u", "bad") is not None
    cache.store("h", "v", "bad", "5.7.8", "535 y")
    assert sorted(k for k, _ in _items("btree", tmp_path / "c")) == [b"h;u", b"h;v"]


@pytest.mark.parametrize(
    "entry",
    [
        "garbage",
        "1000000;hash;5.7.8;",  # no text
        "1000000;hash;5.7;535 x",  # not a DSN
        "1000000;hash;5.7.8x;535 x",  # DSN followed by neither end nor space
        "1000000;hash;3.7.8;535 x",
        "1000000;;5.7.8;535 x",
        "x1000000;hash;5.7.8;535 x",
    ],
)
def test_malformed_entry_is_deleted_with_postfix_warning(entry: str) -> None:
    cache = AuthFailureCache(60, clock=FakeClock(NOW))
    cache._memory["h;u"] = entry
    assert cache.find("h", "u", "bad") is None
    assert cache.take_warnings() == [f"bad smtp_sasl_auth_cache entry: {entry}"]
    assert "h;u" not in cache._memory


@pytest.mark.parametrize(
    ("entry", "dsn", "text"),
    [
        (" +1000000;{h};5.7.8 x;535 a;b", "5.7.8 x", "535 a;b"),  # sscanf's %lu and %[^;]
        ("1000000;{h};4.7.0;535 first\nsecond", "4.7.0", "535 first"),  # %[^\n]
    ],
)
def test_entries_read_as_sscanf_reads_them(entry: str, dsn: str, text: str) -> None:
    cache = AuthFailureCache(60, clock=FakeClock(NOW))
    cache._memory["h;u"] = entry.format(h=password_hash("pw"))
    hit = cache.find("h", "u", "pw")
    assert hit is not None and (hit.dsn, hit.text) == (dsn, text)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_malformed_file_entry_is_deleted(kind: str, tmp_path: Path) -> None:
    cache = AuthFailureCache.open(f"{kind}:{tmp_path}/c", 60, clock=FakeClock(NOW))
    assert cache.table is not None
    long = "x" * 150
    cache.table.update("h;u", long)
    assert cache.find("h", "u", "bad") is None
    assert cache.take_warnings() == [f"bad smtp_sasl_auth_cache entry: {'x' * 100}"]
    assert _items(kind, tmp_path / "c") == []


@needs_bdb
def test_legacy_sqlite_cache_is_replaced(tmp_path: Path) -> None:
    legacy = sqlite3.connect(tmp_path / "c.db")
    legacy.execute("CREATE TABLE auth_failure (key TEXT PRIMARY KEY)")
    legacy.commit()
    legacy.close()
    cache = AuthFailureCache.open(f"btree:{tmp_path}/c", 60, clock=FakeClock(NOW))
    assert cache.find("h", "u", "p") is None
    assert cache.take_warnings() == [
        f"{tmp_path}/c.db: replaced a file in the private format of older mailcarrier "
        "versions with an empty btree table"
    ]
    cache.store("h", "u", "p", "5.7.8", "535 x")
    assert cache.find("h", "u", "p") is not None


@needs_bdb
def test_wrong_access_method_is_a_table_error(tmp_path: Path) -> None:
    AuthFailureCache.open(f"hash:{tmp_path}/c", 60).store("h", "u", "p", "5.7.8", "535 x")
    cache = AuthFailureCache.open(f"btree:{tmp_path}/c", 60)
    with pytest.raises(TableError, match=r"c\.db: a Berkeley DB hash file, not a btree file"):
        cache.find("h", "u", "p")


@pytest.mark.parametrize(
    ("module", "kind", "extra"), [("berkeleydb", "btree", "berkeleydb"), ("lmdb", "lmdb", "lmdb")]
)
def test_missing_library_is_one_config_error(
    module: str, kind: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as info:
        AuthFailureCache.open(f"proxy:{kind}:/var/lib/postfix/sasl_auth_cache", 60)
    message = str(info.value)
    assert message.startswith(f"smtp_sasl_auth_cache_name: {kind}:/var/lib/postfix/sasl_auth_cache")
    assert f"pip install 'mailcarrier[{extra}]'" in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", None),
        ("btree:/var/lib/x", Path("/var/lib/x.db")),
        ("proxy:btree:/var/lib/x", Path("/var/lib/x.db")),
        ("lmdb:/var/lib/x", Path("/var/lib/x.lmdb")),
        ("/var/lib/x", Path("/var/lib/x.db")),  # postmap's default type, hash:
    ],
)
def test_cache_path(name: str, expected: Path | None) -> None:
    assert cache_path(name) == expected


@pytest.mark.parametrize("name", ["btree:/a, btree:/b", "mysql:/etc/x.cf", "btree:relative"])
def test_bad_cache_names(name: str) -> None:
    with pytest.raises(ConfigError, match="smtp_sasl_auth_cache_name"):
        cache_path(name)


def test_multiple_values_in_postfix_words() -> None:
    with pytest.raises(ConfigError) as info:
        cache_path("proxy:btree:/a btree:/b")
    assert str(info.value) == (
        'smtp_sasl_auth_cache_name: SASL authentication cache name "proxy:btree:/a btree:/b" '
        "contains multiple values"
    )


@needs_bdb
def test_unopenable_file_is_table_error(tmp_path: Path) -> None:
    cache = AuthFailureCache.open(f"btree:{tmp_path}/missing-dir/c", 60)
    with pytest.raises(TableError, match="create database"):
        cache.find("h", "u", "p")


_WRITER = """
import sys
from mailcarrier.sasl.authcache import AuthFailureCache
cache = AuthFailureCache.open(sys.argv[1], 3600)
for i in range(int(sys.argv[3])):
    cache.store("host", f"{sys.argv[2]}{i}", "pw", "5.7.8", "535 no")
    assert cache.find("host", f"{sys.argv[2]}{i}", "pw") is not None
    if i % 3 == 0:
        assert cache.find("host", f"{sys.argv[2]}{i}", "changed") is None
"""


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_two_processes_share_one_file(kind: str, tmp_path: Path) -> None:
    """Two writers at once, each opening the file per operation under the lock: every
    entry of both is there afterwards and the file reads back whole."""
    name = f"{kind}:{tmp_path}/shared"
    count = 60
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, name, prefix, str(count)])
        for prefix in ("a", "b")
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0]
    cache = AuthFailureCache.open(name, 3600)
    for prefix in ("a", "b"):
        for i in range(count):
            expected = None if i % 3 == 0 else "found"
            found = cache.find("host", f"{prefix}{i}", "pw")
            assert (found and "found") == expected, (prefix, i)
    assert len(_items(kind, tmp_path / "shared")) == 2 * count - 2 * len(range(0, count, 3))
