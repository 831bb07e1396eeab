"""Reporting under Postfix (postfix/report.py over postfix/services.py): for each verdict, the
exact request bytes bounce(8), defer(8), trace(8) and verify(8) receive, the mark in the queue
file, the log line, and the recipient's share of the final status; services that are down.

The services are small unix-socket servers in the test speaking the protocol as Postfix's do
(their requests checked against the captured exchanges of a real smtp(8) in
../shared/reference/postfix-native/svc.*.json); tests/postfix/test_native_e2e.py runs the
real ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailcarrier.log import MemoryLog
from mailcarrier.postfix.reply import Dsn
from mailcarrier.postfix.report import Reporter
from mailcarrier.postfix.request import NativeRecipient
from mailcarrier.postfix.services import StatusServices
from mailcarrier.status import ACTION_FORWARDED, DeliveryStatus, RecipientStatus
from mailcarrier.tables.domainlist import DomainList
from tests.support.postfix_services import FakeService, start_services

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "postfix-native"
RELAY = "mx.example[198.51.100.1]:25"
RCPT = NativeRecipient("orig@example.net", "rcpt@example.net", 660, "rfc822;orig@example.net", 0)


@pytest.fixture
async def queue_dir(tmp_path: Path) -> AsyncIterator[Path]:
    (tmp_path / "private").mkdir()
    yield tmp_path


_start = start_services


def _status(kind: DeliveryStatus, dsn: str, diagnostic: str, action: str = "") -> RecipientStatus:
    return RecipientStatus(
        "rcpt@example.net",
        kind,
        dsn,
        diagnostic,
        relay=RELAY,
        orig_address="orig@example.net",
        action=action,
    )


def _reporter(root: Path, flags: int = 3, **kw: object) -> tuple[Reporter, MemoryLog, list[int]]:
    log = MemoryLog()
    marks: list[int] = []
    services = StatusServices(root, log, verify_retries=2)
    reporter = Reporter(
        services,
        log,
        flags=flags,
        queue_id="2B84B2204F3",
        mark=marks.append,
        **kw,  # type: ignore[arg-type]
    )
    return reporter, log, marks


async def test_append_request_is_byte_for_byte_what_smtp8_sends(queue_dir: Path) -> None:
    capture = json.loads((CAPTURES / "svc.defer.1796224210.548.json").read_text())
    defer = FakeService("defer", "delivery_status_protocol")
    servers = await _start(queue_dir, defer)
    services = StatusServices(queue_dir, MemoryLog())
    rcpt = NativeRecipient(
        "deferme@remote.test", "deferme@remote.test", 803, "rfc822;orig@x.test", 14
    )
    dsn = Dsn(
        "4.4.1", "smtp", "451 stub says later", "dns", "127.0.0.1", "delayed", "stub deferral test"
    )
    status = await services.append("defer", flags=0, queue_id="78D81220331", rcpt=rcpt, dsn=dsn)
    assert status == 0
    assert defer.requests == [capture["sent"].encode("latin-1")]
    for server in servers:
        server.close()


async def test_deferred_goes_to_defer_and_stays_queued(queue_dir: Path) -> None:
    defer = FakeService("defer", "delivery_status_protocol")
    servers = await _start(queue_dir, defer)
    reporter, log, marks = _reporter(queue_dir)
    reply = f"host {RELAY[:-3]} said: 450 4.2.0 try later (in reply to RCPT TO command)"
    assert await reporter.report(RCPT, _status(DeliveryStatus.DEFERRED, "4.2.0", reply)) == -1
    assert marks == []
    (request,) = defer.requests
    assert (
        b"status\x004.2.0\x00diag_type\x00smtp\x00diag_text\x00450 4.2.0 try later\x00" in request
    )
    assert b"mta_type\x00dns\x00mta_mname\x00mx.example\x00action\x00delayed\x00" in request
    assert b"offset\x00660\x00" in request
    assert log.lines[-1].startswith("2B84B2204F3: to=<rcpt@example.net>, orig_to=<orig@")
    assert log.lines[-1].endswith(f"dsn=4.2.0, status=deferred ({reply})")
    for server in servers:
        server.close()


def _flush_reporter(root: Path, domains: str) -> tuple[Reporter, MemoryLog]:
    log = MemoryLog()
    services = StatusServices(root, log, flush_domains=DomainList.parse(domains))
    return Reporter(services, log, flags=3, queue_id="2B84B2204F3", mark=lambda _: None), log


_LATER = f"host {RELAY[:-3]} said: 450 4.2.0 try later (in reply to RCPT TO command)"


async def test_deferred_tells_flush8_about_a_fast_flush_domain(queue_dir: Path) -> None:
    """defer.c's flush_add: public/flush gets request=add, the site, the queue ID."""
    defer = FakeService("defer", "delivery_status_protocol")
    flush = FakeService("flush", "queue_flush_protocol", folder="public")
    servers = await _start(queue_dir, defer, flush)
    reporter, log = _flush_reporter(queue_dir, "other.test, .example.net, example.net")
    assert await reporter.report(RCPT, _status(DeliveryStatus.DEFERRED, "4.2.0", _LATER)) == -1
    assert flush.requests == [b"request\0add\0site\0example.net\0queue_id\x002B84B2204F3\0\0"]
    assert not any("warning" in line for line in log.lines)
    for server in servers:
        server.close()


async def test_flush8_is_not_asked_outside_the_fast_flush_domains(queue_dir: Path) -> None:
    defer = FakeService("defer", "delivery_status_protocol")
    flush = FakeService("flush", "queue_flush_protocol", folder="public")
    servers = await _start(queue_dir, defer, flush)
    reporter, log = _flush_reporter(queue_dir, "!example.net, .net")
    assert await reporter.report(RCPT, _status(DeliveryStatus.DEFERRED, "4.2.0", _LATER)) == -1
    assert flush.requests == []
    assert not any("warning" in line for line in log.lines)
    for server in servers:
        server.close()


async def test_flush8_down_is_a_warning_and_changes_nothing(queue_dir: Path) -> None:
    defer = FakeService("defer", "delivery_status_protocol")
    servers = await _start(queue_dir, defer)
    reporter, log = _flush_reporter(queue_dir, "example.net")
    assert await reporter.report(RCPT, _status(DeliveryStatus.DEFERRED, "4.2.0", _LATER)) == -1
    assert len(defer.requests) == 1
    warnings = [line for line in log.lines if "public/flush" in line or "flush service" in line]
    assert warnings == [
        "warning: connect to public/flush: No such file or directory",
        "warning: 2B84B2204F3: flush service failure",
    ]
    for server in servers:
        server.close()


async def test_bounce_is_marked_only_when_bounce8_took_it(queue_dir: Path) -> None:
    bounce = FakeService("bounce", "delivery_status_protocol")
    defer = FakeService("defer", "delivery_status_protocol")
    servers = await _start(queue_dir, bounce, defer)
    reporter, log, marks = _reporter(queue_dir)
    reply = (
        "host mx.example[198.51.100.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)"
    )
    verdict = _status(DeliveryStatus.BOUNCED, "5.1.1", reply)
    assert await reporter.report(RCPT, verdict) == 0
    assert marks == [660] and len(bounce.requests) == 1 and defer.requests == []
    assert b"action\x00failed\x00" in bounce.requests[0]
    assert log.lines[-1].endswith("status=bounced (" + reply + ")")
    bounce.status = 1  # bounce(8) refused: the recipient is deferred, not lost
    assert await reporter.report(RCPT, verdict) == -1
    assert marks == [660]
    assert b"reason\x00bounce or trace service failure\x00" in defer.requests[0]
    assert b"status\x004.3.0\x00" in defer.requests[0]
    for server in servers:
        server.close()


async def test_bounce_service_down_defers(queue_dir: Path) -> None:
    defer = FakeService("defer", "delivery_status_protocol")
    servers = await _start(queue_dir, defer)
    reporter, log, marks = _reporter(queue_dir)
    verdict = _status(DeliveryStatus.BOUNCED, "5.1.1", "host h[a] said: 550 no")
    assert await reporter.report(RCPT, verdict) == -1
    assert marks == []
    assert ("warning", "smtp", "connect to private/bounce: No such file or directory") in (
        log.records
    )
    assert log.lines[-1].endswith("dsn=4.3.0, status=deferred (bounce or trace service failure)")
    for server in servers:
        server.close()


async def test_sent_is_marked_when_the_success_flag_says_so(queue_dir: Path) -> None:
    reporter, log, marks = _reporter(queue_dir, flags=3)
    verdict = _status(DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok: queued as X", "relayed")
    assert await reporter.report(RCPT, verdict) == 0
    assert marks == [660]
    assert log.lines[-1].endswith("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)")
    reporter, log, marks = _reporter(queue_dir, flags=2)  # a content filter's request
    assert await reporter.report(RCPT, verdict) == 0
    assert marks == []


async def test_notify_success_writes_a_trace_record_unless_forwarded(queue_dir: Path) -> None:
    trace = FakeService("trace", "delivery_status_protocol")
    servers = await _start(queue_dir, trace)
    reporter, _, marks = _reporter(queue_dir)
    asked = NativeRecipient(RCPT.orig_addr, RCPT.address, RCPT.offset, RCPT.dsn_orcpt, 2)
    verdict = _status(DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok", "relayed")
    assert await reporter.report(asked, verdict) == 0
    (request,) = trace.requests
    assert (
        b"action\x00relayed\x00reason\x00delivery via " + RELAY.encode() + b": 250 2.0.0 Ok\x00"
        in (request)
    )
    forwarded = _status(DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok", ACTION_FORWARDED)
    assert await reporter.report(asked, forwarded) == 0
    assert len(trace.requests) == 1  # the next hop sends the success notice
    assert marks == [660, 660]
    for server in servers:
        server.close()


async def test_trace_failure_turns_a_success_into_a_deferral(queue_dir: Path) -> None:
    defer = FakeService("defer", "delivery_status_protocol")
    servers = await _start(queue_dir, defer)  # no trace service
    reporter, log, marks = _reporter(queue_dir)
    asked = NativeRecipient(RCPT.orig_addr, RCPT.address, RCPT.offset, RCPT.dsn_orcpt, 2)
    verdict = _status(DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok", "relayed")
    assert await reporter.report(asked, verdict) == -1
    assert marks == []
    assert log.lines[-1].endswith("status=deferred (2B84B2204F3: trace service failed)")
    for server in servers:
        server.close()


async def test_address_probe_updates_verify8(queue_dir: Path) -> None:
    verify = FakeService("verify", "address_verification_prrotocol")
    servers = await _start(queue_dir, verify)
    reporter, log, marks = _reporter(queue_dir, flags=259)
    probe = NativeRecipient("", "probe@real.test", 700, "rfc822;probe@real.test", 0)
    verdict = RecipientStatus(
        "probe@real.test", DeliveryStatus.SENT, "2.1.5", "250 2.1.5 Ok", relay=RELAY
    )
    assert await reporter.report(probe, verdict) == 0
    assert verify.requests == [
        b"request\x00update\x00address\x00probe@real.test\x00recipient_status\x000\x00"
        b"reason\x00250 2.1.5 Ok\x00\x00"
    ]
    assert marks == [700]
    assert log.lines[-1].endswith("status=deliverable (250 2.1.5 Ok)")
    reporter, log, marks = _reporter(queue_dir, flags=259, verify_negative_cache=False)
    refused = RecipientStatus("probe@real.test", DeliveryStatus.BOUNCED, "5.1.1", "no", relay=RELAY)
    assert await reporter.report(probe, refused) == 0
    assert len(verify.requests) == 1
    assert log.lines[-1].endswith("status=undeliverable-but-not-cached (no)")
    for server in servers:
        server.close()
