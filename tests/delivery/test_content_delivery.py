"""End to end: 8BITMIME downgrade, SIZE and header/body checks against aiosmtpd.

DSN parameters on the wire are covered by test_e2e_aiosmtpd.py (with a DSN-aware aiosmtpd).

aiosmtpd always announces 8BITMIME; `_No8BitHandler` removes it from the EHLO reply so that
the server is one Postfix must downgrade for. The received message must contain no byte
>= 0x80 and decode (stdlib email parser) to the same text as the original; MAIL FROM then has
neither SIZE= (Postfix omits it when converting) nor BODY=.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.log import MemoryLog
from mailcarrier.notify import Notify
from tests.support.corpus import CORPUS, decoded_texts, deep
from tests.support.deliver import deliver_request
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import client_settings

SENT, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.BOUNCED


@dataclass
class _No8BitHandler(RecordingHandler):
    # SMTPUTF8 too: Postfix treats a server with SMTPUTF8 as one with 8BITMIME.
    drop: tuple[str, ...] = ("8BITMIME", "SMTPUTF8")

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        keep = [r for r in responses if r[4:].split(" ")[0].upper() not in self.drop]
        last = keep[-1]
        return [*keep[:-1], "250 " + last[4:]]


@pytest.fixture
def no8bit() -> Any:
    server = AiosmtpdServer(_No8BitHandler()).start()
    try:
        yield server
    finally:
        server.stop()


def _request(server: AiosmtpdServer, body: bytes, **kw: Any) -> DeliveryRequest:
    return DeliveryRequest(
        queue_id="4ABCD1234",
        nexthop=server.nexthop,
        sender="a@example.org",
        recipients=(Recipient("b@example.net", dsn_notify=kw.pop("notify", Notify.NONE)),),
        content=io.BytesIO(body),
        encoding=kw.pop("encoding", "8bit"),
        **kw,
    )


async def _deliver(
    server: AiosmtpdServer, body: bytes, log: MemoryLog | None = None, **kw: Any
) -> mailcarrier.DeliveryResult:
    params = kw.pop("config", {})
    config = client_settings(**params)
    result, _ = await deliver_request(_request(server, body, **kw), config=config, log=log)
    return result


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_corpus_is_downgraded_for_a_server_without_8bitmime(
    no8bit: AiosmtpdServer, name: str
) -> None:
    raw = CORPUS[name].encode()
    result = await _deliver(no8bit, raw)
    assert result.recipients[0].status is SENT
    received = no8bit.messages[0]
    assert received.content.isascii()
    # The wire has CRLF line endings; the original was written with LF.
    assert decoded_texts(received.content.replace(b"\r\n", b"\n")) == decoded_texts(raw)
    assert not any(o.upper().startswith(("SIZE=", "BODY=")) for o in received.mail_options)


async def test_8bitmime_server_gets_content_unchanged(smtp_server: AiosmtpdServer) -> None:
    raw = CORPUS["nested"].encode()
    result = await _deliver(smtp_server, raw)
    assert result.recipients[0].status is SENT
    received = smtp_server.messages[0]
    assert received.content == raw.replace(b"\n", b"\r\n")
    assert "BODY=8BITMIME" in received.mail_options


async def test_7bit_request_is_never_converted(no8bit: AiosmtpdServer) -> None:
    raw = b"Content-Transfer-Encoding: 8bit\n\nascii only\n"
    await _deliver(no8bit, raw, encoding="7bit")
    assert no8bit.messages[0].content == raw.replace(b"\n", b"\r\n")


async def test_conversion_disabled_bounces_5_6_3(no8bit: AiosmtpdServer) -> None:
    result = await _deliver(
        no8bit, CORPUS["simple"].encode(), config={"disable_mime_output_conversion": "yes"}
    )
    status = result.recipients[0]
    assert status.status is BOUNCED
    assert status.dsn == "5.6.3"
    assert "no server was found that supports 8BITMIME" in status.diagnostic
    assert no8bit.messages == []


async def test_nesting_beyond_limit_bounces_5_6_0(no8bit: AiosmtpdServer) -> None:
    result = await _deliver(no8bit, deep(8).encode(), config={"mime_nesting_limit": "5"})
    status = result.recipients[0]
    assert (status.status, status.dsn) == (BOUNCED, "5.6.0")
    assert status.diagnostic == "MIME nesting exceeds safety limit"
    assert no8bit.messages == []  # no final dot was sent


async def test_size_precheck_bounces_without_content() -> None:
    handler = RecordingHandler(extra_keywords=("PIPELINING",))
    server = AiosmtpdServer(handler, data_size_limit=100).start()
    try:
        result = await _deliver(server, b"Subject: x\n\n" + b"a" * 500 + b"\n")
    finally:
        server.stop()
    status = result.recipients[0]
    assert (status.status, status.dsn) == (BOUNCED, "5.3.4")
    assert "exceeds size limit 100 of server" in status.diagnostic
    assert handler.messages == []


async def test_header_and_body_checks_apply_and_log(
    smtp_server: AiosmtpdServer, tmp_path: Path
) -> None:
    (tmp_path / "hc").write_text("/^X-Internal:/ IGNORE\n/^Subject:/ WARN outbound\n")
    (tmp_path / "bc").write_text("/^password/ REPLACE [redacted]\n")
    log = MemoryLog()
    body = b"Subject: hi\nX-Internal: 10.0.0.1\n\npassword=hunter2\nrest\n"
    result = await _deliver(
        smtp_server,
        body,
        log,
        encoding="7bit",
        config={
            "smtp_header_checks": f"regexp:{tmp_path / 'hc'}",
            "smtp_body_checks": f"regexp:{tmp_path / 'bc'}",
        },
    )
    assert result.recipients[0].status is SENT
    assert smtp_server.messages[0].content == b"Subject: hi\r\n\r\n[redacted]\r\nrest\r\n"
    lines = log.lines
    assert any(line.endswith("4ABCD1234: warning: header Subject: hi: outbound") for line in lines)
    assert any(
        line.endswith("4ABCD1234: replace: body password=hunter2: [redacted]") for line in lines
    )


# --- content nobody declared (encoding "", what Postfix's qmgr sends for most mail) -------


@pytest.fixture
def sized() -> Any:
    """aiosmtpd announcing SIZE (and 8BITMIME), so that MAIL FROM carries SIZE=."""
    server = AiosmtpdServer(RecordingHandler(), data_size_limit=1_000_000).start()
    try:
        yield server
    finally:
        server.stop()


async def test_undeclared_content_goes_without_body_parameter(sized: AiosmtpdServer) -> None:
    # Postfix's smtp_proto.c: "8bit" -> BODY=8BITMIME, "7bit" -> BODY=7BIT, "" -> nothing.
    raw = "Subject: x\n\nGrüße\n".encode()
    result = await _deliver(sized, raw, encoding="")
    assert result.recipients[0].status is SENT
    received = sized.messages[0]
    assert received.content == raw.replace(b"\n", b"\r\n")
    assert not any(o.upper().startswith("BODY=") for o in received.mail_options)
    assert f"SIZE={len(raw)}" in received.mail_options


async def test_undeclared_content_is_converted_for_a_server_without_8bitmime(
    no8bit: AiosmtpdServer,
) -> None:
    # SMTP_MIME_DOWNGRADE(): everything that is not "7bit" may hold 8-bit bytes.
    raw = CORPUS["simple"].encode()
    result = await _deliver(no8bit, raw, encoding="")
    assert result.recipients[0].status is SENT
    received = no8bit.messages[0]
    assert received.content.isascii()
    assert decoded_texts(received.content.replace(b"\r\n", b"\n")) == decoded_texts(raw)
    assert not any(o.upper().startswith(("SIZE=", "BODY=")) for o in received.mail_options)


async def test_undeclared_content_is_sent_when_conversion_is_disabled(
    no8bit: AiosmtpdServer,
) -> None:
    # Not known to be 8-bit: no 5.6.3 bounce (a declared 8bit request gets one, see above).
    raw = b"Subject: x\n\nascii only\n"
    result = await _deliver(
        no8bit, raw, encoding="", config={"disable_mime_output_conversion": "yes"}
    )
    assert result.recipients[0].status is SENT
    assert no8bit.messages[0].content == raw.replace(b"\n", b"\r\n")


# --- a size that only announces (Postfix's DELIVER_REQUEST size counts record bytes) ------


@pytest.mark.parametrize("size", [10, 5000])
async def test_inexact_size_is_announced_and_the_content_read_to_its_end(
    sized: AiosmtpdServer, size: int
) -> None:
    raw = b"Subject: x\n\n" + b"line\n" * 100
    result = await _deliver(sized, raw, encoding="7bit", size=size, size_exact=False)
    assert result.recipients[0].status is SENT
    received = sized.messages[0]
    assert received.content == raw.replace(b"\n", b"\r\n")
    assert f"SIZE={size}" in received.mail_options


async def test_inexact_size_of_a_file_is_read_to_its_end(
    sized: AiosmtpdServer, tmp_path: Path
) -> None:
    raw = b"Subject: x\n\n" + b"line\n" * 100
    (tmp_path / "msg").write_bytes(b"ENVELOPE" + raw)
    request = DeliveryRequest(
        queue_id="4ABCD1234",
        nexthop=sized.nexthop,
        sender="a@example.org",
        recipients=(Recipient("b@example.net"),),
        content=tmp_path / "msg",
        content_offset=8,
        size=20,
        size_exact=False,
    )
    result, _ = await deliver_request(request, config=client_settings())
    assert result.recipients[0].status is SENT
    assert sized.messages[0].content == raw.replace(b"\n", b"\r\n")
    assert "SIZE=20" in sized.messages[0].mail_options
