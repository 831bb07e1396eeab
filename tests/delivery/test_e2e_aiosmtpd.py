"""End to end against real servers: aiosmtpd (content byte for byte) and smtp-sink (100 MB).

aiosmtpd undoes the dot-stuffing, so what it received must equal the message with every line
ending made CRLF and every line longer than smtp_line_length_limit broken with
``<CR><LF><SPACE>`` (content/encoder.py). The expected bytes are written out by hand here,
not computed with the encoder. The large-message test runs ``mailcarrier deliver`` in a
subprocess against Postfix's smtp-sink and compares its peak RSS with a tiny message's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtpd.smtp
import pytest

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.log import MemoryLog
from mailcarrier.notify import Notify
from tests.support.deliver import QUEUE_ID, deliver_request, deliver_to
from tests.support.peers.aiosmtpd_dsn import DsnAiosmtpdServer
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.peers.postfix_sink import SmtpSink

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


# --- content byte for byte --------------------------------------------------------------------

LONG = b"a" * 2500
MESSAGE = (
    b"From: <a@example.org>\n"
    b"To: <b@example.net>\r\n"
    b"Subject: byte for byte\r"
    b"\n"
    b".leading dot\n"
    b"..two leading dots\r\n"
    b".\n"
    b"bare\rcr and \r\nmixed\n\r\n"
    b"trailing spaces   \n"
    b"\ttab\n" + LONG + b"\n"
    b"8bit \xc3\xa9\xff\n"
    b"last line without newline"
)
RECEIVED = (
    b"From: <a@example.org>\r\n"
    b"To: <b@example.net>\r\n"
    b"Subject: byte for byte\r\n"
    b".leading dot\r\n"
    b"..two leading dots\r\n"
    b".\r\n"
    b"bare\r\ncr and \r\nmixed\r\n\r\n"
    b"trailing spaces   \r\n"
    b"\ttab\r\n" + b"a" * 998 + b"\r\n " + b"a" * 997 + b"\r\n " + b"a" * 505 + b"\r\n"
    b"8bit \xc3\xa9\xff\r\n"
    b"last line without newline\r\n"
)


async def test_content_byte_for_byte(smtp_server: AiosmtpdServer) -> None:
    result, _ = await deliver_to(smtp_server, MESSAGE, smtp_line_length_limit="998")
    assert [r.status for r in result.recipients] == [SENT]
    (received,) = smtp_server.messages
    assert received.content == RECEIVED


async def test_breaking_long_lines_is_logged_once_per_request(
    smtp_server: AiosmtpdServer,
) -> None:
    """smtp(8)'s info line (smtp_text_out()), once however many lines were broken."""
    delivery = await deliver_to(smtp_server, MESSAGE + b"\n" + LONG, smtp_line_length_limit="998")
    assert [r.status for r in delivery.result.recipients] == [SENT]
    broken = [line for line in delivery.log.lines if "breaking line" in line]
    assert broken == [f"{QUEUE_ID}: breaking line > 998 bytes with <CR><LF>SPACE"]
    delivery = await deliver_to(smtp_server, b"Subject: x\n\n" + b"a" * 998 + b"\n")
    assert not [line for line in delivery.log.lines if "breaking line" in line]


async def test_line_length_limit_zero_keeps_long_lines(
    smtp_server: AiosmtpdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiosmtpd itself refuses lines over 1001 bytes unless told otherwise.
    monkeypatch.setattr(aiosmtpd.smtp.SMTP, "line_length_limit", 10000)
    body = b"Subject: x\n\n" + LONG + b"\n"
    await deliver_to(smtp_server, body, smtp_line_length_limit="0")
    assert smtp_server.messages[0].content == b"Subject: x\r\n\r\n" + LONG + b"\r\n"


async def test_short_line_length_limit_folds_headers(smtp_server: AiosmtpdServer) -> None:
    subject = b"Subject: " + b"word " * 20  # 109 bytes
    body = subject + b"\n\n" + b"b" * 40 + b"\n" + b"c" * 78 + b"\n" + b"." + b"d" * 79 + b"\n"
    await deliver_to(smtp_server, body, smtp_line_length_limit="78")
    expected = (
        subject[:78]
        + b"\r\n "
        + subject[78:]
        + b"\r\n\r\n"
        + b"b" * 40
        + b"\r\n"
        + b"c" * 78  # exactly at the limit: not broken
        + b"\r\n"
        # The stuffed dot does not count, and aiosmtpd removes it again.
        + b"."
        + b"d" * 77
        + b"\r\n "
        + b"d" * 2
        + b"\r\n"
    )
    assert smtp_server.messages[0].content == expected


@pytest.mark.parametrize("size", [1, 2, 65535, 65536, 65537, 3 * 65536 + 1])
async def test_content_across_chunk_boundaries(smtp_server: AiosmtpdServer, size: int) -> None:
    """Lines that straddle the reader's 64 KiB chunks: CR|LF split, a dot at a boundary."""
    head = b"Subject: chunks\r\n\r\n"
    filler = b"x" * max(0, size - len(head) - 1)
    body = head + filler + b"\r\n.dot\r\nend\r"
    await deliver_to(smtp_server, body)
    assert smtp_server.messages[0].content == head + _broken(filler) + b".dot\r\nend\r\n"


# smtp_line_length_limit's default (Postfix 3.9 and later: 999).
DEFAULT_LIMIT = Settings.defaults().for_transport("smtp").params.line_length_limit


def _broken(line: bytes, limit: int = DEFAULT_LIMIT) -> bytes:
    if not line:
        return b"\r\n"
    pieces = [line[:limit]]
    rest = line[limit:]
    while rest:
        pieces.append(b" " + rest[: limit - 1])
        rest = rest[limit - 1 :]
    return b"\r\n".join(pieces) + b"\r\n"


# --- envelopes --------------------------------------------------------------------------------


async def test_mixed_per_recipient_results(
    smtp_handler: RecordingHandler, smtp_server: AiosmtpdServer
) -> None:
    smtp_handler.reject = {
        "gone": "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
        "later": "450 4.2.1 <later@example.net>: try again later",
    }
    rcpts = ["ok1@example.net", "gone@example.net", "later@example.net", "ok2@example.net"]
    result, _ = await deliver_to(smtp_server, b"Subject: mixed\n\nhi\n", recipients=rcpts)
    said = "host 127.0.0.1[127.0.0.1] said:"
    assert [(r.address, r.status, r.dsn) for r in result.recipients] == [
        ("ok1@example.net", SENT, "2.0.0"),
        ("gone@example.net", BOUNCED, "5.1.1"),
        ("later@example.net", DEFERRED, "4.2.1"),
        ("ok2@example.net", SENT, "2.0.0"),
    ]
    assert result.recipients[1].diagnostic == (
        f"{said} 550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown "
        "(in reply to RCPT TO command)"
    )
    assert result.recipients[0].diagnostic == "250 2.0.0 Ok: queued"
    assert result.recipients[0].relay == f"127.0.0.1[127.0.0.1]:{smtp_server.port}"
    assert result.exit_code == 75
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["ok1@example.net", "ok2@example.net"]


async def test_soft_bounce_defers_what_would_bounce_and_logs_softbounce(
    smtp_handler: RecordingHandler, smtp_server: AiosmtpdServer
) -> None:
    """soft_bounce = yes: the 550 recipient is deferred with 4.1.1 and its line says
    status=SOFTBOUNCE (bounce.c's word); a 4xx stays a plain deferral; JSON says deferred."""
    smtp_handler.reject = {
        "gone": "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
        "later": "450 4.2.1 <later@example.net>: try again later",
    }
    log = MemoryLog()
    rcpts = ["gone@example.net", "later@example.net"]
    result, _ = await deliver_to(
        smtp_server, b"Subject: soft\n\nhi\n", recipients=rcpts, log=log, soft_bounce="yes"
    )
    assert [(r.status, r.dsn) for r in result.recipients] == [
        (DEFERRED, "4.1.1"),
        (DEFERRED, "4.2.1"),
    ]
    assert result.recipients[0].to_json()["status"] == "deferred"
    lines = [line for line in log.lines if "to=<" in line]
    assert "dsn=4.1.1, status=SOFTBOUNCE (host 127.0.0.1[127.0.0.1] said: 550 5.1.1" in lines[0]
    assert "dsn=4.2.1, status=deferred (host" in lines[1]
    assert result.exit_code == 75


async def test_null_sender(smtp_server: AiosmtpdServer) -> None:
    result, _ = await deliver_to(smtp_server, b"Subject: bounce\n\nx\n", sender="")
    assert result.recipients[0].status is SENT
    assert smtp_server.messages[0].mail_from in ("", "<>")


async def test_eight_bit_body_declared(smtp_server: AiosmtpdServer) -> None:
    """An 8bit request says BODY=8BITMIME when the server announces 8BITMIME (aiosmtpd does)."""
    request = DeliveryRequest(
        queue_id="4ABCDEF123",
        nexthop=smtp_server.nexthop,
        sender="a@example.org",
        recipients=(Recipient("b@example.net"),),
        content=Path(os.devnull),
        encoding="8bit",
    )
    result, _ = await deliver_request(request)
    assert result.recipients[0].status is SENT
    assert "BODY=8BITMIME" in smtp_server.messages[0].mail_options


@pytest.fixture
def dsn_server(smtp_handler: RecordingHandler) -> Iterator[DsnAiosmtpdServer]:
    server = DsnAiosmtpdServer(smtp_handler)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_dsn_parameters_on_the_wire(dsn_server: DsnAiosmtpdServer) -> None:
    body = b"Subject: dsn\n\nx\n"
    request = DeliveryRequest(
        queue_id="4ABCDEF123",
        nexthop=dsn_server.nexthop,
        sender="a@example.org",
        recipients=(
            Recipient("b@example.net", dsn_notify=Notify.SUCCESS | Notify.DELAY),
            Recipient("c@example.net", orig_address="alias+x@example.org"),
            Recipient("d@example.net", dsn_notify=Notify.NEVER, dsn_orcpt="rfc822;d=1@example.net"),
        ),
        content=__import__("io").BytesIO(body),
        dsn_ret="HDRS",
        dsn_envid="env id+1",
    )
    result, _ = await deliver_request(request)
    assert {r.status for r in result.recipients} == {SENT}
    wire = dsn_server.wire
    assert len(wire.mail) == 1
    mail_words = wire.mail[0].split(" ")
    assert mail_words[0] == "FROM:<a@example.org>"
    assert "RET=HDRS" in mail_words
    assert "ENVID=env+20id+2B1" in mail_words
    assert wire.rcpt == [
        "TO:<b@example.net> NOTIFY=SUCCESS,DELAY",
        "TO:<c@example.net> ORCPT=rfc822;alias+2Bx@example.org",
        "TO:<d@example.net> ORCPT=rfc822;d+3D1@example.net NOTIFY=NEVER",
    ]


async def test_no_dsn_parameters_when_dsn_not_announced(
    smtp_handler: RecordingHandler,
) -> None:
    smtp_handler.extra_keywords = ("PIPELINING", "ENHANCEDSTATUSCODES")
    server = DsnAiosmtpdServer(smtp_handler).start()
    try:
        request = mailcarrier.make_request(
            b"x\n",
            sender="a@example.org",
            recipients=["b@example.net"],
            nexthop=server.nexthop,
            notify="SUCCESS",
            ret="FULL",
            envid="abc",
        )
        result, _ = await deliver_request(request)
    finally:
        server.stop()
    assert result.recipients[0].status is SENT
    assert isinstance(server, DsnAiosmtpdServer)
    assert "RET=" not in server.wire.mail[0] and "ENVID=" not in server.wire.mail[0]
    assert server.wire.rcpt == ["TO:<b@example.net>"]


def _have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
async def test_ipv6_loopback(smtp_handler: RecordingHandler) -> None:
    server = AiosmtpdServer(smtp_handler, host="::1").start()
    try:
        assert server.nexthop == f"[ipv6:::1]:{server.port}"
        result, _ = await deliver_to(server, b"Subject: v6\n\nx\n")
    finally:
        server.stop()
    (r,) = result.recipients
    assert r.status is SENT
    assert r.relay.endswith(f"[::1]:{server.port}")
    assert server.messages[0].content == b"Subject: v6\r\n\r\nx\r\n"


# --- a 100 MB message in bounded memory -------------------------------------------------------

MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True)
sys.stdout.write(proc.stdout.decode())
sys.stderr.write(proc.stderr.decode())
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(proc.returncode)
"""


def _write_message(path: Path, size: int) -> None:
    line = b"The quick brown fox jumps over the lazy dog, again and again and again....\n"
    block = (line + b"." + line) * (65536 // 150)  # every other line needs dot-stuffing
    with path.open("wb") as f:
        f.write(b"Subject: big message\nFrom: <a@example.org>\n\n")
        written = 0
        while written < size:
            f.write(block)
            written += len(block)


def _run_measured(message: Path, nexthop: str) -> tuple[int, dict[str, Any], str]:
    cmd = [
        str(VENV_BIN / "mailcarrier"),
        "-o",
        "smtp_helo_name=client.example",
        "deliver",
        "--nexthop",
        nexthop,
        "-f",
        "a@example.org",
        "-r",
        "b@example.net",
        "--json",
        str(message),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, timeout=300, check=False
    )
    out = proc.stdout.decode()
    rss = int(out.rsplit("MAXRSS_KB", 1)[1].split()[0])
    payload = json.loads(out.rsplit("MAXRSS_KB", 1)[0].strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr.decode()
    return rss, payload, proc.stderr.decode()


@pytest.mark.slow
def test_100mb_message_in_bounded_memory(smtp_sink: SmtpSink, tmp_path: Path) -> None:
    if not (VENV_BIN / "mailcarrier").exists():
        pytest.skip("the mailcarrier console script is not installed in .venv")
    small = tmp_path / "small.eml"
    small.write_bytes(b"Subject: small\n\nhello\n")
    big = tmp_path / "big.eml"
    _write_message(big, 100 * 1024 * 1024)
    assert big.stat().st_size >= 100 * 1024 * 1024

    base_rss, base_json, _ = _run_measured(small, smtp_sink.nexthop)
    big_rss, big_json, stderr = _run_measured(big, smtp_sink.nexthop)
    for payload in (base_json, big_json):
        (r,) = payload["recipients"]
        assert r["status"] == "sent", r
    growth_mb = (big_rss - base_rss) / 1024
    assert growth_mb < 32, f"peak RSS grew by {growth_mb:.1f} MB for a 100 MB message"
    assert "status=sent" in stderr
