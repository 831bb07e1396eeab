"""The callers of network tables on the event loop: TLS policy (smtp_tls_policy_maps,
smtp_tls_per_site), generic maps and their failures, with sqlite: (a network-kind table
asked in a worker thread) and pgsql: at a dead port. A table that cannot answer defers with
Postfix's wording; a table that answers gives the same decision as a file table would."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

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
