"""A Django email backend: ``EMAIL_BACKEND = "mailcarrier.contrib.django.EmailBackend"``.

Configured by Django's own settings, as its SMTP backend is: ``EMAIL_HOST`` and
``EMAIL_PORT`` (the server: ``[EMAIL_HOST]:EMAIL_PORT``), ``EMAIL_HOST_USER`` and
``EMAIL_HOST_PASSWORD`` (AUTH when both are set), ``EMAIL_USE_TLS`` (STARTTLS with the
certificate verified, as Django's ``ssl.create_default_context()`` does: mailcarrier's
``verify``), ``EMAIL_USE_SSL`` (implicit TLS, verified: smtp_tls_wrappermode), neither
(opportunistic TLS, ``may``, where Django would send in plaintext; plaintext AUTH is then
refused, as Postfix refuses it), ``EMAIL_TIMEOUT`` (seconds for each SMTP stage). And by its
own: ``MAILCARRIER_MODE`` ``"deliver"`` (the default: each message is delivered now, through
mailcarrier.send) or ``"queue"`` (each message is submitted to the durable queue, delivered
by ``mailcarrier run``), ``MAILCARRIER_CONFIG_DIR`` (main.cf for everything else; the
``queue_directory`` of the queue mode). `send_messages()` returns how many messages were
sent (delivered to at least one recipient, or queued), as Django expects; a message whose
every recipient failed raises `MailcarrierError` unless ``fail_silently``. The Postfix lines
go to the ``mailcarrier`` loggers (log.py's LoggerLog). Django is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings as django_settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage, sanitize_address

from mailcarrier.api import submit_sync
from mailcarrier.config.settings import Settings
from mailcarrier.errors import MailcarrierError, UsageError
from mailcarrier.sending import send_sync
from mailcarrier.status import DeliveryStatus

__all__ = ["EmailBackend"]

_TIMEOUTS = ("connect", "helo", "mail", "rcpt", "data_init", "data_xfer", "data_done")


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]
    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        s = django_settings
        self.host = host or s.EMAIL_HOST
        self.port = port or s.EMAIL_PORT
        self.username = s.EMAIL_HOST_USER if username is None else username
        self.password = s.EMAIL_HOST_PASSWORD if password is None else password
        self.use_tls = s.EMAIL_USE_TLS if use_tls is None else use_tls
        self.use_ssl = s.EMAIL_USE_SSL if use_ssl is None else use_ssl
        self.timeout = s.EMAIL_TIMEOUT if timeout is None else timeout
        if self.use_tls and self.use_ssl:
            raise ValueError("EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive")
        self.mode = getattr(s, "MAILCARRIER_MODE", "deliver")
        if self.mode not in ("deliver", "queue"):
            raise UsageError(f'MAILCARRIER_MODE: "{self.mode}": want "deliver" or "queue"')
        self.config_dir = getattr(s, "MAILCARRIER_CONFIG_DIR", None)

    def _settings(self) -> Settings:
        base = Settings.load(self.config_dir) if self.config_dir else Settings.defaults()
        overrides: dict[str, str] = {}
        if self.use_ssl:
            overrides["smtp_tls_wrappermode"] = "yes"
        if self.timeout:
            seconds = f"{max(1, round(float(self.timeout)))}s"
            overrides |= {f"smtp_{stage}_timeout": seconds for stage in _TIMEOUTS}
        return base.with_overrides(overrides) if overrides else base

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        config = self._settings()
        sent = 0
        for message in email_messages:
            try:
                sent += self._send(message, config)
            except MailcarrierError:
                if not self.fail_silently:
                    raise
        return sent

    def _send(self, message: EmailMessage, config: Settings) -> int:
        if not message.recipients():
            return 0
        encoding = message.encoding or django_settings.DEFAULT_CHARSET
        sender = sanitize_address(message.from_email, encoding)
        recipients = [sanitize_address(a, encoding) for a in message.recipients()]
        content = message.message().as_bytes(linesep="\r\n")
        if self.mode == "queue":
            submit_sync(content, sender=sender, recipients=recipients, config=config)
            return 1
        login = self.username and self.password
        result = send_sync(
            content,
            host=f"[{self.host}]:{self.port}",
            username=self.username if login else None,
            password=self.password if login else None,
            tls="verify" if (self.use_tls or self.use_ssl) else "may",
            sender=sender,
            recipients=recipients,
            config=config,
        )
        if any(r.status is DeliveryStatus.SENT for r in result.recipients):
            return 1
        failed = "; ".join(f"{r.address}: {r.diagnostic}" for r in result.recipients)
        raise MailcarrierError(f"message not sent: {failed}")
