"""TLSRPT reports by HTTPS POST and their retries (queue/tlsrpt_post.py, RFC 8460 5.3).

A loopback HTTPS server with a trustme certificate answers as the test says (503, 201, 400)
or never answers; a port where nothing listens refuses. A POST that failed in a way that may
pass is kept in ``$data_directory/tlsrpt-posts/`` and tried again by a later round, with
fresh objects (as after a restart of ``mailcarrier run``), the delays doubling from five
minutes, until 24 hours after the first attempt: then it is given up with one line. The
clock is injected: no test waits for a retry."""

from __future__ import annotations

import datetime
import gzip
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import RR

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.log import MemoryLog
from mailcarrier.queue.spool import open_spool
from mailcarrier.queue.tlsrpt import default_resolver
from mailcarrier.queue.tlsrpt_post import PendingPosts, retry_due
from mailcarrier.queue.tlsrpt_send import send_day
from mailcarrier.tls.tlsrpt import Attempt
from tests.support.https_collector import HttpsCollector
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.settings import loopback_dns, queue_settings
from tests.support.tls import Pki, Zone

DAY = "2026-11-30"
DOMAIN = "rpt.test"
T0 = datetime.datetime(2026, 12, 1, 1, tzinfo=datetime.UTC).timestamp()


@pytest.fixture
def https(pki: Pki) -> Iterator[HttpsCollector]:
    server = HttpsCollector(pki, status=503)
    yield server
    server.stop()


@pytest.fixture
def silent(pki: Pki) -> Iterator[int]:
    """A TLS server that reads the request and never answers."""
    context = pki.server_context(pki.leaf("127.0.0.1"))
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[ssl.SSLSocket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                held.append(context.wrap_socket(conn, server_side=True))
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _setup(tmp_path: Path, zone: Zone, pki: Pki, url: str) -> Settings:
    zone[1].records.extend(RR.fromZone(f'_smtp._tls.{DOMAIN}. 300 IN TXT "v=TLSRPTv1; rua={url}"'))
    store = TlsrptStore(tmp_path / "data")
    store.record(Attempt(DAY, DOMAIN, "no-policy-found"), 3)
    store.close()
    return queue_settings(
        tmp_path / "queue",
        **loopback_dns(zone[0]),
        data_directory=str(tmp_path / "data"),
        smtp_tls_CAfile=pki.cafile(),
    )


async def _first(settings: Settings, log: MemoryLog, timeout: float = 30) -> int:
    spool = open_spool(settings, log=log)
    return await send_day(settings, spool, DAY, log=log, now=lambda: T0, timeout=timeout)


async def test_a_5xx_is_retried_by_a_later_round_after_a_restart(
    tmp_path: Path, dns_zone: Zone, pki: Pki, https: HttpsCollector
) -> None:
    status, posts = https.status, [body for _, _, body in https.posts]
    url = f"https://127.0.0.1:{https.port}/v1"
    settings = _setup(tmp_path, dns_zone, pki, url)
    log = MemoryLog()
    assert await _first(settings, log) == 0
    assert log.lines == [
        f"warning: TLS report for {DOMAIN} of {DAY}: {url}: "
        "HTTP/1.0 503 Service Unavailable (will retry)"
    ]
    [pending] = PendingPosts(tmp_path / "data").all()
    assert (pending.tries, pending.first, pending.next) == (1, T0, T0 + 300)
    # A restart: new objects, the same data_directory. Not due yet, then due.
    later = MemoryLog()
    resolver = default_resolver(settings)
    assert await retry_due(settings, resolver, later, now=lambda: T0 + 299) == 0
    assert len(https.posts) == 1
    status[0] = 201
    assert await retry_due(settings, resolver, later, now=lambda: T0 + 300) == 1
    assert later.lines == [f"TLS report for {DOMAIN} of {DAY} to {url} (attempt 2)"]
    assert PendingPosts(tmp_path / "data").all() == []
    posts = [body for _, _, body in https.posts]
    assert posts[0] == posts[1]
    assert json.loads(gzip.decompress(posts[1]))["policies"][0]["summary"] == {
        "total-successful-session-count": 3,
        "total-failure-session-count": 0,
    }


async def test_a_refused_post_is_given_up_after_24_hours_with_one_line(
    tmp_path: Path, dns_zone: Zone, pki: Pki
) -> None:
    url = f"https://127.0.0.1:{free_port()}/"
    settings = _setup(tmp_path, dns_zone, pki, url)
    log = MemoryLog()
    await _first(settings, log)
    assert "Connect call failed" in log.lines[-1] and log.lines[-1].endswith("(will retry)")
    pending = PendingPosts(tmp_path / "data")
    resolver = default_resolver(settings)
    tried = [T0]
    while (due := pending.next_due()) is not None:
        tried.append(due)
        await retry_due(settings, resolver, log, now=lambda: due)
    # The delays double from 5 minutes; the next after the ninth attempt would be more
    # than 24 hours after the first.
    assert [t - T0 for t in tried] == [0, 300, 900, 2100, 4500, 9300, 18900, 38100, 76500]
    given_up = [x for x in log.lines if "given up" in x]
    assert len(given_up) == 1
    assert given_up == [
        f"warning: TLS report for {DOMAIN} of {DAY} to {url}: given up after 9 "
        f"attempts: {url}: 127.0.0.1: [Errno 111] Connect call failed "
        f"('127.0.0.1', {url.split(':')[2].rstrip('/')})"
    ]


async def test_a_timeout_is_retried(tmp_path: Path, dns_zone: Zone, pki: Pki, silent: int) -> None:
    url = f"https://127.0.0.1:{silent}/"
    settings = _setup(tmp_path, dns_zone, pki, url)
    log = MemoryLog()
    await _first(settings, log, timeout=0.5)
    assert log.lines == [
        f"warning: TLS report for {DOMAIN} of {DAY}: {url}: 127.0.0.1: timed out after 0.5s "
        "(will retry)"
    ]
    assert len(PendingPosts(tmp_path / "data").all()) == 1


async def test_a_4xx_is_not_retried(
    tmp_path: Path, dns_zone: Zone, pki: Pki, https: HttpsCollector
) -> None:
    https.status[0] = 400
    url = f"https://127.0.0.1:{https.port}/"
    settings = _setup(tmp_path, dns_zone, pki, url)
    log = MemoryLog()
    await _first(settings, log)
    assert log.lines == [
        f"warning: TLS report for {DOMAIN} of {DAY}: {url}: HTTP/1.0 400 Bad Request"
    ]
    assert PendingPosts(tmp_path / "data").all() == []
