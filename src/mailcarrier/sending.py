"""`mailcarrier.send()`: the commonest case in one call, as smtplib users expect it.

    result = await mailcarrier.send(message, host="[smtp.example.org]:587",
                                    username="me", password="secret", tls="verify")
    result = mailcarrier.send_sync(message, host="mx.example.net")

`message` is anything api_content.py takes (bytes, text, a `pathlib.Path`, a binary file,
an `email.message.EmailMessage`). `host` is a next hop in smtp(8)'s syntax: ``[name]:port``
goes to that host, a bare domain through its MX records. `tls` is the TLS security level
(smtp_tls_security_level: ``verify`` by default, so that a password never goes to a server
whose certificate does not check; ``may``, ``encrypt``, ``dane``, ``secure``, ``none``).
`username`/`password` turn AUTH on with those credentials (kept in memory, never written to
a table file); as in Postfix, plaintext mechanisms are used only over TLS. With no `sender`
or `recipients` the envelope comes from the headers as with ``sendmail -t`` (the Bcc header
is then removed). Anything else of the configuration comes from `config` (default:
`Settings.defaults()`). Returns the per-recipient `DeliveryResult`, as `deliver()` does;
bad arguments are `UsageError`. Built on api.py's `make_request` and `deliver`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from mailcarrier.api import deliver, make_request
from mailcarrier.api_content import Content, as_content, envelope_from_headers
from mailcarrier.config.settings import Settings
from mailcarrier.errors import UsageError
from mailcarrier.log import LineSink
from mailcarrier.status import DeliveryResult
from mailcarrier.tables.maps import Maps
from mailcarrier.tables.simple import StaticTable
from mailcarrier.tls.levels import parse_level

__all__ = ["send", "send_sync"]

# What smtp_sasl_password_maps says (no secret in any text a log or `conf` could show).
_SPEC = "static:mailcarrier.send"


def _settings(
    config: Settings | None, tls: str, username: str | None, password: str | None
) -> Settings:
    level = parse_level(tls)
    if level is None:
        raise UsageError(f'send: tls="{tls}": not a TLS security level (verify, may, ...)')
    overrides = {"smtp_tls_security_level": level.value}
    base = config if config is not None else Settings.defaults()
    if username is None and password is None:
        return base.with_overrides(overrides)
    if not username or password is None or ":" in username:
        raise UsageError("send: a username (without ':') and a password go together")
    overrides |= {
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": _SPEC,  # answered by the table below
        # Postfix's defaults refuse plaintext mechanisms everywhere; over TLS they are
        # what a submission server offers.
        "smtp_sasl_tls_security_options": "noanonymous",
    }
    secret = StaticTable(
        "static:(given to mailcarrier.send)", f"{username}:{password}", literal=True
    )
    maps = Maps([secret], "smtp_sasl_password_maps")
    return base.with_overrides(overrides).with_tables({"smtp_sasl_password_maps": maps})


async def send(
    message: Content,
    *,
    host: str,
    username: str | None = None,
    password: str | None = None,
    tls: str = "verify",
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    config: Settings | None = None,
    log: LineSink | None = None,
) -> DeliveryResult:
    """Deliver `message` to `host` now (see the module text)."""
    if not host.strip():
        raise UsageError("send: host is empty")
    settings = _settings(config, tls, username, password)
    content = as_content(message)
    wanted = list(recipients) if recipients is not None else None
    if sender is None or wanted is None:
        if not isinstance(content, bytes):
            raise UsageError(
                "send: sender and recipients from the headers need the message in memory"
            )
        found_sender, found, content = envelope_from_headers(content)
        sender = found_sender if sender is None else sender
        wanted = found if wanted is None else wanted
    request = make_request(content, sender=sender, recipients=wanted, nexthop=host, config=settings)
    return await deliver(request, config=settings, log=log)


def send_sync(
    message: Content,
    *,
    host: str,
    username: str | None = None,
    password: str | None = None,
    tls: str = "verify",
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    config: Settings | None = None,
    log: LineSink | None = None,
) -> DeliveryResult:
    """Blocking twin of `send()`."""
    return asyncio.run(
        send(
            message,
            host=host,
            username=username,
            password=password,
            tls=tls,
            sender=sender,
            recipients=recipients,
            config=config,
            log=log,
        )
    )
