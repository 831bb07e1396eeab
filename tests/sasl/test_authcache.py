"""The 535 failure cache: same password not retried until it changes or the entry expires;
memory and sqlite storage; Postfix-style cache names."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.sasl.authcache import AuthFailureCache, cache_path
from tests.support.clock import FakeClock


@pytest.fixture(params=["memory", "file"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> AuthFailureCache:
    clock = FakeClock(1_000_000.0)
    name = "" if request.param == "memory" else f"btree:{tmp_path}/sasl_auth_cache"
    return AuthFailureCache.open(name, 3600, clock=clock)


def test_same_password_found_changed_password_not(cache: AuthFailureCache) -> None:
    cache.store("Mail.Example", "u", "bad", "5.7.8", "535 5.7.8 Error: authentication failed")
    hit = cache.find("mail.example", "u", "bad")
    assert hit is not None and hit.dsn == "5.7.8" and hit.text.startswith("535 ")
    assert cache.find("mail.example", "u", "new") is None
    # The stale entry was removed: even the old password no longer hits.
    assert cache.find("mail.example", "u", "bad") is None


def test_other_user_or_host_misses(cache: AuthFailureCache) -> None:
    cache.store("h", "u", "bad", "5.7.8", "535 no")
    assert cache.find("h", "v", "bad") is None
    assert cache.find("other", "u", "bad") is None


def test_expiry(cache: AuthFailureCache) -> None:
    cache.store("h", "u", "bad", "5.7.8", "535 no")
    assert isinstance(cache.clock, FakeClock)
    cache.clock.now += 3601
    assert cache.find("h", "u", "bad") is None


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


def test_malformed_row_is_dropped(tmp_path: Path) -> None:
    cache = AuthFailureCache.open(f"{tmp_path}/c", 60)
    cache.store("h", "u", "bad", "5.7.8", "535 no")
    cache.close()
    db = sqlite3.connect(tmp_path / "c")
    db.execute("UPDATE auth_failure SET dsn = 'x', salt = 'notbytes'")
    db.commit()
    db.close()
    cache = AuthFailureCache.open(f"{tmp_path}/c", 60)
    assert cache.find("h", "u", "bad") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", None),
        ("btree:/var/lib/x", Path("/var/lib/x.db")),
        ("proxy:btree:/var/lib/x", Path("/var/lib/x.db")),
        ("lmdb:/var/lib/x", Path("/var/lib/x.lmdb")),
        ("/var/lib/x", Path("/var/lib/x")),
    ],
)
def test_cache_path(name: str, expected: Path | None) -> None:
    assert cache_path(name) == expected


@pytest.mark.parametrize("name", ["btree:/a, btree:/b", "mysql:/etc/x.cf", "btree:relative"])
def test_bad_cache_names(name: str) -> None:
    with pytest.raises(ConfigError, match="smtp_sasl_auth_cache_name"):
        cache_path(name)


def test_unopenable_file_is_config_error(tmp_path: Path) -> None:
    cache = AuthFailureCache.open(f"{tmp_path}/missing-dir/c", 60)
    with pytest.raises(ConfigError, match="cannot open"):
        cache.find("h", "u", "p")
