"""Per-server workarounds on the wire (delivery/quirks.py): Cisco PIX workarounds, and the
address-keyed EHLO/LHLO keyword discard table and its lookup errors.

PIX: a greeting made only of "2", "0", "*" and white space turns on smtp_pix_workarounds
(or what smtp_pix_workaround_maps lists for the server's address): disable_esmtp says HELO;
delay_dotcrlf sends the final dot alone, smtp_pix_workaround_delay_time after the content, for
a message older than smtp_pix_workaround_threshold_time. Postfix logs
"QUEUEID: enabling PIX workarounds: NAMES for host[addr]:port".
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.quirks import is_pix_greeting, pix_workarounds
from mailcarrier.protocol.reply import Reply
from tests.support.deliver import BODY, Delivery, deliver_request, request_to
from tests.support.scripted import Expect, ReadRest, ScriptedServer, Send, StartScripted, Step
from tests.support.settings import client_settings
from tests.support.wire import (
    DATA,
    EHLO,
    GREETING,
    HELO,
    LHLO,
    PIPELINING,
    WIRE_BODY,
    ehlo_reply,
    mail,
    rcpt,
)

SENT, DEFERRED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED
PIX_GREETING = b"220 ****************************************\r\n"
QUEUED_LONG_AGO = 3600.0


async def _deliver(
    server: ScriptedServer,
    overrides: dict[str, str],
    *,
    age: float = QUEUED_LONG_AGO,
    transport: str = "smtp",
    recipients: tuple[str, ...] = ("b@example.net",),
) -> Delivery:
    """One delivery of a message queued `age` seconds ago (the PIX threshold looks at it)."""
    request = request_to(
        server, BODY, recipients=recipients, transport=transport, queue_id="4PIX0001"
    )
    request = dataclasses.replace(request, arrival_time=time.time() - age)
    return await deliver_request(request, config=client_settings(**overrides))


def _lockstep_helo(greeting: bytes = PIX_GREETING, *, dot_alone: bool) -> list[Step]:
    content = WIRE_BODY.removesuffix(b".\r\n")
    tail: list[Step] = [Expect(content), Expect(b".\r\n")] if dot_alone else [Expect(WIRE_BODY)]
    return [
        Send(greeting),
        Expect(HELO),
        Send(b"250 ok\r\n"),
        Expect(mail("a@example.org")),
        Send(b"250 ok\r\n"),
        Expect(rcpt("b@example.net")),
        Send(b"250 ok\r\n"),
        Expect(DATA),
        Send(b"354 go\r\n"),
        *tail,
        Send(b"250 queued\r\n"),
        ReadRest(),
    ]


# --- unit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "pix"),
    [
        (("220 ************************",), True),
        (("220 *****  **** 2002 ***\t",), True),
        (("220",), True),
        (("220 mx.example ESMTP",), False),
        (("220-****", "220 ****"), False),  # the "-" of a multi-line reply
        (("220 ****** ok",), False),
    ],
)
def test_pix_greeting_detection(lines: tuple[str, ...], pix: bool) -> None:
    assert is_pix_greeting(Reply(220, lines)) is pix


def test_workaround_words_and_threshold() -> None:
    words = ("Disable_ESMTP", "delay_dotcrlf", "unknown")
    assert pix_workarounds(words, queued_for=600, threshold=500).names == (
        "disable_esmtp delay_dotcrlf"
    )
    young = pix_workarounds(words, queued_for=10, threshold=500)
    assert (young.disable_esmtp, young.delay_dotcrlf) == (True, False)
    assert pix_workarounds((), queued_for=600, threshold=500).names == ""


# --- on the wire --------------------------------------------------------------------------


async def test_pix_greeting_helo_and_dot_alone_after_the_delay(scripted: StartScripted) -> None:
    server = await scripted(_lockstep_helo(dot_alone=True))
    start = time.monotonic()
    result, log = await _deliver(server, {"smtp_pix_workaround_delay_time": "1s"})
    elapsed = time.monotonic() - start
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert elapsed >= 1.0
    assert (
        f"4PIX0001: enabling PIX workarounds: disable_esmtp delay_dotcrlf for {server.relay}"
        in log.lines
    )


async def test_young_message_gets_no_dot_delay(scripted: StartScripted) -> None:
    server = await scripted(_lockstep_helo(dot_alone=False))
    result, log = await _deliver(server, {}, age=10)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert f"4PIX0001: enabling PIX workarounds: disable_esmtp for {server.relay}" in log.lines


async def test_workaround_map_by_server_address_replaces_the_list(scripted: StartScripted) -> None:
    script: list[Step] = [
        Send(PIX_GREETING),
        Expect(EHLO),  # the map enables only delay_dotcrlf: EHLO as usual
        Send(PIPELINING),
        Expect(mail("a@example.org") + rcpt("b@example.net") + DATA),
        Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        Expect(WIRE_BODY.removesuffix(b".\r\n")),
        Expect(b".\r\n"),
        Send(b"250 queued\r\n"),
        ReadRest(),
    ]
    server = await scripted(script)
    overrides = {
        "smtp_pix_workaround_maps": "inline:{ 127.0.0.1=delay_dotcrlf }",
        "smtp_pix_workaround_delay_time": "1s",
    }
    result, log = await _deliver(server, overrides)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert f"4PIX0001: enabling PIX workarounds: delay_dotcrlf for {server.relay}" in log.lines


async def test_ordinary_greeting_and_empty_list_change_nothing(scripted: StartScripted) -> None:
    normal: list[Step] = [
        Send(GREETING),
        Expect(EHLO),
        Send(PIPELINING),
        Expect(mail("a@example.org") + rcpt("b@example.net") + DATA),
        Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 queued\r\n"),
        ReadRest(),
    ]
    server = await scripted(normal)
    result, log = await _deliver(server, {})
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert not any("PIX workarounds" in line for line in log.lines)

    pix_off = [Send(PIX_GREETING), *normal[1:]]
    server = await scripted(pix_off)
    result, log = await _deliver(server, {"smtp_pix_workarounds": ""})
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert not any("PIX workarounds" in line for line in log.lines)


async def test_unreadable_pix_map_falls_back_to_the_list(
    scripted: StartScripted, tmp_path: object
) -> None:
    server = await scripted(_lockstep_helo(dot_alone=False))
    overrides = {
        "smtp_pix_workaround_maps": "hash:/nonexistent/pix",
        "smtp_pix_workarounds": "disable_esmtp",
    }
    result, log = await _deliver(server, overrides)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert f"4PIX0001: enabling PIX workarounds: disable_esmtp for {server.relay}" in log.lines


async def test_lmtp_keeps_lhlo_but_delays_the_dot(scripted: StartScripted) -> None:
    script: list[Step] = [
        Send(PIX_GREETING),
        Expect(LHLO),
        Send(ehlo_reply("ENHANCEDSTATUSCODES")),
        Expect(mail("a@example.org")),
        Send(b"250 ok\r\n"),
        Expect(rcpt("b@example.net")),
        Send(b"250 ok\r\n"),
        Expect(DATA),
        Send(b"354 go\r\n"),
        Expect(WIRE_BODY.removesuffix(b".\r\n")),
        Expect(b".\r\n"),
        Send(b"250 2.0.0 delivered\r\n"),
        ReadRest(),
    ]
    server = await scripted(script)
    result, _ = await _deliver(server, {"lmtp_pix_workaround_delay_time": "1s"}, transport="lmtp")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


# --- discard keyword table ----------------------------------------------------------------


async def test_discard_map_lookup_error_defers_4_3_0(scripted: StartScripted) -> None:
    # The table cannot be opened: no session is attempted on this server, and the
    # recipients are deferred (never bounced) with Postfix's SMTP_ERR_DATA text.
    server = await scripted([ReadRest()])
    overrides = {"smtp_discard_ehlo_keyword_address_maps": "hash:/nonexistent/discard"}
    result, log = await _deliver(server, overrides)
    await server.wait_done()
    server.check()
    (status,) = result.recipients
    assert (status.status, status.dsn) == (DEFERRED, "4.3.0")
    assert status.diagnostic == f"local data error while talking to {server.namaddr}"
    assert (
        "warning: 4PIX0001: smtp_discard_ehlo_keyword_address_maps map lookup error for 127.0.0.1"
    ) in log.lines
    assert server.conn.received == b""


async def test_lmtp_discards_lhlo_keywords_by_address(scripted: StartScripted) -> None:
    script: list[Step] = [
        Send(b"220 lmtp.example LMTP\r\n"),
        Expect(LHLO),
        Send(ehlo_reply("PIPELINING", "ENHANCEDSTATUSCODES")),
        # PIPELINING discarded: lock-step.
        Expect(mail("a@example.org")),
        Send(b"250 ok\r\n"),
        Expect(rcpt("b@example.net")),
        Send(b"250 ok\r\n"),
        Expect(DATA),
        Send(b"354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 2.0.0 delivered\r\n"),
        ReadRest(),
    ]
    server = await scripted(script)
    overrides = {"lmtp_discard_lhlo_keyword_address_maps": "inline:{ 127.0.0.1=pipelining }"}
    result, log = await _deliver(server, overrides, transport="lmtp")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert "discarding EHLO keywords: PIPELINING" in log.lines
