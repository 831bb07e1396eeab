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
