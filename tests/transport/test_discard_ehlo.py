"""smtp_discard_ehlo_keywords and smtp_discard_ehlo_keyword_address_maps: the client acts as
if a discarded keyword had never been offered, and says so as Postfix does.

The scripted server offers every extension the client knows; the configuration asks for
XFORWARD, AUTH=<> (SASL on, no credentials for this server), and the request for DSN, 8-bit
content and a UTF-8 sender domain, so each offered keyword shows on the wire. Discarding one
keyword (through the address map, keyed by the server's IP address) removes exactly its trace.
"""

from __future__ import annotations

import dataclasses

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.request import Recipient
from mailcarrier.notify import Notify
from tests.support.deliver import Delivery, deliver_request, request_to
from tests.support.scripted import Expect, ReadRest, Send, StartScripted, Step
from tests.support.settings import CLIENT, make_settings
from tests.support.wire import DATA, EHLO, GREETING, ehlo_reply

SENT = DeliveryStatus.SENT
OFFERED = (
    "PIPELINING",
    "SIZE 10000000",
    "8BITMIME",
    "DSN",
    "STARTTLS",
    "AUTH PLAIN",
    "XFORWARD NAME",
    "SMTPUTF8",
    "CHUNKING",
    "ENHANCEDSTATUSCODES",
)
BODY = b"Subject: test\n\nh\xc3\xa9llo\n"
WIRE = b"Subject: test\r\n\r\nh\xc3\xa9llo\r\n.\r\n"
BASE = {
    "smtp_send_xforward_command": "yes",
    "smtp_sasl_auth_enable": "yes",
    "smtp_send_dummy_mail_auth": "yes",
    "smtp_sasl_password_maps": "inline:{ other.example=u:p }",
}


def _script(discarded: str) -> list[Step]:
    """What the client must send when `discarded` was not offered."""
    sender = "a@xn--bcher-kva.example" if discarded == "SMTPUTF8" else "a@bücher.example"
    params = {
        "SIZE": f"SIZE={len(BODY)}",
        "8BITMIME": "BODY=8BITMIME",
        "DSN": "RET=FULL",  # (smtp(8)'s order: DSN parameters before SMTPUTF8)
        "SMTPUTF8": "SMTPUTF8",
        "AUTH": "AUTH=<>",
    }
    mail = " ".join([f"MAIL FROM:<{sender}>", *(v for k, v in params.items() if k != discarded)])
    notify = "" if discarded == "DSN" else " NOTIFY=SUCCESS"
    commands = [
        *([] if discarded == "XFORWARD" else [b"XFORWARD NAME=[UNAVAILABLE]\r\n"]),
        f"{mail}\r\n".encode(),
        f"RCPT TO:<b@example.net>{notify}\r\n".encode(),
        DATA,
    ]
    replies = [b"250 2.0.0 Ok\r\n"] * (len(commands) - 3) + [
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 Ok\r\n",
        b"354 go\r\n",
    ]
    steps: list[Step] = [Send(GREETING), Expect(EHLO), Send(ehlo_reply(*OFFERED))]
    if discarded == "PIPELINING":  # lock-step: one command, one reply
        for command, reply in zip(commands, replies, strict=True):
            steps += [Expect(command), Send(reply)]
    else:
        steps += [Expect(b"".join(commands)), Send(b"".join(replies))]
    return [*steps, Expect(WIRE), Send(b"250 2.0.0 Ok: queued\r\n"), ReadRest()]


async def _deliver(nexthop: str, overrides: dict[str, str]) -> Delivery:
    """The 8-bit message with DSN options and a UTF-8 sender domain, with BASE + `overrides`."""
    request = dataclasses.replace(
        request_to(nexthop, BODY, sender="a@bücher.example", ret="FULL"),
        recipients=(Recipient("b@example.net", dsn_notify=Notify.SUCCESS),),
        encoding="8bit",
    )
    return await deliver_request(request, config=make_settings(CLIENT, BASE, **overrides))


@pytest.mark.parametrize(
    "keyword",
    [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "DSN",
        "STARTTLS",
        "AUTH",
        "XFORWARD",
        "SMTPUTF8",
        "CHUNKING",
        "ENHANCEDSTATUSCODES",
    ],
)
async def test_each_keyword_discarded_by_address(scripted: StartScripted, keyword: str) -> None:
    server = await scripted(_script(keyword))
    overrides = {
        "smtp_discard_ehlo_keyword_address_maps": f"inline:{{ 127.0.0.1={keyword.lower()} }}",
        # With STARTTLS offered, "may" would start TLS: discarded, it stays plaintext.
        "smtp_tls_security_level": "may" if keyword == "STARTTLS" else "",
        # With CHUNKING offered, smtp_use_chunking would send BDAT: discarded, it is DATA.
        "smtp_use_chunking": "yes" if keyword == "CHUNKING" else "no",
    }
    result, log = await _deliver(server.nexthop, overrides)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (SENT, "2.0.0")
    assert f"discarding EHLO keywords: {keyword}" in log.lines


async def test_address_map_result_replaces_the_keyword_list(scripted: StartScripted) -> None:
    server = await scripted(_script("DSN"))
    overrides = {
        "smtp_discard_ehlo_keywords": "pipelining, size",
        "smtp_discard_ehlo_keyword_address_maps": "inline:{ 127.0.0.1=dsn }",
    }
    result, log = await _deliver(server.nexthop, overrides)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert "discarding EHLO keywords: DSN" in log.lines


async def test_keyword_list_without_a_map_match(scripted: StartScripted) -> None:
    server = await scripted(_script("PIPELINING"))
    overrides = {
        "smtp_discard_ehlo_keywords": "pipelining, x-unknown",
        "smtp_discard_ehlo_keyword_address_maps": "inline:{ 192.0.2.1=dsn }",
    }
    result, log = await _deliver(server.nexthop, overrides)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert "discarding EHLO keywords: PIPELINING" in log.lines


async def test_silent_discard(scripted: StartScripted) -> None:
    server = await scripted(_script("XFORWARD"))
    result, log = await _deliver(
        server.nexthop, {"smtp_discard_ehlo_keywords": "silent-discard, xforward"}
    )
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert not any("discarding" in line for line in log.lines)


async def test_nothing_discarded_shows_every_keyword(scripted: StartScripted) -> None:
    # The control: every trace the parametrized test removes one at a time is there.
    server = await scripted(_script(""))
    result, log = await _deliver(server.nexthop, {})
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert not any("discarding" in line for line in log.lines)
    assert b"SIZE=" in server.conn.received and b"XFORWARD" in server.conn.received
