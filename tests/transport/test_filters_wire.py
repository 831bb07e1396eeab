"""smtp_reply_filter and smtp_delivery_status_filter end to end, against scripted servers."""

from __future__ import annotations

from pathlib import Path

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.scripted import Expect, ReadRest, Send, StartScripted, Step
from tests.support.wire import DATA, EHLO, GREETING, PIPELINING, WIRE_BODY, mail, rcpt

SENT, DEFERRED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED
# postconf(5)'s example: anything that is not a reply line becomes one line of a multi-line
# reply (the final line's code decides).
GARBAGE_FILTER = "!/^([2-5][0-9][0-9]($|[- ]))/ 250-filler\n"


def garbled_ehlo() -> list[Step]:
    return [
        Send(GREETING),
        Expect(EHLO),
        Send(b"250-mx.example\r\n250-PIPELINING\r\n*** junk from a middlebox ***\r\n250 DSN\r\n"),
        Expect(mail() + rcpt("b@example.net") + DATA),
        Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 2.0.0 Ok: queued\r\n"),
        ReadRest(),
    ]


async def test_reply_filter_repairs_a_garbled_ehlo_reply(
    scripted: StartScripted, tmp_path: Path
) -> None:
    table = tmp_path / "reply_filter"
    table.write_text(GARBAGE_FILTER)
    server = await scripted(garbled_ehlo())
    result, _ = await deliver_to(server, smtp_reply_filter=f"regexp:{table}")
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (SENT, "250 2.0.0 Ok: queued")


async def test_without_reply_filter_the_garbage_is_a_protocol_error(
    scripted: StartScripted,
) -> None:
    server = await scripted([*garbled_ehlo()[:3], ReadRest()])
    result, _ = await deliver_to(server)
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert "malformed reply line" in r.diagnostic


async def test_reply_filter_rewrites_a_rcpt_reply(scripted: StartScripted, tmp_path: Path) -> None:
    table = tmp_path / "reply_filter"
    table.write_text("/^550 5\\.2\\.2 (.*)$/ 452 4.2.2 $1\n")
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(mail() + rcpt("b@example.net") + DATA),
            Send(b"250 2.1.0 Ok\r\n550 5.2.2 Mailbox full\r\n554 5.5.1 no valid recipients\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, smtp_reply_filter=f"regexp:{table}")
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.2.2")
    assert r.diagnostic == (
        f"host {server.namaddr} said: 452 4.2.2 Mailbox full (in reply to RCPT TO command)"
    )


async def test_delivery_status_filter_is_applied_before_logging(
    scripted: StartScripted, tmp_path: Path
) -> None:
    table = tmp_path / "status_filter"
    table.write_text("/^5(\\.2\\.2 .*)$/ 4$1\n/^2\\.0\\.0 .*queued.*/ 2.0.0 handed over\n")
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + DATA),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.2.2 Mailbox full\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok: queued\r\n"),
            ReadRest(),
        ]
    )
    result, log = await deliver_to(
        server,
        recipients=["b@example.net", "c@example.net"],
        smtp_delivery_status_filter=f"regexp:{table}",
    )
    await server.wait_done()
    server.check()
    b, c = result.recipients
    assert (b.status, b.dsn, b.diagnostic) == (SENT, "2.0.0", "handed over")
    assert (c.status, c.dsn) == (DEFERRED, "4.2.2")
    assert c.diagnostic.startswith(f"host {server.namaddr} said: 550 5.2.2 Mailbox full")
    assert any(
        "to=<c@example.net>" in line and "dsn=4.2.2, status=deferred" in line for line in log.lines
    )
