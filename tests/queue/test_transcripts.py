"""Postmaster transcript notices (notify_classes protocol/data, error_notice_recipient)."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from mailcarrier.delivery.transcript import (
    PROTOCOL,
    SessionTranscript,
    failure_code_class,
    recorded_classes,
)
from mailcarrier.log import MemoryLog
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.qfile import MessageClass
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.transcripts import TranscriptNotifier, render_transcript
from tests.support.clock import FakeClock
from tests.support.settings import queue_settings

LINES = (
    "In: 220 mx.example ESMTP",
    "Out: EHLO mc.example",
    "In: 250-mx.example",
    "In: 250 PIPELINING",
    "Out: MAIL FROM:<s@example.org>",
    "In: 501 5.5.4 Syntax error in parameters " + "x" * 120,
    "Out: QUIT",
)


def _transcript(**over: object) -> SessionTranscript:
    base: dict[str, object] = {
        "peer": "mx.example[192.0.2.1]:25",
        "lmtp": False,
        "errors": frozenset({PROTOCOL}),
        "lines": LINES,
        "queue_id": "QID1",
    }
    base.update(over)
    return SessionTranscript(**base)  # type: ignore[arg-type]


def test_failure_codes_that_count_as_protocol_errors() -> None:
    # Postfix's smtp_check_code(): not 4xx/5xx, 555, and the 50x syntax replies.
    assert [failure_code_class(c) for c in (250, 354, 421, 450, 500, 501, 509, 510, 550, 555)] == [
        "protocol",
        "protocol",
        "",
        "",
        "protocol",
        "protocol",
        "protocol",
        "",
        "",
        "protocol",
    ]
    assert recorded_classes(("resource", "software")) == frozenset()
    assert recorded_classes(("Protocol", "data", "bounce")) == frozenset({"protocol", "data"})


def test_render_wraps_and_indents_untrusted_text() -> None:
    subject, body = render_transcript(_transcript(lines=(*LINES, "In: 550 bad\x07bell")), "Postfix")
    assert subject == "Postfix SMTP client: errors from mx.example[192.0.2.1]:25"
    assert body[:4] == [
        "Unexpected response from mx.example[192.0.2.1]:25.",
        "",
        "Transcript of session follows.",
        "",
    ]
    assert all(len(line) <= 79 for line in body)
    transcript = [line for line in body[4:-2] if line]
    assert all(line.startswith(" ") for line in transcript)  # never at the start of a line
    assert " In: 550 bad?bell" in body
    assert body[-1] == "For other details, see the local mail logfile"
    lmtp_subject, _ = render_transcript(_transcript(lmtp=True), "Postfix")
    assert lmtp_subject.startswith("Postfix LMTP client: errors from ")


def test_notifier_queues_a_postmaster_message_only_for_wanted_classes(tmp_path: Path) -> None:
    clock = FakeClock()
    log = MemoryLog()
    spool = Spool(tmp_path, clock=clock, log=log).ensure()
    quiet = TranscriptNotifier(spool, QueueParams(queue_settings(tmp_path)), log, clock)
    quiet(_transcript())  # default notify_classes (resource, software): nothing
    assert spool.ids("incoming") == []

    cfg = queue_settings(
        tmp_path, notify_classes="protocol", error_notice_recipient="hostmaster@example.org"
    )
    TranscriptNotifier(spool, QueueParams(cfg), log, clock)(_transcript())
    (qid,) = spool.ids("incoming")
    message = spool.read("incoming", qid)
    env = message.envelope
    assert env.sender == "double-bounce@example.org"
    assert [r.address for r in env.recipients] == ["hostmaster@example.org"]
    assert env.message_class is MessageClass.POSTMASTER  # a failed notice is dropped
    with open(message.path, "rb") as f:
        f.seek(env.content_offset)
        parsed = email.message_from_bytes(f.read(env.size), policy=policy.default)
    assert parsed["Subject"] == "Postfix SMTP client: errors from mx.example[192.0.2.1]:25"
    assert parsed["To"].startswith("hostmaster@example.org")
    assert " Out: MAIL FROM:<s@example.org>" in parsed.get_content()
    assert f"QID1: postmaster transcript notification: {qid}" in log.lines


async def _run_with_501(tmp_path: Path, **over: str) -> tuple[list[object], MemoryLog]:
    from mailcarrier import api
    from mailcarrier.queue.scheduler import QueueManager
    from mailcarrier.queue.spool import open_spool
    from mailcarrier.queue.workers import make_agent
    from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

    handler = RecordingHandler(
        extra_keywords=("PIPELINING",), reject={"bad": "501 5.1.3 Bad recipient address syntax"}
    )
    srv = AiosmtpdServer(handler).start()
    try:
        cfg = queue_settings(tmp_path, relayhost=srv.nexthop, **over)
        await api.submit(
            b"Subject: t\n\nbody\n",
            sender="s@example.org",
            recipients=["bad@example.net", "ok@example.net"],
            config=cfg,
        )
        log = MemoryLog()
        spool = open_spool(cfg, log=log)
        notifier = TranscriptNotifier(spool, QueueParams(cfg), log)
        agent = make_agent(cfg, log, notifier)
        await QueueManager(cfg, spool, agent, log=log).run_once()
        if agent.cache is not None:
            await agent.cache.close_all()
        return list(srv.messages), log
    finally:
        srv.stop()


async def test_a_501_sends_the_postmaster_a_transcript(tmp_path: Path) -> None:
    messages, log = await _run_with_501(tmp_path, notify_classes="protocol, bounce")
    to_postmaster = [
        m
        for m in messages
        if m.rcpt_tos == ["postmaster@example.org"]  # type: ignore[attr-defined]
        and b"SMTP client: errors from" in m.content  # type: ignore[attr-defined]
    ]
    assert len(to_postmaster) == 1
    notice = to_postmaster[0]
    assert notice.mail_from == "double-bounce@example.org"  # type: ignore[attr-defined]
    parsed = email.message_from_bytes(notice.content, policy=policy.default)  # type: ignore[attr-defined]
    text = parsed.get_content()
    assert " Out: RCPT TO:<bad@example.net>" in text
    assert " In: 501 5.1.3 Bad recipient address syntax" in text
    assert any("postmaster transcript notification" in line for line in log.lines)


async def test_no_transcript_unless_the_class_is_listed(tmp_path: Path) -> None:
    messages, log = await _run_with_501(tmp_path)  # default: resource, software
    assert not any(b"SMTP client: errors from" in m.content for m in messages)  # type: ignore[attr-defined]
    assert not any("transcript" in line for line in log.lines)


def test_auth_lines_never_carry_credentials() -> None:
    from mailcarrier.protocol.commands import Auth, AuthResponse, Ehlo
    from mailcarrier.transport.history import record_out

    history: list[str] = []
    record_out(history, Ehlo("mc.example"), b"EHLO mc.example\r\n")
    record_out(
        history, Auth("PLAIN", "AGFsaWNlAHNlY3JldA=="), b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
    )
    record_out(history, AuthResponse("c2VjcmV0"), b"c2VjcmV0\r\n")
    assert history == ["Out: EHLO mc.example", "Out: AUTH PLAIN ...", "Out: ..."]


def test_hostile_peer_and_names_cannot_break_the_headers(tmp_path: Path) -> None:
    """The peer's name comes from DNS, myhostname and mail_name from main.cf (which refuses
    only CR, LF and NUL): none of them can end a header or start a transcript line."""
    clock = FakeClock()
    spool = Spool(tmp_path, clock=clock, log=MemoryLog()).ensure()
    cfg = queue_settings(tmp_path, notify_classes="protocol", myhostname="mc\x1b.example")
    cfg = cfg.with_overrides({"mail_name": "Post\x85fix"})
    peer = "mx\r\nBcc: x@y\x00.example[192.0.2.1]:25"
    lines = ("In: 220 ok\r\x1b[2J", "In: 550 5.1.1 \x00\x7f é \\xff")
    TranscriptNotifier(spool, QueueParams(cfg), MemoryLog(), clock)(
        _transcript(peer=peer, lines=lines)
    )
    (qid,) = spool.ids("incoming")
    message = spool.read("incoming", qid)
    with open(message.path, "rb") as f:
        f.seek(message.envelope.content_offset)
        data = f.read(message.envelope.size)
    parsed = email.message_from_bytes(data, policy=policy.compat32)
    assert parsed.keys() == ["From", "To", "Subject", "Auto-Submitted", "Date", "Message-Id"]
    assert parsed["From"] == "MAILER-DAEMON@mc?.example (Mail Delivery System)"
    assert (
        parsed["Subject"] == "Post?fix SMTP client: errors from mx??Bcc: x@y?.example[192.0.2.1]:25"
    )
    assert parsed["Message-Id"] == f"<{qid}@mc?.example>"
    body = data.decode("utf-8").split("\n\n", 1)[1].splitlines()
    assert body[0] == "Unexpected response from mx??Bcc: x@y?.example[192.0.2.1]:25."
    assert body[4:6] == [" In: 220 ok??[2J", " In: 550 5.1.1 ?? é \\xff"]


def test_transcript_smtputf8_follows_the_notify_class(tmp_path: Path) -> None:
    """Postfix posts transcripts in the "notify" class of smtputf8_autodetect_classes: a
    UTF-8 error_notice_recipient asks for SMTPUTF8 only when that class is listed."""
    flags = []
    for i, classes in enumerate(("sendmail, verify", "notify")):
        spool = Spool(tmp_path / str(i), clock=FakeClock(), log=MemoryLog()).ensure()
        cfg = queue_settings(
            tmp_path,
            notify_classes="protocol",
            error_notice_recipient="z\u00f6e@example.org",
            smtputf8_autodetect_classes=classes,
        )
        TranscriptNotifier(spool, QueueParams(cfg), MemoryLog(), FakeClock())(_transcript())
        (qid,) = spool.ids("incoming")
        envelope = spool.read("incoming", qid).envelope
        flags.append((envelope.smtputf8, envelope.encoding))
    assert flags == [(False, "8bit"), (True, "8bit")]
