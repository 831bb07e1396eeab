"""postfix/proxymap.py with tables/proxy.py: proxy:type:name asked through a scripted
proxymap(8) on a UNIX-domain socket that speaks dict_proxy's attr0 protocol (released
Postfix's: open/lookup with table, flags and key; update/delete on proxywrite, as the SASL
authentication failure cache uses them); and Settings from Postfix's main.cf carrying the
client. tests/postfix/test_proxywrite.py does the same against a real proxywrite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailcarrier.postfix.attr import AttrParser, encode
from mailcarrier.postfix.proxymap import ProxymapClient
from mailcarrier.sasl.authcache import AuthFailureCache
from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.proxy import ProxyTable, ProxyUpdatableTable

TABLE = "pgsql:/etc/postfix/relay.cf"


class FakeProxymap:
    """Answers open and lookup; `values` maps keys to (status, value); records requests."""

    def __init__(self, path: Path, values: dict[str, tuple[int, str]], deny: bool = False):
        self.path = path
        self.values = values
        self.deny = deny
        self.requests: list[list[tuple[bytes, bytes]]] = []
        self.hang_up_after = 0  # close the connection after this many replies (0: never)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode([("protocol", "proxymap_protocol")]))
        parser = AttrParser()
        replies = 0
        while data := await reader.read(4096):
            parser.feed(data)
            while (request := parser.next_list()) is not None:
                self.requests.append(request)
                fields = dict(request)
                if fields[b"request"] == b"open":
                    writer.write(encode([("status", 4 if self.deny else 0), ("flags", 16)]))
                elif fields[b"request"] == b"update":
                    self.values[fields[b"key"].decode()] = (0, fields[b"value"].decode())
                    writer.write(encode([("status", 0)]))
                elif fields[b"request"] == b"delete":
                    gone = self.values.pop(fields[b"key"].decode(), None)
                    writer.write(encode([("status", 1 if gone is None else 0)]))
                else:
                    status, value = self.values.get(fields[b"key"].decode(), (1, ""))
                    writer.write(encode([("status", status), ("value", value)]))
                replies += 1
                if self.hang_up_after and replies >= self.hang_up_after:
                    writer.close()
                    return
        writer.close()


@pytest.fixture
async def proxymap(short_tmp: Path) -> AsyncIterator[FakeProxymap]:
    fake = FakeProxymap(
        short_tmp / "proxymap", {"alice@example.com": (0, "alice:pw"), "bad": (2, "")}
    )
    server = await asyncio.start_unix_server(fake.serve, str(fake.path))
    yield fake
    server.close()


async def test_lookups_through_proxymap(proxymap: FakeProxymap) -> None:
    client = ProxymapClient(proxymap.path)
    table = open_table(f"proxy:{TABLE}", proxy=client)
    assert isinstance(table, ProxyTable) and table.network
    assert await table.lookup_async("alice@example.com") == "alice:pw"
    assert await table.lookup_async("nobody") is None
    with pytest.raises(TableLookupError, match='proxymap lookup failed for table "pgsql'):
        await table.lookup_async("bad")  # PROXY_STAT_RETRY: the table's server is down
    assert proxymap.requests[0] == [
        (b"request", b"open"),
        (b"table", TABLE.encode()),
        (b"flags", b"540736"),
    ]
    assert proxymap.requests[1] == [
        (b"request", b"lookup"), (b"table", TABLE.encode()), (b"flags", b"16"),
        (b"key", b"alice@example.com"),
    ]  # fmt: skip


async def test_denied_table(proxymap: FakeProxymap) -> None:
    proxymap.deny = True
    table = open_table(f"proxy:{TABLE}", proxy=ProxymapClient(proxymap.path))
    with pytest.raises(TableError) as info:
        await table.lookup_async("alice@example.com")
    assert str(info.value) == (
        f'proxymap service is not configured for table "{TABLE}": list proxy:{TABLE} in '
        "proxy_read_maps"
    )


async def test_server_hang_up_is_retried_once(proxymap: FakeProxymap) -> None:
    proxymap.hang_up_after = 2  # proxymap exits (max_use) after the open and one lookup
    table = open_table(f"proxy:{TABLE}", proxy=ProxymapClient(proxymap.path))
    assert await table.lookup_async("alice@example.com") == "alice:pw"
    assert await table.lookup_async("alice@example.com") == "alice:pw"


async def test_no_proxymap_is_a_temporary_failure(short_tmp: Path) -> None:
    table = open_table(f"proxy:{TABLE}", proxy=ProxymapClient(short_tmp / "nothing"))
    with pytest.raises(TableLookupError, match="service proxymap: "):
        await table.lookup_async("x")


def test_standalone_opens_the_inner_table(tmp_path: Path) -> None:
    source = tmp_path / "map"
    source.write_text("key value\n")
    assert open_table(f"proxy:texthash:{source}").lookup("KEY") == "value"


def test_native_settings_carry_the_client(tmp_path: Path) -> None:
    from mailcarrier.postfix.options import load_settings, parse_argv

    (tmp_path / "main.cf").write_text("queue_directory = /var/spool/postfix\n")
    options = parse_argv(["smtp", "-n", "smtp", "-t", "unix"])
    settings = load_settings(options, {"MAIL_CONFIG": str(tmp_path)}, cwd="/var/spool/postfix")
    assert isinstance(settings.proxy, ProxymapClient)
    assert settings.proxy.path == Path("/var/spool/postfix/private/proxymap")


@pytest.fixture
async def proxywrite(short_tmp: Path) -> AsyncIterator[FakeProxymap]:
    fake = FakeProxymap(short_tmp / "proxywrite", {})
    server = await asyncio.start_unix_server(fake.serve, str(fake.path))
    yield fake
    server.close()


async def test_auth_cache_through_proxywrite(proxywrite: FakeProxymap, short_tmp: Path) -> None:
    """smtp(8)'s requests for proxy:btree:/path: open with DUP_REPLACE | SYNC_UPDATE |
    UTF8_REQUEST, then lookup, update and delete on the proxywrite service, never a file."""
    client = ProxymapClient(short_tmp / "proxymap")  # proxywrite is its neighbour
    name = "proxy:btree:/var/lib/postfix/sasl_auth_cache"
    cache = AuthFailureCache.open(name, 3600, proxy=client)
    assert isinstance(cache.table, ProxyUpdatableTable) and cache.path is None
    await cache.store_async("mail.example", "u", "bad", "5.7.8", "535 5.7.8 no")
    hit = await cache.find_async("mail.example", "u", "bad")
    assert hit is not None and hit.text == "535 5.7.8 no"
    assert await cache.find_async("mail.example", "u", "changed") is None
    table = b"btree:/var/lib/postfix/sasl_auth_cache"
    value = proxywrite.requests[1][4][1]
    assert value.endswith(b";GQLj1vxOeKC8xQuhK4gnaa+/Sow=;5.7.8;535 5.7.8 no")
    # The server's flags (16, DICT_FLAG_FIXED) are not request flags: 524672 throughout.
    assert proxywrite.requests == [
        [(b"request", b"open"), (b"table", table), (b"flags", b"524672")],
        [(b"request", b"update"), (b"table", table), (b"flags", b"524672"),
         (b"key", b"mail.example;u"), (b"value", value)],
        [(b"request", b"lookup"), (b"table", table), (b"flags", b"524672"),
         (b"key", b"mail.example;u")],
        [(b"request", b"lookup"), (b"table", table), (b"flags", b"524672"),
         (b"key", b"mail.example;u")],
        [(b"request", b"delete"), (b"table", table), (b"flags", b"524672"),
         (b"key", b"mail.example;u")],
    ]  # fmt: skip
    assert proxywrite.values == {}


async def test_bad_entry_from_proxywrite_is_deleted(proxywrite: FakeProxymap) -> None:
    proxywrite.values["h;u"] = (0, "not an entry")
    cache = AuthFailureCache.open(
        "proxy:lmdb:/x/c", 60, proxy=ProxymapClient(proxywrite.path.with_name("proxymap"))
    )
    assert await cache.find_async("h", "u", "p") is None
    assert cache.take_warnings() == ["bad smtp_sasl_auth_cache entry: not an entry"]
    assert proxywrite.values == {}


async def test_proxywrite_denial_names_proxy_write_maps(proxywrite: FakeProxymap) -> None:
    proxywrite.deny = True
    table = ProxyUpdatableTable("btree:/x/c", ProxymapClient(proxywrite.path, service="proxywrite"))
    with pytest.raises(TableError) as info:
        await table.update_async("h;u", "v")
    assert str(info.value) == (
        'proxywrite service is not configured for table "btree:/x/c": list proxy:btree:/x/c '
        "in proxy_write_maps"
    )


def test_auth_cache_standalone_opens_the_inner_file(tmp_path: Path) -> None:
    pytest.importorskip("berkeleydb")
    cache = AuthFailureCache.open(f"proxy:btree:{tmp_path}/c", 60)
    assert cache.path == tmp_path / "c.db"
