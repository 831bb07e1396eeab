"""The SASL authentication failure cache of the Postfix-native mode through a real Postfix
proxywrite(8) (the private instance of tests/support/postfix.py, with a proxywrite service and
proxy_write_maps added): smtp(8)'s requests change a btree: file that proxywrite owns, which
Postfix's postmap reads; an entry mailcarrier finds stale or malformed is deleted through
proxywrite; a table not in proxy_write_maps is refused in Postfix's words."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from mailcarrier.postfix.proxymap import ProxymapClient
from mailcarrier.sasl.authcache import AuthFailureCache, password_hash
from mailcarrier.tables.base import TableError
from mailcarrier.tables.proxy import ProxyUpdatableTable
from tests.support.postfix import PostfixInstance


@pytest.fixture(scope="module")
def cache_dir(postfix_instance: PostfixInstance) -> Path:
    """A directory proxywrite (the postfix user) may create the table in, and the
    proxywrite service allowed to change proxy:btree:DIR/sasl_auth_cache."""
    directory = postfix_instance.root / "authcache"
    directory.mkdir(exist_ok=True)
    owner = pwd.getpwnam("postfix")
    os.chown(directory, owner.pw_uid, owner.pw_gid)
    with postfix_instance.changes():
        postfix_instance.set_service("proxywrite", "proxymap", maxproc="1")
        postfix_instance.set_main({"proxy_write_maps": f"proxy:btree:{directory}/sasl_auth_cache"})
    return directory


def _client(instance: PostfixInstance) -> ProxymapClient:
    return ProxymapClient(instance.spool / "private" / "proxymap", timeout=30)


def _postmap_query(instance: PostfixInstance, key: str, spec: str) -> str:
    done = subprocess.run(
        ["postmap", "-c", str(instance.config), "-q", key, spec],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.stdout.rstrip("\n")


async def test_entries_go_through_proxywrite(
    postfix_instance: PostfixInstance, cache_dir: Path
) -> None:
    spec = f"btree:{cache_dir}/sasl_auth_cache"
    cache = AuthFailureCache.open(f"proxy:{spec}", 3600, proxy=_client(postfix_instance))
    assert isinstance(cache.table, ProxyUpdatableTable)
    await cache.store_async("mail.example", "user", "bad", "5.7.8", "535 5.7.8 Error: no")
    index = cache_dir / "sasl_auth_cache.db"
    assert index.stat().st_uid == pwd.getpwnam("postfix").pw_uid  # proxywrite made it
    stamp, digest, rest = _postmap_query(postfix_instance, "mail.example;user", spec).split(";", 2)
    assert int(stamp) > 0 and digest == password_hash("bad") and rest == "5.7.8;535 5.7.8 Error: no"
    hit = await cache.find_async("mail.example", "user", "bad")
    assert hit is not None and (hit.dsn, hit.text) == ("5.7.8", "535 5.7.8 Error: no")
    # Another password: the entry is deleted, through proxywrite.
    assert await cache.find_async("mail.example", "user", "new") is None
    assert _postmap_query(postfix_instance, "mail.example;user", spec) == ""
    # A malformed entry: Postfix's warning, and deleted.
    await cache.table.update_async("mail.example;user", "garbage")
    assert await cache.find_async("mail.example", "user", "bad") is None
    assert cache.take_warnings() == ["bad smtp_sasl_auth_cache entry: garbage"]
    assert _postmap_query(postfix_instance, "mail.example;user", spec) == ""


async def test_table_not_in_proxy_write_maps(
    postfix_instance: PostfixInstance, cache_dir: Path
) -> None:
    spec = f"btree:{cache_dir}/other"
    cache = AuthFailureCache.open(f"proxy:{spec}", 3600, proxy=_client(postfix_instance))
    with pytest.raises(TableError) as info:
        await cache.store_async("h", "u", "p", "5.7.8", "535 no")
    assert str(info.value) == (
        f'proxywrite service is not configured for table "{spec}": list proxy:{spec} in '
        "proxy_write_maps"
    )
    assert not (cache_dir / "other.db").exists()
