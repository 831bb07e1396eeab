"""``sendmail -bs``: SMTP on standard input and output, as Postfix's sendmail -bs (smtpd in
stand-alone mode). A real smtplib client drives the command over two pipes; scripted
sessions check the exact replies to hostile input: over-long lines, bad addresses and
parameters, pipelining, a message too big, too many errors, and an end of input inside DATA,
which queues nothing. Each accepted message is in the queue with exact bytes."""

from __future__ import annotations

import io
import os
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from mailcarrier.cli import run
from mailcarrier.queue.qfile import parse_envelope

MAILCARRIER = [sys.executable, "-c", "from mailcarrier.cli import main; main()"]


def _opts(queue: Path, *more: str) -> list[str]:
    base = ["-o", f"queue_directory={queue}", "-o", "myorigin=example.org"]
    return [*base, "-o", "myhostname=mc.example", *more]


def _queued(queue: Path) -> list[tuple[str, bytes, bytes]]:
    """(queue ID, envelope, content) of each message in incoming/."""
    out = []
    incoming = queue / "incoming"
    for name in sorted(os.listdir(incoming)) if incoming.exists() else []:
        data = (incoming / name).read_bytes()
        env = parse_envelope(data)
        out.append((name, data[: env.content_offset], data[env.content_offset :]))
    return out


class _CountingBytes(io.BytesIO):
    writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


def _session(queue: Path, script: bytes, *more: str) -> tuple[int, bytes, str, int]:
    """Run ``sendmail -bs`` on `script`: exit code, the replies, stderr, writes of them."""
    raw = _CountingBytes()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    err = io.StringIO()
    code = run(
        [*_opts(queue, *more), "sendmail", "-bs"], stdin=io.BytesIO(script), stdout=out, stderr=err
    )
    return code, raw.getvalue(), err.getvalue(), raw.writes


class _PipeSocket:
    """What smtplib needs of a socket, on the two pipes of a child process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._in: IO[bytes] = proc.stdin
        self._out: IO[bytes] = proc.stdout

    def sendall(self, data: bytes) -> None:
        self._in.write(data)
        self._in.flush()

    def makefile(self, mode: str) -> IO[bytes]:
        assert mode == "rb"
        return self._out

    def close(self) -> None:
        self._in.close()


def test_smtplib_over_pipes_queues_the_exact_message(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*MAILCARRIER, *_opts(tmp_path), "sendmail", "-bs"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client = smtplib.SMTP()
    client.sock = _PipeSocket(proc)  # type: ignore[assignment]
    assert client.getreply() == (220, b"mc.example ESMTP Postfix")
    code, _features = client.ehlo("client.example")
    assert code == 250 and client.has_extn("pipelining") and client.has_extn("dsn")
    message = (
        b"From: Ann <ann@example.org>\r\nTo: bob@example.net\r\nSubject: pipes\r\n"
        b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n"
        b".leading dot\r\nplain line\r\n"
    )
    refused = client.sendmail(
        "ann@example.org",
        ["bob@example.net", "carol@example.net"],
        message,
        rcpt_options=["NOTIFY=FAILURE"],
    )
    assert refused == {}
    assert client.quit() == (221, b"2.0.0 Bye")
    assert proc.stderr is not None and proc.stdout is not None
    err = proc.stderr.read()
    assert (proc.wait(timeout=60), err) == (0, b"")
    proc.stdout.close()
    proc.stderr.close()
    [(_queue_id, envelope, content)] = _queued(tmp_path)
    # Dot-stuffing undone, CRLF stored as the queue's LF, nothing added: the header had
    # From:, Date: and Message-ID: already.
    assert content == message.replace(b"\r\n", b"\n")
    env = parse_envelope(envelope + content)
    assert env.sender == "ann@example.org"
    assert [r.address for r in env.recipients] == ["bob@example.net", "carol@example.net"]
    assert [r.dsn_notify.wire() for r in env.recipients] == ["FAILURE", "FAILURE"]


def test_pipelined_commands_get_their_replies_in_one_write(tmp_path: Path) -> None:
    script = (
        b"EHLO c.example\r\nMAIL FROM:<a@example.org> SIZE=40 BODY=8BITMIME\r\n"
        b"RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net> NOTIFY=SUCCESS,DELAY "
        b"ORCPT=rfc822;C+2Bx@example.net\r\nDATA\r\nSubject: s\r\n\r\n..\r\nx\r\n.\r\nQUIT\r\n"
    )
    code, replies, err, writes = _session(tmp_path, script)
    [(queue_id, envelope, content)] = _queued(tmp_path)
    assert replies == (
        b"220 mc.example ESMTP Postfix\r\n"
        b"250-mc.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n"
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
        + f"250 2.0.0 Ok: queued as {queue_id}\r\n".encode()
        + b"221 2.0.0 Bye\r\n"
    )
    # The greeting goes out before the first read; the batch came in one read, and its
    # replies go back in one write (RFC 2920 3.1).
    assert (code, err, writes) == (0, "", 2)
    env = parse_envelope(envelope + content)
    assert env.encoding == "8bit"  # BODY=8BITMIME, though the content is ASCII
    assert [(r.dsn_notify.wire(), r.dsn_orcpt) for r in env.recipients] == [
        ("", "rfc822;b@example.net"),
        ("SUCCESS,DELAY", "rfc822;C+x@example.net"),
    ]
    assert content.endswith(b"Subject: s\n\n.\nx\n")


def test_hostile_commands_get_one_reply_each_and_the_session_goes_on(tmp_path: Path) -> None:
    script = b"".join(
        [
            b"HELO\r\n",
            b"EHLO " + b"x" * 3000 + b"\r\n",
            b"MAIL FROM:<a b@example.org>\r\n",
            b"MAIL FROM:a@example.org FROB=1\r\n",
            b"RCPT TO:<b@example.net>\r\n",
            b"MAIL FROM:<>\r\n",
            b"MAIL FROM:<x@example.org>\r\n",
            b"RCPT TO:<>\r\n",
            b"RCPT TO:<r\xc3\xa9@example.net>\r\n",
            b"RCPT TO:<b@example.net> NOTIFY=SOMETIMES\r\n",
            b"DATA\r\n",
            b"VRFY b@example.net\r\n",
            b"STARTTLS\r\n",
            b"\xff\xfe\r\n",
            b"FROB\r\n",
            b"QUIT\r\n",
        ]
    )
    code, replies, err, _ = _session(tmp_path, script)
    assert replies.decode().split("\r\n")[1:-1] == [
        "501 Syntax: HELO hostname",
        "500 5.5.2 mc.example Error: command too long",
        "501 5.1.7 Bad sender address syntax",
        "555 5.5.4 Unsupported option: FROB=1",
        "503 5.5.1 Error: need MAIL command",
        "250 2.1.0 Ok",
        "503 5.5.1 Error: nested MAIL command",
        "501 5.1.3 Bad recipient address syntax",
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
        "501 5.5.4 Error: Bad NOTIFY parameter syntax",
        "554 5.5.1 Error: no valid recipients",
        "502 5.5.1 VRFY command is disabled",
        "502 5.5.1 Error: command not implemented",
        "500 5.5.2 Error: bad UTF-8 syntax",
        "502 5.5.2 Error: command not recognized",
        "221 2.0.0 Bye",
    ]
    assert (code, err, _queued(tmp_path)) == (0, "", [])


def test_long_data_lines_and_bare_lf_are_kept(tmp_path: Path) -> None:
    body = b"y" * 200_000
    script = (
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
        b"Subject: long\r\nX: bare lf\n\r\n" + body + b"\r\n.\r\nQUIT\r\n"
    )
    code, replies, _, _ = _session(tmp_path, script)
    [(_id, _env, content)] = _queued(tmp_path)
    assert code == 0 and b"250 2.0.0 Ok: queued as" in replies
    assert content.endswith(b"Subject: long\nX: bare lf\n\n" + body + b"\n")


def test_a_message_too_big_is_read_to_its_end_and_refused(tmp_path: Path) -> None:
    script = (
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: big\r\n\r\n"
        + b"z" * 500
        + b"\r\n.\r\nNOOP\r\nQUIT\r\n"
    )
    code, replies, _, _ = _session(tmp_path, script, "-o", "message_size_limit=200")
    assert replies.decode().split("\r\n")[-5:-1] == [
        "354 End data with <CR><LF>.<CR><LF>",
        "552 5.3.4 Error: message file too big",
        "250 2.0.0 Ok",
        "221 2.0.0 Bye",
    ]
    assert (code, _queued(tmp_path)) == (0, [])
    assert os.listdir(tmp_path / "incoming") == []  # no temporary file left either


def test_size_declared_over_the_limit_is_refused_at_mail(tmp_path: Path) -> None:
    script = b"MAIL FROM:<a@example.org> SIZE=1000\r\nQUIT\r\n"
    _, replies, _, _ = _session(tmp_path, script, "-o", "message_size_limit=200")
    assert b"\r\n552 5.3.4 Message size exceeds fixed limit\r\n" in replies


@pytest.mark.parametrize(
    "tail",
    [b"DATA\r\nSubject: cut\r\n\r\nhalf a mess", b"DATA\r\n", b""],
    ids=["inside-data", "after-354", "after-rcpt"],
)
def test_end_of_input_inside_a_transaction_queues_nothing(tmp_path: Path, tail: bytes) -> None:
    script = b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n" + tail
    code, replies, err, _ = _session(tmp_path, script)
    assert not replies.endswith(b"queued")
    assert code == 75
    assert err == (
        "mailcarrier: warning: the SMTP session ended inside a transaction; "
        "its mail was not queued\n"
    )
    assert _queued(tmp_path) == []
    incoming = tmp_path / "incoming"
    assert not incoming.exists() or os.listdir(incoming) == []


def test_end_of_input_between_messages_keeps_what_was_queued(tmp_path: Path) -> None:
    script = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nx\r\n.\r\n"
    code, replies, err, _ = _session(tmp_path, script)
    [(queue_id, _envelope, content)] = _queued(tmp_path)
    assert replies.endswith(f"250 2.0.0 Ok: queued as {queue_id}\r\n".encode())
    assert (code, err, content.endswith(b"\n\nx\n")) == (0, "", True)


def test_too_many_errors_end_the_session(tmp_path: Path) -> None:
    code, replies, _, _ = _session(tmp_path, b"FROB\r\n" * 30)
    lines = replies.decode().split("\r\n")
    assert lines[1:21] == ["502 5.5.2 Error: command not recognized"] * 20
    assert lines[21:] == ["421 4.7.0 mc.example Error: too many errors", ""]
    assert code == 0


def test_bs_takes_no_recipient(tmp_path: Path) -> None:
    err = io.StringIO()
    code = run(
        [*_opts(tmp_path), "sendmail", "-bs", "a@example.net"],
        stdin=io.BytesIO(),
        stdout=io.StringIO(),
        stderr=err,
    )
    assert (code, err.getvalue()) == (
        64,
        "mailcarrier: fatal: stand-alone mode (-bs) takes no recipient\n",
    )
