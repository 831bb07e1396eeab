"""``sendmail -bv``: address verification as Postfix's. No message is read; an address probe
is queued (its envelope says so), the queue delivers it only as far as RCPT TO, and one
report goes to the sender with each recipient's verdict ("deliverable" or "undeliverable",
as Postfix's trace service words them). Against aiosmtpd accepting one recipient and
refusing the other at RCPT: the report arrives, and no DATA of the probe reached the server.
"""

from __future__ import annotations

import email
import io
from email.message import Message
from pathlib import Path

import pytest

from mailcarrier.cli import run
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.log import MemoryLog
from mailcarrier.queue.qfile import MessageClass, parse_envelope
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import open_spool
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import queue_settings

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")


def _opts(queue: Path, relayhost: str = "[127.0.0.1]:9") -> list[str]:
    return [
        *("-o", f"queue_directory={queue}", "-o", "myorigin=example.org"),
        *("-o", "myhostname=mc.example", "-o", f"relayhost={relayhost}"),
    ]


def _run(args: list[str], stdin: io.BytesIO | None = None) -> tuple[int, str]:
    err = io.StringIO()
    code = run(args, stdin=stdin or io.BytesIO(), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def _parts(content: bytes) -> list[Message]:
    report = email.message_from_bytes(content)
    parts = report.get_payload()
    assert isinstance(parts, list)
    return [part for part in parts if isinstance(part, Message)]


def test_bv_queues_a_probe_and_reads_no_message(tmp_path: Path) -> None:
    stdin = io.BytesIO(b"Subject: never read\n\nbody\n")
    args = ["sendmail", "-bv", "-f", "s@example.org", "ok@example.net, Bad <bad@example.net>"]
    assert _run([*_opts(tmp_path), *args], stdin) == (0, "")
    assert stdin.tell() == 0  # standard input was left alone
    [path] = (tmp_path / "incoming").iterdir()
    data = path.read_bytes()
    env = parse_envelope(data)
    assert env.probe and b"\ntrace 512\n" in data  # Postfix's DEL_REQ_FLAG_USR_VRFY
    assert [r.address for r in env.recipients] == ["ok@example.net", "bad@example.net"]
    out = io.StringIO()
    assert run([*_opts(tmp_path), "queue", "show", "--envelope", env.queue_id], stdout=out) == 0
    assert "\ntrace_flags: 512 (address probe: sendmail -bv)\n" in out.getvalue()
    content = data[env.content_offset :]
    # Postfix's probe header, after the Date: and Message-Id: that submission adds.
    assert content.startswith(b"Date: ")
    assert f"\nMessage-Id: <{env.queue_id}@mc.example>\n".encode() in content
    assert content.endswith(
        b"\nFrom: s@example.org\nSubject: probe\nTo:\tok@example.net,\n\tbad@example.net\n"
    )


async def test_bv_report_tells_the_sender_what_would_happen(tmp_path: Path) -> None:
    handler = RecordingHandler(extra_keywords=PLAIN, reject={"bad": "550 5.1.1 no such user"})
    server = AiosmtpdServer(handler).start()
    try:
        args = ["sendmail", "-bv", "-f", "s@example.org", "ok@example.net", "bad@example.net"]
        assert _run([*_opts(tmp_path, server.nexthop), *args]) == (0, "")
        cfg = queue_settings(tmp_path, relayhost=server.nexthop)
        log = MemoryLog()
        spool = open_spool(cfg, log=log)
        await QueueManager(cfg, spool, DeliveryAgent(cfg, log=log), log=log).run_once()
        # The only message the server got (DATA) is the report, from <> to the sender: the
        # probe itself went as far as RCPT TO.
        [report] = server.messages
    finally:
        server.stop()
    assert (report.mail_from, report.rcpt_tos) == ("<>", ["s@example.org"])
    text, status, headers = _parts(report.content)
    message = email.message_from_bytes(report.content)
    assert message["Subject"] == "Mail Delivery Status Report"
    human = text.get_payload(decode=True)
    assert isinstance(human, bytes)
    assert human.replace(b"\r\n", b"\n").endswith(
        b"<ok@example.net>: deliverable: 250 2.1.5 Ok\n"
        b"<bad@example.net>: undeliverable: host 127.0.0.1[127.0.0.1] said: 550 5.1.1 no such"
        b" user (in reply to RCPT TO command)\n"
    )
    fields = status.as_string().replace("\r\n", "\n")
    ok = "Final-Recipient: rfc822; ok@example.net\nOriginal-Recipient: rfc822;ok@example.net\n"
    assert ok + "Action: deliverable\nStatus: 2.1.5\n" in fields
    bad = "Final-Recipient: rfc822; bad@example.net\nOriginal-Recipient: rfc822;bad@example.net\n"
    assert bad + "Action: undeliverable\nStatus: 5.1.1\n" in fields
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: probe" in headers.as_string()
    lines = log.lines
    assert any("to=<ok@example.net>" in line and "status=deliverable" in line for line in lines)
    assert any("to=<bad@example.net>" in line and "status=undeliverable" in line for line in lines)
    assert any("sender delivery status notification" in line for line in lines)
    assert spool.ids("incoming") == spool.ids("deferred") == spool.ids("active") == []


async def test_a_deferred_recipient_is_reported_at_once(tmp_path: Path) -> None:
    """Every verdict of a probe is final (Postfix's trace_append marks the recipient done):
    a server that cannot be reached gives "undeliverable" now, not a retry later."""
    assert (
        _run([*_opts(tmp_path), "sendmail", "-bv", "-f", "s@example.org", "a@example.net"])[0] == 0
    )
    cfg = queue_settings(tmp_path, relayhost="[127.0.0.1]:9")
    log = MemoryLog()
    spool = open_spool(cfg, log=log)
    # The probe is removed; the report to the sender waits in deferred/ (the same server).
    await QueueManager(cfg, spool, DeliveryAgent(cfg, log=log), log=log).run_once()
    assert spool.ids("active") == []
    [report_id] = spool.ids("deferred")
    data = (tmp_path / "deferred" / report_id).read_bytes()
    env = parse_envelope(data)
    assert env.message_class is MessageClass.VERIFY and env.sender == ""
    assert [r.address for r in env.recipients] == ["s@example.org"]
    assert b"<a@example.net>: undeliverable: connect to 127.0.0.1[127.0.0.1]:9" in data
    assert b"Action: undeliverable\nStatus: 4.4.1" in data


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["-t"], "-t option cannot be used with -bv"),
        (["-N", "success"], "-N option cannot be used with -bv"),
        (["-R", "full"], "-R option cannot be used with -bv"),
    ],
)
def test_bv_refuses_what_postfix_refuses(tmp_path: Path, flags: list[str], line: str) -> None:
    code, err = _run([*_opts(tmp_path), "sendmail", "-bv", *flags, "a@example.net"])
    assert (code, err) == (64, f"mailcarrier: fatal: {line}\n")
    assert not (tmp_path / "incoming").exists()


@pytest.mark.parametrize(
    ("notify_classes", "report_to"),
    [("resource, software", None), ("2bounce", "postmaster@example.org")],
)
async def test_a_probe_from_the_null_sender(
    tmp_path: Path, notify_classes: str, report_to: str | None
) -> None:
    """As Postfix's trace service: the report of a probe from <> goes to the postmaster (from
    double-bounce) only with 2bounce in notify_classes; otherwise none is sent."""
    args = ["sendmail", "-bv", "-f", "", "a@example.net"]
    assert _run([*_opts(tmp_path), *args])[0] == 0
    cfg = queue_settings(tmp_path, relayhost="[127.0.0.1]:9", notify_classes=notify_classes)
    log = MemoryLog()
    spool = open_spool(cfg, log=log)
    await QueueManager(cfg, spool, DeliveryAgent(cfg, log=log), log=log).run_once()
    reports = [
        parse_envelope((tmp_path / "deferred" / i).read_bytes()) for i in spool.ids("deferred")
    ]
    if report_to is None:
        assert reports == []
        assert any(
            "not sending the probe report of a single-bounce message" in line for line in log.lines
        )
    else:
        [report] = reports
        assert report.message_class is MessageClass.VERIFY
        assert (report.sender, [r.address for r in report.recipients]) == (
            "double-bounce@example.org",
            [report_to],
        )
    assert spool.ids("incoming") == spool.ids("active") == []
