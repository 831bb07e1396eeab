"""The API takes what people have (api_content.py), and `mailcarrier.send()` does the
commonest case in one call (sending.py): bytes, text, a Path, a binary file and
email.message objects reach the server as the same bytes; an EmailMessage with a UTF-8
subject and an attachment; the envelope from the headers with Bcc removed; AUTH with the
credentials given, only over verified TLS by default."""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

import mailcarrier
from mailcarrier import DeliveryStatus, UsageError
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port
from tests.support.settings import make_settings
from tests.support.tls import Pki

TEXT = "From: a@example.org\nTo: b@example.net\nSubject: same\n\nbody line\n"


@pytest.mark.parametrize("kind", ["bytes", "str", "path", "file", "message"])
async def test_every_content_type_arrives_as_the_same_bytes(
    kind: str, tmp_path: Path, smtp_server: AiosmtpdServer
) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(TEXT.encode())
    content: Any = {
        "bytes": TEXT.encode(),
        "str": TEXT,
        "path": path,
        "file": io.BytesIO(TEXT.encode()),
        "message": BytesParser(policy=default).parsebytes(TEXT.encode()),
    }[kind]
    request = mailcarrier.make_request(
        content, sender="a@example.org", recipients=["b@example.net"], nexthop=smtp_server.nexthop
    )
    result = await mailcarrier.deliver(request)
    assert result.recipients[0].status is DeliveryStatus.SENT
    assert smtp_server.messages[0].content == TEXT.replace("\n", "\r\n").encode()


def test_text_is_never_a_file_name(tmp_path: Path) -> None:
    (tmp_path / "m.eml").write_text("Subject: from the file\n\nx\n")
    request = mailcarrier.make_request(
        str(tmp_path / "m.eml"), sender="", recipients=["b@example.net"], nexthop="[127.0.0.1]:9"
    )
    assert isinstance(request.content, io.BytesIO)
    assert request.content.getvalue() == str(tmp_path / "m.eml").encode()


def test_other_types_are_refused() -> None:
    with pytest.raises(UsageError, match="not int"):
        mailcarrier.make_request(42, sender="", recipients=["b@x.example"], nexthop="x")  # type: ignore[arg-type]


async def test_an_email_message_with_utf8_and_an_attachment(
    smtp_server: AiosmtpdServer,
) -> None:
    msg = EmailMessage()
    msg["From"] = "Zoë <z@example.org>"
    msg["To"] = "b@example.net"
    msg["Subject"] = "Grüße aus Köln"
    msg.set_content("Hallo, schöne Grüße.\n")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                       filename="data.bin")  # fmt: skip
    result = await mailcarrier.send(msg, host=smtp_server.nexthop, tls="none")
    assert [r.status for r in result.recipients] == [DeliveryStatus.SENT]
    received = smtp_server.messages[0]
    assert received.mail_from == "z@example.org" and received.rcpt_tos == ["b@example.net"]
    header = received.content.split(b"\r\n\r\n", 1)[0]
    assert header.isascii()  # RFC 2047 words: no SMTPUTF8 needed
    assert received.mail_options == ["BODY=8BITMIME"]  # the 8-bit text part, detected
    parsed = BytesParser(policy=default).parsebytes(received.content)
    assert parsed["Subject"] == "Grüße aus Köln"
    (attachment,) = parsed.iter_attachments()
    assert attachment.get_content() == b"\x00\x01binary"


def test_send_takes_the_envelope_from_the_headers_and_drops_bcc(
    smtp_server: AiosmtpdServer,
) -> None:
    text = (
        "From: Ann <ann@example.org>\nTo: b@example.net, c@example.net\n"
        "Bcc: hidden@example.net,\n secret@example.net\nSubject: t\n\nx\n"
    )
    result = mailcarrier.send_sync(text, host=smtp_server.nexthop, tls="may")
    assert [r.address for r in result.recipients] == [
        "b@example.net",
        "c@example.net",
        "hidden@example.net",
        "secret@example.net",
    ]
    received = smtp_server.messages[0]
    assert received.mail_from == "ann@example.org"
    assert b"Bcc" not in received.content and b"secret" not in received.content


def test_send_refuses_what_is_not_a_tls_level_or_half_credentials() -> None:
    with pytest.raises(UsageError, match='tls="maybe": not a TLS security level'):
        mailcarrier.send_sync(
            b"x", host="[127.0.0.1]:9", tls="maybe", sender="", recipients=["r@x.example"]
        )
    with pytest.raises(UsageError, match=r"a username .* and a password go together"):
        mailcarrier.send_sync(
            b"x", host="[127.0.0.1]:9", username="me", sender="", recipients=["r@x.example"]
        )


class _Auth(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, bytes, bytes]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        self.logins.append((mechanism, data.login, data.password))
        return AuthResult(success=data.password == b"p{a}ss: w", handled=False)


async def test_send_authenticates_over_verified_tls(tmp_path: Path) -> None:
    pki = Pki(trustme.CA(), tmp_path)
    handler = _Auth()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=pki.server_context(pki.leaf("mx.send.test")),
        require_starttls=True,
        authenticator=handler,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    config = make_settings(smtp_tls_CAfile=pki.cafile(), smtp_tls_verify_cert_match="mx.send.test")
    try:
        result = await mailcarrier.send(
            b"From: me@example.org\nTo: r@example.net\n\nx\n",
            host=f"[127.0.0.1]:{port}",
            username="me@example.org",
            password="p{a}ss: w",
            config=config,
        )
    finally:
        controller.stop()
    assert [r.status for r in result.recipients] == [DeliveryStatus.SENT], result
    assert handler.logins == [("PLAIN", b"me@example.org", b"p{a}ss: w")]
