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
from tests.queue.helpers import FakeClock, settings

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
    quiet = TranscriptNotifier(spool, QueueParams(settings(tmp_path)), log, clock)
    quiet(_transcript())  # default notify_classes (resource, software): nothing
    assert spool.ids("incoming") == []

    cfg = settings(
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
