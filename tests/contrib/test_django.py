"""mailcarrier.contrib.django.EmailBackend with Django's own mail API (send_mail,
EmailMessage, get_connection, override_settings), against aiosmtpd on loopback: delivered
now, or queued; the count Django expects; Bcc only in the envelope; failures raise unless
fail_silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("django")

from django.conf import settings
from django.core import mail
from django.test.utils import override_settings

from mailcarrier import MailcarrierError
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND="mailcarrier.contrib.django.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        DEFAULT_CHARSET="utf-8",
    )


def _connection(server: AiosmtpdServer, **kwargs: object) -> object:
    return mail.get_connection(port=server.port, **kwargs)


def test_send_mail_delivers_now(smtp_server: AiosmtpdServer) -> None:
    sent = mail.send_mail(
        "Grüße", "Hallo.\n", "a@example.org", ["b@example.net"],
        connection=_connection(smtp_server),
    )  # fmt: skip
    assert sent == 1
    (received,) = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos) == ("a@example.org", ["b@example.net"])
    assert b"Subject: =?utf-8?b?R3LDvMOfZQ==?=" in received.content


def test_bcc_goes_only_into_the_envelope(smtp_server: AiosmtpdServer) -> None:
    message = mail.EmailMessage(
        "s", "body", "a@example.org", ["to@example.net"], bcc=["hidden@example.net"],
        cc=["cc@example.net"], connection=_connection(smtp_server),
    )  # fmt: skip
    assert message.send() == 1
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["to@example.net", "cc@example.net", "hidden@example.net"]
    assert b"hidden@example.net" not in received.content


def test_several_messages_count_as_django_counts(smtp_server: AiosmtpdServer) -> None:
    messages = [
        mail.EmailMessage("one", "x", "a@example.org", ["b@example.net"]),
        mail.EmailMessage("none", "x", "a@example.org", []),  # no recipient: not sent
        mail.EmailMessage("two", "x", "a@example.org", ["c@example.net"]),
    ]
    assert _connection(smtp_server).send_messages(messages) == 2  # type: ignore[attr-defined]
    assert len(smtp_server.messages) == 2


def test_a_refused_message_raises_unless_silent() -> None:
    server = AiosmtpdServer(RecordingHandler(reject={"b@example.net": "550 5.1.1 no such user"}))
    server.start()
    try:
        message = mail.EmailMessage("s", "x", "a@example.org", ["b@example.net"])
        with pytest.raises(MailcarrierError, match=r"b@example.net: host .* said: 550 5.1.1"):
            _connection(server).send_messages([message])  # type: ignore[attr-defined]
        quiet = _connection(server, fail_silently=True)
        assert quiet.send_messages([message]) == 0  # type: ignore[attr-defined]
    finally:
        server.stop()


def test_queue_mode_submits_to_the_durable_queue(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    (tmp_path / "main.cf").write_text(f"queue_directory = {queue}\n")
    with override_settings(MAILCARRIER_MODE="queue", MAILCARRIER_CONFIG_DIR=str(tmp_path)):
        assert mail.send_mail("q", "x", "a@example.org", ["b@example.net"]) == 1
    assert len(os.listdir(queue / "incoming")) == 1


def test_a_bad_mode_is_one_clear_error() -> None:
    from mailcarrier import UsageError

    with (
        override_settings(MAILCARRIER_MODE="later"),
        pytest.raises(UsageError, match="MAILCARRIER_MODE"),
    ):
        mail.get_connection()
