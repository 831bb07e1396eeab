"""Sending a day's TLSRPT reports (queue/tlsrpt_send.py): the loopback DNS server publishes
``_smtp._tls`` with a ``mailto:`` and an ``https:`` URI; the report by mail is queued in our own
spool as a DKIM-signed multipart/report (verified with dkimpy against the published key, with
the RFC 8460 ``s=tlsrpt`` service type) carrying ``TLS-Required: No``; the HTTPS POST reaches a
loopback server with a trustme certificate, with ``Content-Type: application/tlsrpt+gzip``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email
import email.policy
import gzip
import json
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from dnslib import RR

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.durable import write_atomically
from mailcarrier.log import MemoryLog
from mailcarrier.queue.spool import open_spool
from mailcarrier.queue.tlsrpt_post import PendingPosts
from mailcarrier.queue.tlsrpt_send import daily_reports, due_day, send_day, with_daily_reports
from mailcarrier.tls.tlsrpt import Attempt
from tests.support.dkim import dkim_key
from tests.support.https_collector import HttpsCollector
from tests.support.settings import loopback_dns, queue_settings
from tests.support.tls import Pki, Zone

DAY = "2026-11-30"
DOMAIN = "rpt.test"


@pytest.fixture
def https(pki: Pki) -> Iterator[tuple[int, list[tuple[str, str, bytes]]]]:
    collector = HttpsCollector(pki)
    yield collector.port, collector.posts
    collector.stop()


def _settings(tmp_path: Path, zone: Zone, pki: Pki, key: Path) -> Settings:
    return queue_settings(
        tmp_path / "queue",
        **loopback_dns(zone[0]),
        data_directory=str(tmp_path / "data"),
        smtp_tls_CAfile=pki.cafile(),
        tlsrpt_organization_name="Example Sender",
        tlsrpt_contact_info="tlsrpt-noreply@sender.example",
        tlsrpt_dkim_domain="sender.example",
        tlsrpt_dkim_selector="rpt",
        tlsrpt_dkim_private_key_file=str(key),
    )


def _queued(settings: Settings) -> list[bytes]:
    """The queued messages (CRLF); each must carry the TLS-Required: No flag (RFC 8689)."""
    spool = open_spool(settings)
    found = []
    for queue in ("maildrop", "incoming", "active", "deferred"):
        for message in spool.scan(queue):
            env = message.envelope
            assert env.tls_required_no
            raw = message.path.read_bytes()[env.content_offset : env.content_offset + env.size]
            found.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return found


async def test_a_day_goes_by_mail_and_by_https(
    tmp_path: Path, dns_zone: Zone, pki: Pki, https: tuple[int, list[tuple[str, str, bytes]]]
) -> None:
    port, posts = https
    key, record = dkim_key(tmp_path)
    url = f"https://127.0.0.1:{port}/v1/tlsrpt"
    dns_zone[1].records.extend(
        RR.fromZone(f'_smtp._tls.{DOMAIN}. 300 IN TXT "v=TLSRPTv1; rua=mailto:rpt@{DOMAIN},{url}"')
    )
    settings = _settings(tmp_path, dns_zone, pki, key)
    store = TlsrptStore(tmp_path / "data")
    store.record(Attempt(DAY, DOMAIN, "no-policy-found"), 5)
    store.close()
    log = MemoryLog()
    spool = open_spool(settings, log=log)
    assert await send_day(settings, spool, DAY, log=log) == 1
    # By HTTPS: the gzip'd JSON, with the RFC's media type.
    [(path, media, body)] = posts
    assert (path, media) == ("/v1/tlsrpt", "application/tlsrpt+gzip")
    report = json.loads(gzip.decompress(body))
    assert report["policies"][0]["summary"]["total-successful-session-count"] == 5
    # By mail: queued, DKIM-signed, TLS-Required: No, the report attached.
    [raw] = _queued(settings)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"rpt._domainkey.sender.example."
        return record

    assert dkim.verify(raw, dnsfunc=dns, tlsrpt="strict")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    assert message["TLS-Required"] == "No"
    assert message["TLS-Report-Domain"] == DOMAIN
    assert message["TLS-Report-Submitter"] == "sender.example"
    assert message["To"] == f"rpt@{DOMAIN}"
    assert message["Subject"] == (
        f"Report Domain: {DOMAIN} Submitter: sender.example Report-ID: <{report['report-id']}>"
    )
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/tlsrpt+gzip"]
    assert parts[1].get_filename() == f"sender.example!{DOMAIN}!1795996800!1796083199.json.gz"
    payload = parts[1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert json.loads(gzip.decompress(payload)) == report
    # Sent once: the day is remembered.
    assert due_day(settings, datetime.datetime(2026, 12, 1, 8, tzinfo=datetime.UTC)) is None
    assert due_day(settings, datetime.datetime(2026, 12, 2, 8, tzinfo=datetime.UTC)) == "2026-12-01"


async def test_without_a_dkim_key_no_mail_is_sent(tmp_path: Path, dns_zone: Zone, pki: Pki) -> None:
    dns_zone[1].records.extend(
        RR.fromZone(f'_smtp._tls.{DOMAIN}. 300 IN TXT "v=TLSRPTv1; rua=mailto:rpt@{DOMAIN}"')
    )
    settings = queue_settings(
        tmp_path / "queue",
        **loopback_dns(dns_zone[0]),
        data_directory=str(tmp_path / "data"),
    )
    store = TlsrptStore(tmp_path / "data")
    store.record(Attempt(DAY, DOMAIN, "no-policy-found"))
    store.close()  # on a loop the counts are written in batches: now
    log = MemoryLog()
    assert await send_day(settings, open_spool(settings, log=log), DAY, log=log) == 0
    assert _queued(settings) == []
    assert any(
        f"TLS report for {DOMAIN} of {DAY}: mailto:rpt@{DOMAIN}: not sent by mail: "
        "tlsrpt_dkim_selector and key file are not set" in line
        for line in log.lines
    ), log.lines


async def test_the_daily_trigger_sends_yesterday_once(tmp_path: Path, dns_zone: Zone) -> None:
    yesterday = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).strftime(
        "%Y-%m-%d"
    )
    settings = queue_settings(
        tmp_path / "queue",
        **loopback_dns(dns_zone[0]),
        data_directory=str(tmp_path / "data"),
        smtp_tlsrpt_enable="yes",
    )
    store = TlsrptStore(tmp_path / "data")
    store.record(Attempt(yesterday, DOMAIN, "no-policy-found"))
    store.close()
    log = MemoryLog()
    done = asyncio.Event()

    async def main() -> None:
        while not (tmp_path / "data" / "tlsrpt.sent").exists():
            await asyncio.sleep(0.01)
        done.set()

    spool = open_spool(settings, log=log)
    await asyncio.wait_for(with_daily_reports(main(), lambda: settings, spool, log), 60)
    assert done.is_set()
    assert (tmp_path / "data" / "tlsrpt.sent").read_text() == f"{yesterday}\n"
    assert due_day(settings) is None


async def test_the_daily_trigger_is_off_by_default(tmp_path: Path, dns_zone: Zone) -> None:
    settings = queue_settings(tmp_path / "queue", data_directory=str(tmp_path / "data"))
    log = MemoryLog()
    spool = open_spool(settings, log=log)
    task = asyncio.create_task(daily_reports(lambda: settings, spool, log, every=0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not (tmp_path / "data").exists()


async def test_the_daemon_retries_a_kept_post_after_a_restart(
    tmp_path: Path, dns_zone: Zone, pki: Pki
) -> None:
    """A POST kept by an earlier run (its file in data_directory) is sent by the daily
    loop of the next ``mailcarrier run`` once due."""
    server = HttpsCollector(pki)
    try:
        url = f"https://127.0.0.1:{server.port}/"
        settings = queue_settings(
            tmp_path / "queue",
            **loopback_dns(dns_zone[0]),
            data_directory=str(tmp_path / "data"),
            smtp_tls_CAfile=pki.cafile(),
            smtp_tlsrpt_enable="yes",
        )
        (tmp_path / "data").mkdir()
        write_atomically(tmp_path / "data" / "tlsrpt.sent", b"9999-12-31\n")  # nothing due
        long_ago = time.time() - 3600
        PendingPosts(tmp_path / "data").add(url, DOMAIN, DAY, b"GZIP", long_ago, "refused")
        log = MemoryLog()
        spool = open_spool(settings, log=log)
        task = asyncio.create_task(daily_reports(lambda: settings, spool, log, every=0.05))
        try:
            async with asyncio.timeout(30):
                while not server.posts:
                    await asyncio.sleep(0.01)
                while PendingPosts(tmp_path / "data").all():
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        server.stop()
    assert server.posts == [("/", "application/tlsrpt+gzip", b"GZIP")]
    assert log.lines == [f"TLS report for {DOMAIN} of {DAY} to {url} (attempt 2)"]
