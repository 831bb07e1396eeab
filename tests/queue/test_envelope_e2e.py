"""The envelope of queued mail on the wire: ``sendmail`` then ``run --once``.

ORCPT (RFC 3461) as Postfix's client sends it for every recipient whose original address
the queue recorded: ``rfc822;`` with the address as cleanup qualified it (xtext), or RFC
6533's ``utf-8;`` form for a UTF-8 address of mail that SMTPUTF8 autodetection applies to;
``orig_to=`` in the log when the address was given without a domain; nothing for a queue
file written before the queue recorded originals. And the SMTPUTF8 flag of queued mail for a
server without SMTPUTF8, with smtputf8_autodetect_classes listing sendmail or not.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier import api
from mailcarrier.cli import run
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.log import MemoryLog
from mailcarrier.notify import Notify
from mailcarrier.queue.qfile import Envelope, QueueRecipient
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import open_spool
from tests.support.peers.aiosmtpd_dsn import DsnAiosmtpdServer
from tests.support.peers.aiosmtpd_server import RecordingHandler
from tests.support.scripted import Expect, ReadRest, ReadUntil, Send, StartScripted
from tests.support.settings import queue_settings
from tests.support.wire import DATA, EHLO, GREETING, QUIT, ehlo_reply

MESSAGE = b"Subject: orcpt\n\nbody\n"
DSN = ("PIPELINING", "DSN", "ENHANCEDSTATUSCODES")


@pytest.fixture
def dsn_server() -> Iterator[DsnAiosmtpdServer]:
    server = DsnAiosmtpdServer(RecordingHandler(extra_keywords=DSN))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _cli(
    queue: Path, relay: str, *argv: str, stdin: bytes = b"", extra: dict[str, str] | None = None
) -> str:
    """Run the command in this process; return what it logged."""
    options = {"queue_directory": str(queue), "relayhost": relay, "myorigin": "example.org"}
    options.update(extra or {})
    words = [w for name, value in options.items() for w in ("-o", f"{name}={value}")]
    out, err = io.StringIO(), io.StringIO()
    code = run([*words, *argv], stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return err.getvalue()


def _sendmail_and_run(
    tmp_path: Path, server: DsnAiosmtpdServer, *rcpts: str, **extra: str
) -> list[str]:
    relay = server.nexthop
    _cli(tmp_path, relay, "sendmail", "-f", "s@example.org", *rcpts, stdin=MESSAGE, extra=extra)
    return _cli(tmp_path, relay, "run", "--once", extra=extra).splitlines()


def test_queued_mail_carries_orcpt(tmp_path: Path, dsn_server: DsnAiosmtpdServer) -> None:
    log = _sendmail_and_run(tmp_path, dsn_server, "user", "<b+tag@example.net>", "C@Example.NET")
    assert dsn_server.wire.rcpt == [
        "TO:<user@example.org> ORCPT=rfc822;user@example.org",
        "TO:<b+tag@example.net> ORCPT=rfc822;b+2Btag@example.net",
        "TO:<C@Example.NET> ORCPT=rfc822;C@Example.NET",
    ]
    # Postfix's orig_to= names the recipient as it was given, without a domain.
    (user,) = [line for line in log if "to=<user@example.org>" in line]
    assert "to=<user@example.org>, orig_to=<user>, relay=" in user
    assert not [line for line in log if "b+tag" in line and "orig_to=" in line]


def test_orcpt_keeps_notify(tmp_path: Path, dsn_server: DsnAiosmtpdServer) -> None:
    _cli(tmp_path, dsn_server.nexthop, "sendmail", "-N", "failure", "-f", "s@example.org",
         "b@example.net", stdin=MESSAGE)  # fmt: skip
    _cli(tmp_path, dsn_server.nexthop, "run", "--once")
    assert dsn_server.wire.rcpt == ["TO:<b@example.net> ORCPT=rfc822;b@example.net NOTIFY=FAILURE"]


@pytest.mark.parametrize(
    ("classes", "enable", "orcpt", "mail", "rcpt"),
    [
        (
            "sendmail, verify",
            "yes",
            "utf-8;zo\\x{EB}@b\\x{FC}cher.example",
            " SMTPUTF8",
            "zoë@bücher.example",
        ),
        ("verify", "yes", "rfc822;zo+C3+AB@b+C3+BCcher.example", " SMTPUTF8", "zoë@bücher.example"),
        # smtputf8_enable=no: nothing is SMTPUTF8, the domain goes in A-labels.
        ("all", "no", "rfc822;zo+C3+AB@b+C3+BCcher.example", "", "zoë@xn--bcher-kva.example"),
    ],
    ids=["autodetected", "not-autodetected", "disabled"],
)
def test_utf8_orcpt(
    tmp_path: Path,
    dsn_server: DsnAiosmtpdServer,
    classes: str,
    enable: str,
    orcpt: str,
    mail: str,
    rcpt: str,
) -> None:
    extra = {"smtputf8_autodetect_classes": classes, "smtputf8_enable": enable}
    _sendmail_and_run(tmp_path, dsn_server, "zoë@bücher.example", **extra)
    assert dsn_server.wire.mail == [f"FROM:<s@example.org>{mail}"]
    assert dsn_server.wire.rcpt == [f"TO:<{rcpt}> ORCPT={orcpt}"]


def test_no_orcpt_without_dsn(tmp_path: Path) -> None:
    server = DsnAiosmtpdServer(RecordingHandler(extra_keywords=("PIPELINING",)))
    server.start()
    try:
        _sendmail_and_run(tmp_path, server, "user")
    finally:
        server.stop()
    assert server.wire.rcpt == ["TO:<user@example.org>"]


def test_a_queue_file_without_originals_still_delivers(
    tmp_path: Path, dsn_server: DsnAiosmtpdServer
) -> None:
    """Queue files written before the queue recorded original recipients have empty fields:
    they load, and their recipients go out without ORCPT (nothing to derive it from)."""
    spool = open_spool(queue_settings(tmp_path))
    envelope = Envelope(
        queue_id=spool.new_id(),
        sender="s@example.org",
        recipients=(QueueRecipient("a@example.net", "", "", Notify.NONE),),
        arrival_time=1_700_000_000.0,
    )
    with spool.create(envelope) as writer:
        writer.write(MESSAGE)
        writer.commit()
    _cli(tmp_path, dsn_server.nexthop, "run", "--once")
    assert dsn_server.wire.rcpt == ["TO:<a@example.net>"]
    assert len(dsn_server.messages) == 1


# --- SMTPUTF8 autodetection and a server without SMTPUTF8 ------------------------------------


@pytest.mark.parametrize("classes", ["sendmail", "verify"], ids=["autodetected", "not"])
async def test_utf8_local_part_to_a_server_without_smtputf8(
    tmp_path: Path, scripted: StartScripted, classes: str
) -> None:
    """Autodetected (Postfix's default for sendmail): SMTPUTF8 is required, and a server
    without it gets no MAIL (5.6.7). Not autodetected: the mail goes "as before", its UTF-8
    local part as it is and its domain in A-labels."""
    plain = ehlo_reply("PIPELINING", "8BITMIME")
    if classes == "sendmail":
        steps = [Send(GREETING), Expect(EHLO), Send(plain), ReadRest()]
    else:
        steps = [
            Send(GREETING),
            Expect(EHLO),
            Send(plain),
            Expect("MAIL FROM:<s@example.org>\r\nRCPT TO:<zoë@xn--fa-hia.de>\r\n".encode() + DATA),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
            ReadUntil(b"\r\n.\r\n"),
            Send(b"250 2.0.0 Ok\r\n"),
            Expect(QUIT),
            ReadRest(),
        ]
    server = await scripted(steps)
    cfg = queue_settings(
        tmp_path,
        relayhost=server.nexthop,
        smtp_helo_name="client.example",
        smtputf8_autodetect_classes=classes,
        bounce_notice_recipient="",
        notify_classes="",
    )
    await api.submit(MESSAGE, sender="s@example.org", recipients=["zoë@faß.de"], config=cfg)
    log = MemoryLog()
    spool = open_spool(cfg, log=log)
    await QueueManager(cfg, spool, DeliveryAgent(cfg, log=log), log=log).run_once()
    await server.wait_done()
    server.check()
    (line,) = [ln for ln in log.lines if "to=<zoë@faß.de>" in ln]
    if classes == "sendmail":
        assert "dsn=5.6.7, status=bounced (message requires SMTPUTF8" in line
    else:
        assert "dsn=2.0.0, status=sent (250 2.0.0 Ok)" in line
