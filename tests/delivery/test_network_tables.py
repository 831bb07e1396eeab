"""The callers of network tables on the event loop: TLS policy (smtp_tls_policy_maps,
smtp_tls_per_site), generic maps and their failures, with sqlite: (a network-kind table
asked in a worker thread) and pgsql: at a dead port. A table that cannot answer defers with
Postfix's wording; a table that answers gives the same decision as a file table would."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.generic import GenericMapper
from mailcarrier.log import MemoryLog
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import resolve_policy, resolve_policy_async
from tests.support import sqldata
from tests.support.deliver import deliver_to
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import make_settings
from tests.tables.sqlfaults import dead_port


def _sqlite_cf(tmp_path: Path, rows: list[tuple[str, str]], name: str = "t") -> Path:
    db = tmp_path / f"{name}.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE m (k TEXT, v TEXT)")
    conn.executemany("INSERT INTO m VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    cf = tmp_path / f"{name}.cf"
    cf.write_text(sqldata.cf_text(dbpath=str(db), query="SELECT v FROM m WHERE k='%s'"))
    return cf


def _dead_pgsql(tmp_path: Path) -> Path:
    cf = tmp_path / "dead.cf"
    cf.write_text(
        sqldata.cf_text(
            hosts=f"inet:127.0.0.1:{dead_port()}", dbname="mail", query="SELECT 1 WHERE '%s'=''"
        )
    )
    return cf


def _agent(**params: str) -> Settings:
    return make_settings(params)


async def test_tls_policy_from_a_network_table(tmp_path: Path) -> None:
    cf = _sqlite_cf(tmp_path, [("[mx.example.com]:587", "encrypt"), (".example.net", "may")])
    agent = _agent(smtp_tls_policy_maps=f"sqlite:{cf}").for_transport("smtp")
    policy = await resolve_policy_async(agent, "[mx.example.com]:587", "mx.example.com")
    assert policy.level is SecurityLevel.ENCRYPT
    assert policy == resolve_policy(agent, "[mx.example.com]:587", "mx.example.com")
    sub = await resolve_policy_async(agent, "sub.example.net", "mx.sub.example.net")
    assert sub.level is SecurityLevel.MAY  # the parent domain, as .example.net


async def test_tls_policy_table_down_is_an_error_policy(tmp_path: Path) -> None:
    agent = _agent(smtp_tls_policy_maps=f"pgsql:{_dead_pgsql(tmp_path)}").for_transport("smtp")
    for policy in (
        await resolve_policy_async(agent, "example.com", "mx.example.com"),
        resolve_policy(agent, "example.com", "mx.example.com"),
    ):
        assert policy.error == "policy table lookup error"
        assert policy.dsn == "4.7.5"
        assert policy.warnings[-1] == (
            'smtp_tls_policy_maps, next-hop destination "example.com": policy table lookup error'
        )


async def test_tls_per_site_down_is_a_temporary_lookup_error(tmp_path: Path) -> None:
    agent = _agent(smtp_tls_per_site=f"pgsql:{_dead_pgsql(tmp_path)}").for_transport("smtp")
    policy = await resolve_policy_async(agent, "example.com", "mx.example.com")
    assert (policy.error, policy.dsn) == ("Temporary lookup error", "4.3.0")
    assert policy.warnings[-1] == (
        'smtp_tls_per_site next-hop destination "example.com": per-site table lookup error'
    )


async def test_delivery_deferred_when_the_policy_table_is_down(
    tmp_path: Path, smtp_server: AiosmtpdServer
) -> None:
    log = MemoryLog()
    config = _agent(smtp_tls_policy_maps=f"pgsql:{_dead_pgsql(tmp_path)}")
    result, _ = await deliver_to(smtp_server, config=config, log=log)
    status = result.recipients[0]
    assert status.status is DeliveryStatus.DEFERRED
    assert (status.dsn, status.diagnostic) == ("4.7.5", "client TLS configuration problem")
    assert any(line.endswith(": policy table lookup error") for line in log.lines)
    assert smtp_server.messages == []


async def test_generic_maps_in_a_network_table(tmp_path: Path, smtp_server: AiosmtpdServer) -> None:
    cf = _sqlite_cf(tmp_path, [("joe@local.example", "joe@public.example")], "generic")
    config = make_settings({"myorigin": "local.example", "smtp_generic_maps": f"sqlite:{cf}"})
    mapper = GenericMapper(config.for_transport("smtp"), warning=print)
    await mapper.prefetch(["joe@local.example", "other@local.example"])
    assert mapper._memo == {
        "joe@local.example": "joe@public.example",
        "other@local.example": None,
    }
    result, _ = await deliver_to(smtp_server, sender="joe@local.example", config=config)
    assert result.recipients[0].status is DeliveryStatus.SENT
    assert smtp_server.messages[0].mail_from == "joe@public.example"
    await asyncio.sleep(0)


async def test_policies_from_network_tables_are_looked_up_per_request(tmp_path: Path) -> None:
    from mailcarrier.delivery.tls_job import TlsClient, TlsJob
    from mailcarrier.transport.connection import Peer

    cf = _sqlite_cf(tmp_path, [("example.com", "encrypt")], "policy")
    agent = _agent(smtp_tls_policy_maps=f"sqlite:{cf}").for_transport("smtp")
    client = TlsClient()
    peer = Peer("mx.example.com", "192.0.2.1", 25)

    def job() -> TlsJob:
        return client.job(agent, "example.com", log=MemoryLog(), resolver=lambda: None,
                          preactive_delay=0.0)  # fmt: skip

    first = job()
    assert (await first.resolve(peer)).level is SecurityLevel.ENCRYPT
    conn = sqlite3.connect(tmp_path / "policy.db")
    conn.execute("UPDATE m SET v='may'")
    conn.commit()
    conn.close()
    # The same request asks the table once (its second question is answered from it)...
    assert (await first.resolve(peer)).level is SecurityLevel.ENCRYPT
    # ... and the next request asks again: smtp(8)'s policy cache lives for one delivery.
    assert (await job().resolve(peer)).level is SecurityLevel.MAY


def _no_blocking_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any synchronous lookup in a network table fail the test: on the event loop
    every such table must be asked with lookup_async."""
    from mailcarrier.tables.sqlite import SqliteTable

    def blocked(self: SqliteTable, key: str) -> str | None:
        raise AssertionError(f"{self.spec}: blocking lookup of {key!r} on the event loop")

    monkeypatch.setattr(SqliteTable, "lookup", blocked)


async def test_generic_header_addresses_are_asked_before_the_content_goes(
    tmp_path: Path, smtp_server: AiosmtpdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [("joe@local.example", "joe@public.example"), ("ann@local.example", "ann@x.example")]
    cf = _sqlite_cf(tmp_path, rows, "generic")
    config = make_settings({"myorigin": "local.example", "smtp_generic_maps": f"sqlite:{cf}"})
    _no_blocking_lookups(monkeypatch)
    body = (
        b"From: Joe <joe@local.example>\n"
        b"To: ann@local.example,\n other@local.example\n"
        b"Subject: hi\n\nFrom: joe@local.example stays in the body\n"
    )
    result, _ = await deliver_to(smtp_server, body, sender="joe@local.example", config=config)
    assert result.recipients[0].status is DeliveryStatus.SENT
    received = smtp_server.messages[0]
    assert received.mail_from == "joe@public.example"
    assert b"From: Joe <joe@public.example>\r\n" in received.content
    assert b"To: ann@x.example, other@local.example\r\n" in received.content
    assert received.content.endswith(b"From: joe@local.example stays in the body\r\n")


async def test_generic_answers_last_one_request(
    tmp_path: Path, smtp_server: AiosmtpdServer
) -> None:
    cf = _sqlite_cf(tmp_path, [("joe@local.example", "joe@first.example")], "generic")
    config = make_settings({"myorigin": "local.example", "smtp_generic_maps": f"sqlite:{cf}"})
    body = b"From: joe@local.example\n\nx\n"
    await deliver_to(smtp_server, body, sender="joe@local.example", config=config)
    conn = sqlite3.connect(tmp_path / "generic.db")
    conn.execute("UPDATE m SET v='joe@second.example'")
    conn.commit()
    conn.close()
    await deliver_to(smtp_server, body, sender="joe@local.example", config=config)
    first, second = smtp_server.messages
    assert (first.mail_from, second.mail_from) == ("joe@first.example", "joe@second.example")
    assert b"From: joe@second.example\r\n" in second.content


def test_header_addresses_as_rewrite_header_meets_them() -> None:
    from mailcarrier.delivery.generic import header_addresses

    head = (
        b"Received: from x by y\r\n"
        b'From: "Joe, Jr" <joe@a.example>\r\n'
        b"Cc: <b@b.example>,\r\n\t c@c.example\r\n"
        b"Subject: d@d.example\r\n"
        b"Reply-To: undisclosed-recipients:;\r\n"
    )
    assert header_addresses(head) == ["joe@a.example", "b@b.example", "c@c.example"]


async def test_server_quirks_from_a_network_table(
    tmp_path: Path, smtp_server: AiosmtpdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cf = _sqlite_cf(tmp_path, [("127.0.0.1", "pipelining, dsn")], "discard")
    config = make_settings({"smtp_discard_ehlo_keyword_address_maps": f"sqlite:{cf}"})
    _no_blocking_lookups(monkeypatch)
    log = MemoryLog()
    result, _ = await deliver_to(smtp_server, config=config, log=log, notify="SUCCESS")
    assert result.recipients[0].status is DeliveryStatus.SENT
    # DSN was discarded for this server: no NOTIFY= went out although one was asked for.
    assert smtp_server.messages[0].rcpt_options == [[]]


async def test_server_quirks_table_down_defers(tmp_path: Path, smtp_server: AiosmtpdServer) -> None:
    config = make_settings(
        {"smtp_discard_ehlo_keyword_address_maps": f"pgsql:{_dead_pgsql(tmp_path)}"}
    )
    log = MemoryLog()
    result, _ = await deliver_to(smtp_server, config=config, log=log)
    status = result.recipients[0]
    assert status.status is DeliveryStatus.DEFERRED
    assert status.diagnostic.startswith("local data error while talking to ")
    assert any("smtp_discard_ehlo_keyword_address_maps map lookup error for 127.0.0.1" in line
               for line in log.lines)  # fmt: skip
    assert smtp_server.messages == []


async def test_local_domains_from_a_network_table_for_generic_user_keys(
    tmp_path: Path, smtp_server: AiosmtpdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "user" key of generic(5) applies only to this machine's domains: here those are
    # in a $mydestination table that asks a server, asked on the loop too.
    generic = _sqlite_cf(tmp_path, [("joe", "joe@public.example")], "generic")
    local = _sqlite_cf(tmp_path, [("local.example", "ok")], "mydest")
    config = make_settings(
        {
            "myorigin": "elsewhere.example",
            "mydestination": f"sqlite:{local}",
            "smtp_generic_maps": f"sqlite:{generic}",
        }
    )
    _no_blocking_lookups(monkeypatch)
    body = b"From: joe@local.example\nTo: joe@remote.example\n\nx\n"
    result, _ = await deliver_to(smtp_server, body, sender="joe@local.example", config=config)
    assert result.recipients[0].status is DeliveryStatus.SENT
    received = smtp_server.messages[0]
    assert received.mail_from == "joe@public.example"
    assert b"From: joe@public.example\r\nTo: joe@remote.example\r\n" in received.content
