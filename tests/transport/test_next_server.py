"""Several servers for one request: what moves recipients on to the next one (Postfix rules).

The next hop is a list (``[127.0.0.1]:P1, [127.0.0.1]:P2``, relayhost style), so there is no
DNS involved: the first server refuses or fails in a scripted way and the second works. Postfix
(smtp_trouble.c) moves recipients on after a soft error on any server but the last one, logs a
``QUEUEID: reason`` line for the skipped server, and acts on a hard error at once.
"""

from __future__ import annotations

import pytest

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.scripted import (
    Close,
    Expect,
    ReadRest,
    ScriptedServer,
    Send,
    StartScripted,
    Step,
)
from tests.support.wire import DATA, EHLO, GREETING, PIPELINING, WIRE_BODY, mail, rcpt

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
START: list[Step] = [Send(GREETING), Expect(EHLO), Send(PIPELINING)]


def working(*rcpts: str) -> list[Step]:
    return [
        *START,
        Expect(mail() + b"".join(rcpt(a) for a in rcpts) + DATA),
        Send(b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * len(rcpts) + b"354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 2.0.0 Ok: queued on second\r\n"),
        ReadRest(),
    ]


def pair(first: ScriptedServer, second: ScriptedServer) -> str:
    return f"{first.nexthop}, {second.nexthop}"


async def test_first_refuses_connection_second_delivers(scripted: StartScripted) -> None:
    dead = await scripted([Close()])
    dead_port = dead.port
    await dead.stop()
    second = await scripted(working("b@example.net"))
    result, log = await deliver_to(f"[127.0.0.1]:{dead_port}, {second.nexthop}")
    await second.wait_done()
    second.check()
    (r,) = result.recipients
    assert (r.status, r.relay) == (SENT, second.relay)
    assert r.diagnostic == "250 2.0.0 Ok: queued on second"
    assert log.lines[0] == f"connect to 127.0.0.1[127.0.0.1]:{dead_port}: Connection refused"
    assert log.lines[-1].startswith(f"4ABCDEF123: to=<b@example.net>, relay={second.relay}, ")


@pytest.mark.parametrize(
    ("greeting", "skip"),
    [
        (b"421 4.3.2 Too busy\r\n", "yes"),
        (b"450 4.3.2 Too busy\r\n", "no"),
        (b"554 5.7.1 No service for you\r\n", "yes"),
    ],
)
async def test_refused_greeting_moves_on(
    scripted: StartScripted, greeting: bytes, skip: str
) -> None:
    first = await scripted([Send(greeting), ReadRest()])
    second = await scripted(working("b@example.net"))
    result, log = await deliver_to(pair(first, second), smtp_skip_5xx_greeting=skip)
    await second.wait_done()
    second.check()
    (r,) = result.recipients
    assert (r.status, r.relay) == (SENT, second.relay)
    text = greeting.decode().rstrip("\r\n")
    assert f"4ABCDEF123: host {first.namaddr} refused to talk to me: {text}" in log.lines


async def test_5xx_greeting_without_skip_bounces_at_once(scripted: StartScripted) -> None:
    first = await scripted([Send(b"554 5.7.1 No service for you\r\n"), ReadRest()])
    second = await scripted(working("b@example.net"))
    result, _ = await deliver_to(pair(first, second), smtp_skip_5xx_greeting="no")
    (r,) = result.recipients
    assert (r.status, r.dsn) == (BOUNCED, "5.7.1")
    assert second.connections == []


@pytest.mark.parametrize("where", ["after-rcpt", "after-one-rcpt-rejected"])
async def test_lost_connection_moves_remaining_recipients_on(
    scripted: StartScripted, where: str
) -> None:
    if where == "after-rcpt":
        first_script: list[Step] = [
            *START,
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + DATA),
            Send(b"250 2.1.0 Ok\r\n"),
            Close(),
        ]
        expected_second: tuple[str, ...] = ("b@example.net", "c@example.net")
    else:
        # b is rejected for good on the first server; only c moves on.
        first_script = [
            *START,
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + DATA),
            Send(b"250 2.1.0 Ok\r\n550 5.1.1 b unknown\r\n"),
            Close(),
        ]
        expected_second = ("c@example.net",)
    first = await scripted(first_script)
    second = await scripted(working(*expected_second))
    result, log = await deliver_to(
        pair(first, second), recipients=["b@example.net", "c@example.net"]
    )
    await second.wait_done()
    first.check()
    second.check()
    statuses = {r.address: (r.status, r.relay) for r in result.recipients}
    if where == "after-rcpt":
        assert statuses == {
            "b@example.net": (SENT, second.relay),
            "c@example.net": (SENT, second.relay),
        }
    else:
        assert statuses == {
            "b@example.net": (BOUNCED, first.relay),
            "c@example.net": (SENT, second.relay),
        }
    assert f"4ABCDEF123: lost connection with {first.namaddr} while sending RCPT TO" in log.lines


async def test_all_servers_fail_last_verdict_wins(scripted: StartScripted) -> None:
    first = await scripted([Send(b"421 4.3.2 first busy\r\n"), ReadRest()])
    second = await scripted([Send(GREETING), Close()])
    result, _ = await deliver_to(pair(first, second))
    (r,) = result.recipients
    assert (r.status, r.dsn, r.relay) == (DEFERRED, "4.4.2", second.relay)
    assert r.diagnostic == (
        f"lost connection with {second.namaddr} while performing the EHLO handshake"
    )


async def test_soft_mail_reply_on_first_server_tries_the_next(scripted: StartScripted) -> None:
    """A 4xx to MAIL fails the whole transaction softly: the next server gets the message
    (Postfix smtp_bulk_fail)."""
    first = await scripted(
        [
            *START,
            Expect(mail() + rcpt("b@example.net") + DATA),
            Send(b"451 4.3.0 try later\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n"),
            ReadRest(),
        ]
    )
    second = await scripted(working("b@example.net"))
    result, log = await deliver_to(pair(first, second))
    (r,) = result.recipients
    assert (r.status, r.relay) == (SENT, second.relay)
    assert any("said: 451 4.3.0 try later (in reply to MAIL FROM command)" in x for x in log.lines)


async def test_soft_rcpt_reply_is_deferred_not_moved_on(scripted: StartScripted) -> None:
    """Issue 4: "a 4xx on a recipient does not" move delivery to the next address. (Postfix
    itself would keep the recipient for a backup server; the issue decides here.)"""
    first = await scripted(
        [
            *START,
            Expect(mail() + rcpt("b@example.net") + DATA),
            Send(b"250 2.1.0 Ok\r\n450 4.2.0 greylisted\r\n554 5.5.1 no valid recipients\r\n"),
            ReadRest(),
        ]
    )
    second = await scripted(working("b@example.net"))
    result, _ = await deliver_to(pair(first, second))
    (r,) = result.recipients
    assert (r.status, r.dsn, r.relay) == (DEFERRED, "4.2.0", first.relay)
    assert r.diagnostic.endswith("said: 450 4.2.0 greylisted (in reply to RCPT TO command)")
    assert second.connections == []
