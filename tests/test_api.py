"""The Python API gives a caller's own log sink printable text (api.py, log.printable_sink)."""

from __future__ import annotations

from pathlib import Path

import mailcarrier
from tests.support.scripted import Close, Expect, ScriptedServer, Send
from tests.support.settings import make_settings
from tests.support.wire import EHLO, GREETING, QUIT, mail, rcpt


class _Sink:
    """A caller's sink: it keeps what it gets, as a logging handler would write it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, process: str, text: str) -> None:
        self.lines.append(f"{process}: {text}")

    def warning(self, process: str, text: str) -> None:
        self.lines.append(f"{process}: warning: {text}")


async def test_deliver_gives_a_foreign_sink_clean_lines() -> None:
    server = await ScriptedServer(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(b"250 mx.example\r\n"),
            Expect(mail()),
            Send(b"250 ok\r\n"),
            Expect(rcpt("b@example.net")),
            Send(b"550 5.1.1 no\r\x1b[2J\x00 \xc2\x85 \xff\r\n"),
            Expect(QUIT),
            Send(b"221 bye\r\n"),
            Close(),
        ]
    ).start()
    sink = _Sink()
    try:
        request = mailcarrier.make_request(
            b"Subject: t\n\nbody\n",
            sender="a@example.org",
            recipients=["b@example.net"],
            nexthop=server.nexthop,
            queue_id="0QID",
        )
        config = make_settings(smtp_helo_name="client.example")
        result = await mailcarrier.deliver(request, config=config, log=sink)
    finally:
        await server.stop()
    server.check()
    (status,) = result.recipients
    assert status.diagnostic.endswith(
        "said: 550 5.1.1 no\r\x1b[2J\x00 \x85 \\xff (in reply to RCPT TO command)"
    )
    (line,) = sink.lines
    assert line.startswith("smtp: 0QID: to=<b@example.net>, relay=")
    assert line.endswith("said: 550 5.1.1 no??[2J? ? \\xff (in reply to RCPT TO command))")


async def test_submit_gives_a_foreign_sink_clean_lines(tmp_path: Path) -> None:
    config = make_settings(
        queue_directory=str(tmp_path), myhostname="mc.example", myorigin="example.org"
    )
    sink = _Sink()
    qid = await mailcarrier.submit(
        b"Message-Id: <a\x1b[2J\x07@x>\n\nbody\n",
        sender="s@example.org",
        recipients=["r@example.net"],
        config=config,
        log=sink,
    )
    assert f"cleanup: {qid}: message-id=<a?[2J?@x>" in sink.lines


async def test_make_request_probe_reads_no_content(tmp_path: Path) -> None:
    """`make_request(probe=True)`: the content is neither opened nor scanned (a path that
    does not exist is fine, 8-bit bytes do not make it 8bit), and the probe goes out as MAIL,
    RCPT and RSET with the RCPT reply as the verdict."""
    missing = tmp_path / "no-such-message"
    request = mailcarrier.make_request(
        missing, sender="a@example.org", recipients=["b@example.net"], nexthop="[x]", probe=True
    )
    assert (request.probe, request.content, request.encoding) == (True, missing, "7bit")
    eight_bit = mailcarrier.make_request(
        b"Subject: \xff\n\n\xff\n",
        sender="a@example.org",
        recipients=["b@example.net"],
        nexthop="[x]",
        probe=True,
    )
    assert (eight_bit.encoding, eight_bit.smtputf8) == ("7bit", False)
    utf8 = mailcarrier.make_request(
        b"", sender="a@example.org", recipients=["j\u00f6rg@example.net"], nexthop="[x]", probe=True
    )
    assert utf8.smtputf8  # a UTF-8 address still asks for SMTPUTF8 (smtputf8_autodetect)
    server = await ScriptedServer(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(b"250-mx.example\r\n250 PIPELINING\r\n"),
            Expect(mail() + rcpt("b@example.net") + b"RSET\r\n"),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"),
            Expect(QUIT),
            Send(b"221 bye\r\n"),
            Close(),
        ]
    ).start()
    sink = _Sink()
    try:
        probe = mailcarrier.make_request(
            missing,
            sender="a@example.org",
            recipients=["b@example.net"],
            nexthop=server.nexthop,
            queue_id="0PROBE",
            probe=True,
        )
        config = make_settings(smtp_helo_name="client.example")
        result = await mailcarrier.deliver(probe, config=config, log=sink)
    finally:
        await server.stop()
    server.check()
    (status,) = result.recipients
    assert (status.status, status.dsn, status.diagnostic) == (
        mailcarrier.DeliveryStatus.SENT,
        "2.1.5",
        "250 2.1.5 Ok",
    )
    (line,) = sink.lines
    assert line.startswith("smtp: 0PROBE: to=<b@example.net>, relay=")
    assert line.endswith(", dsn=2.1.5, status=deliverable (250 2.1.5 Ok)")


def test_make_request_requiretls_and_tls_required_no() -> None:
    """`requiretls=True` asks for REQUIRETLS (RFC 8689); a "TLS-Required: No" header is
    found by the content scan (both are Postfix's sendopts bits)."""
    asked = mailcarrier.make_request(
        b"Subject: x\n\nhi\n",
        sender="a@example.org",
        recipients=["b@example.net"],
        nexthop="[127.0.0.1]",
        requiretls=True,
    )
    assert (asked.requiretls, asked.tls_required_no) == (True, False)
    header = mailcarrier.make_request(
        b"Subject: x\ntls-required:  NO \n\nTLS-Required: No\n",
        sender="a@example.org",
        recipients=["b@example.net"],
        nexthop="[127.0.0.1]",
    )
    assert (header.requiretls, header.tls_required_no) == (False, True)
    body_only = mailcarrier.make_request(
        b"Subject: x\n\nTLS-Required: No\n",
        sender="a@example.org",
        recipients=["b@example.net"],
        nexthop="[127.0.0.1]",
    )
    assert not body_only.tls_required_no
