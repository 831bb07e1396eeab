"""The log sinks of log.py make every line printable at their output, as Postfix's
msg_output.c does: whatever a peer or a user put in the text, one call is one line, with no
control character in it. (Line formats: tests/delivery/test_log_lines.py.)"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.errors import RemoteProtocolError
from mailcarrier.events import Event, delivery_event
from mailcarrier.log import (
    HandlerLog,
    LoggerLog,
    MemoryLog,
    NullLog,
    PrintableLog,
    delivery_line,
    log_event,
    postlog_payload,
    printable_sink,
    severity_prefix,
)
from mailcarrier.loghandlers import (
    EventFormatter,
    LineHandler,
    MaillogHandler,
    PostfixFormatter,
    stream_log,
    syslog_log,
)
from mailcarrier.protocol.reply import ReplyParser
from mailcarrier.status import Delays, DeliveryStatus, RecipientStatus

FORGED = " Jan  1 00:00:00 h postfix/smtp[1]: X"
HOSTILE = "550 5.1.1 <a@x> no\r\x1b[2J\x00\x7f é \\xff \x85 \u2028" + FORGED
CLEAN = "550 5.1.1 <a@x> no??[2J?? é \\xff ? ?" + FORGED


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def _stream(
    out: io.StringIO | io.TextIOWrapper, *, batched: bool = False, utf8: bool = True
) -> HandlerLog:
    return stream_log(
        out, hostname="relay.example", clock=lambda: 0, pid=7, batched=batched, utf8=utf8
    )


def test_stream_log_replaces_control_characters(utc: None) -> None:
    out = io.StringIO()
    sink = _stream(out)
    sink.info("smtp", f"Q1: to=<b@example.net>, status=bounced ({HOSTILE})")
    sink.warning("smtp", "bad\nline")
    assert out.getvalue() == (
        f"Jan  1 00:00:00 relay postfix/smtp[7]: Q1: to=<b@example.net>, status=bounced ({CLEAN})\n"
        "Jan  1 00:00:00 relay postfix/smtp[7]: warning: bad?line\n"
    )


def test_stream_log_ascii_only_without_smtputf8(utc: None) -> None:
    out = io.StringIO()
    _stream(out, utf8=False).info("smtp", "Q1: naïve \x1b")
    assert out.getvalue() == "Jan  1 00:00:00 relay postfix/smtp[7]: Q1: na??ve ?\n"


def test_stream_log_prefix_values_are_cleaned(utc: None) -> None:
    out = io.StringIO()
    sink = stream_log(out, hostname="h\nx", syslog_name="mail\x1bcarrier", clock=lambda: 0, pid=1)
    sink.info("sm\rtp", "text")
    assert out.getvalue() == "Jan  1 00:00:00 h?x mail?carrier/sm?tp[1]: text\n"


def test_stream_log_to_a_strict_utf8_file(tmp_path: Path, utc: None) -> None:
    """Bytes that were not UTF-8 (argv, file names: lone surrogates) cannot make the write
    of maillog_file fail: each is one replaced byte."""
    path = tmp_path / "maillog"
    with open(path, "a", encoding="utf-8") as f:
        _stream(f).info("smtp", "Q1: to=<b\udcff\udcfe@example.net>")
    assert path.read_bytes() == b"Jan  1 00:00:00 relay postfix/smtp[7]: Q1: to=<b??@example.net>\n"


async def test_buffered_stream_log_replaces_too(utc: None) -> None:
    out = io.StringIO()
    sink = _stream(out, batched=True)
    sink.info("qmgr", "Q1: from=<a\r\nb@x>")
    await asyncio.sleep(0)
    assert out.getvalue() == "Jan  1 00:00:00 relay postfix/qmgr[7]: Q1: from=<a??b@x>\n"


class _FakeSyslog:
    LOG_PID = 1
    LOG_INFO = 6
    LOG_WARNING = 4

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def openlog(self, ident: str, option: int, facility: int) -> None:
        self.calls.append(("openlog", ident))

    def syslog(self, priority: int, text: str) -> None:
        if "\x00" in text:  # as the real module does
            raise ValueError("embedded null character")
        self.calls.append(("syslog", priority, text))


def test_syslog_log_replaces_control_characters() -> None:
    fake = _FakeSyslog()
    sink = syslog_log("post\nfix", "mail", module=fake)
    sink.info("smtp", f"Q1: ({HOSTILE})")
    sink.warning("smtp", "a\x00b")
    assert fake.calls == [
        ("openlog", "post?fix/smtp"),
        ("syslog", 6, f"Q1: ({CLEAN})"),
        ("syslog", 4, "warning: a?b"),
    ]


def test_syslog_priorities_and_prefixes_follow_the_severity() -> None:
    fake = _FakeSyslog()
    fake.LOG_ERR, fake.LOG_CRIT = 3, 2  # type: ignore[attr-defined]
    sink = syslog_log("postfix", "mail", module=fake)
    sink.fatal("smtp", "no way")
    assert fake.calls[-1] == ("syslog", 2, "fatal: no way")


def test_postlog_payload_is_what_msg_logger_sends(utc: None) -> None:
    # Real bytes from Postfix 3.7.11's smtp(8) to postlogd (the specification, 4.4).
    text = (
        "841992203E2: to=<carl@real.test>, relay=127.0.0.1[127.0.0.1]:2525, delay=0.03, "
        "delays=0/0.03/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
    )
    when = time.mktime((2026, 12, 2, 15, 10, 10, 0, 0, 0))
    assert postlog_payload(when, "mta.test.local", "postfix/smtp", 20319, text) == (
        b"Dec 02 15:10:10 mta postfix/smtp[20319]: " + text.encode()
    )


def test_postlog_payload_cuts_the_text_at_2000_bytes(utc: None) -> None:
    prefix = b"Jan 01 00:00:00 h t[1]: "
    assert postlog_payload(0, "h", "t", 1, "x" * 2001) == prefix + b"x" * 2000
    # A cut never leaves half a UTF-8 character.
    assert postlog_payload(0, "h", "t", 1, "x" * 1999 + "é") == prefix + b"x" * 1999


def test_severity_prefixes() -> None:
    import logging

    levels = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
    assert [severity_prefix(level) for level in levels] == ["", "warning: ", "error: ", "fatal: "]


def test_memory_log_replaces_control_characters() -> None:
    sink = MemoryLog()
    sink.info("smtp", HOSTILE)
    assert sink.lines == [CLEAN]


class _Foreign:
    """A sink of a caller's own: it writes what it gets."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, process: str, text: str) -> None:
        self.lines.append(f"{process}: {text}")

    def warning(self, process: str, text: str) -> None:
        self.lines.append(f"{process}: warning: {text}")


def test_printable_sink_wraps_only_foreign_sinks() -> None:
    for ours in (NullLog(), MemoryLog(), stream_log(io.StringIO()), PrintableLog(NullLog())):
        assert printable_sink(ours) is ours
    assert isinstance(printable_sink(None), LoggerLog)  # the API's default: stdlib logging
    foreign = _Foreign()
    wrapped = printable_sink(foreign)
    assert isinstance(wrapped, PrintableLog)
    wrapped.info("smtp", HOSTILE)
    wrapped.warning("sm\ntp", "x\ty")
    assert foreign.lines == [f"smtp: {CLEAN}", "sm?tp: warning: x?y"]
    ascii_only = printable_sink(_Foreign(), utf8=False)
    assert isinstance(ascii_only, PrintableLog)
    ascii_only.info("smtp", "é")
    assert isinstance(ascii_only.sink, _Foreign) and ascii_only.sink.lines == ["smtp: ??"]


def _diagnostic(data: bytes) -> str:
    """What the agent puts in a diagnostic for this reply: the text Postfix quotes after
    "host X said:", or the protocol error."""
    parser = ReplyParser()
    parser.feed(b"550 " + data + b"\r\n")
    try:
        reply = parser.next_reply()
    except RemoteProtocolError as exc:
        return f"remote protocol error from h[192.0.2.1] while sending RCPT TO: {exc}"
    assert reply is not None
    return f"host h[192.0.2.1] said: {reply.text} (in reply to RCPT TO command)"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), utf8=st.booleans())
def test_any_reply_bytes_make_one_clean_log_line(data: bytes, utf8: bool) -> None:
    status = RecipientStatus(
        "b@example.net",
        DeliveryStatus.BOUNCED,
        "5.1.1",
        _diagnostic(data),
        "h[192.0.2.1]:25",
        Delays(0, 0, 0, 0),
    )
    out = io.StringIO()
    stream_log(out, hostname="relay", clock=lambda: 0, pid=7, utf8=utf8).info(
        "smtp", delivery_line("Q1", status)
    )
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    line = text[:-1]
    assert len(line.splitlines()) == 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in line)
    assert utf8 or line.isascii()
    assert ": Q1: to=<b@example.net>, relay=h[192.0.2.1]:25, delay=0, " in line
    line.encode("utf-8")  # strict


# --- event records beside the lines (events.py) -----------------------------------------
def _event() -> Event:
    status = RecipientStatus("a@x", DeliveryStatus.SENT, "2.0.0", HOSTILE, "h[192.0.2.1]:25")
    return delivery_event("Q1", status, 1)


def test_handler_log_writes_the_line_and_the_record_at_one_time(tmp_path: Path, utc: None) -> None:
    lines, records = io.StringIO(), tmp_path / "events.jsonl"
    log = HandlerLog(
        [LineHandler(lines, PostfixFormatter("mc.example", pid=7))],
        clock=lambda: 86400.25,
        event_handlers=[MaillogHandler(str(records), EventFormatter("n1", "mc.example", pid=7))],
    )
    log_event(log, "smtp", "Q1: the line\r", _event())
    log_event(log, "postqueue", "", _event())  # a record without a line
    log.close()
    assert lines.getvalue() == "Jan  2 00:00:00 mc postfix/smtp[7]: Q1: the line?\n"
    first, second = (json.loads(text) for text in records.read_text().splitlines())
    assert (first["time"], first["process"], first["pid"]) == (
        "1970-01-02T00:00:00.250000Z",
        "smtp",
        7,
    )
    assert first["diagnostic"] == HOSTILE  # kept as it came: JSON escapes it
    assert second["process"] == "postqueue"


def test_log_event_gives_a_plain_sink_the_line_only() -> None:
    """A caller's sink without event() (a `LineSink`) gets the lines through
    printable_sink's wrapper; the records are dropped there, the one place that may."""
    seen: list[tuple[str, str]] = []

    class Plain:
        def info(self, process: str, text: str) -> None:
            seen.append((process, text))

        def warning(self, process: str, text: str) -> None:
            raise AssertionError(text)

    log_event(printable_sink(Plain()), "smtp", "Q1: line", _event())
    log_event(printable_sink(Plain()), "postqueue", "", _event())
    assert seen == [("smtp", "Q1: line")]
    memory = MemoryLog()
    log_event(printable_sink(memory), "smtp", "Q1: line\n", _event())
    log_event(NullLog(), "smtp", "Q1: line", _event())
    assert memory.lines == ["Q1: line?"] and [p for p, _ in memory.events] == ["smtp"]
