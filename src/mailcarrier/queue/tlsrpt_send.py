"""Sending the TLSRPT reports of a day (RFC 8460 5): by mail through our own queue, or by POST.

`send_day(settings, spool, day)` sends each report of `day` (queue/tlsrpt.py) to every
``rua`` URI of its domain:

* ``mailto:``: a ``multipart/report; report-type="tlsrpt"`` message (5.3: a short text part
  and the gzip'd report as ``application/tlsrpt+gzip`` with the 5.3 file name; Subject,
  ``TLS-Report-Domain`` and ``TLS-Report-Submitter`` headers), with ``TLS-Required: No``
  (RFC 8689 4.3: the report's own delivery must not need the TLS it reports on; the
  REQUIRETLS code lowers the policy for it), DKIM-signed with dkimpy (RFC 8460 3: d= is
  ``tlsrpt_dkim_domain``, s= ``tlsrpt_dkim_selector``, the key ``tlsrpt_dkim_private_key_file``),
  queued with queue/submit.py's `submit_stream` from ``tlsrpt_contact_info``. Without a
  selector and key no report goes by mail (a warning says so).
* ``https:``: a POST of the gzip'd report with ``Content-Type: application/tlsrpt+gzip``
  (5.2), over verified TLS (system CAs, or ``smtp_tls_CAfile``), the host's addresses from
  our resolver; any 2xx is success.

A day is sent once: its name is then written to ``$data_directory/tlsrpt.sent``
(durable.write_atomically) and `due_day()` says whether yesterday still has to go; the
once-a-day trigger of ``mailcarrier run`` is `daily_reports()` (hourly checks, so a
daemon started late or stopped over midnight still sends), run beside the daemon by
`with_daily_reports()`. The counts of a sent day are kept (``tlsrpt show --date``). A
failure is one log line and never stops the other reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.policy
import io
import ipaddress
import sqlite3
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.durable import write_atomically
from mailcarrier.errors import MailcarrierError
from mailcarrier.log import LogSink, NullLog
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.queue.tlsrpt import DayReport, day_reports, default_resolver, yesterday
from mailcarrier.routing.resolver import AddressRecord, DnsOutcome, Resolver
from mailcarrier.tls.tlsrpt_report import (
    MEDIA_TYPE,
    gzip_report,
    report_filename,
    report_subject,
)

__all__ = [
    "SENT_FILE",
    "daily_reports",
    "due_day",
    "post_report",
    "report_message",
    "send_day",
    "with_daily_reports",
]

SENT_FILE: Final = "tlsrpt.sent"
_SERVICE: Final = "tlsrpt"
_SIGNED: Final = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"tls-report-domain",
    b"tls-report-submitter",
    b"tls-required",
)


def report_message(item: DayReport, recipient: str, settings: Settings) -> bytes:
    """The report as a message to `recipient` (RFC 8460 5.3), DKIM-signed when a key is set."""
    params = settings.params
    submitter = params.tlsrpt_dkim_domain
    identifier = str(item.report["report-id"])
    message = MIMEMultipart("report", report_type="tlsrpt", policy=email.policy.SMTP)
    message["From"] = params.tlsrpt_contact_info
    message["To"] = recipient
    message["Subject"] = report_subject(submitter, item.domain, identifier)
    message["Date"] = format_datetime(_now(), usegmt=True)
    message["Message-ID"] = make_msgid(domain=submitter or None)
    message["TLS-Report-Domain"] = item.domain
    message["TLS-Report-Submitter"] = submitter
    message["TLS-Required"] = "No"
    text = f"This is an aggregate TLS report from {params.tlsrpt_organization_name}.\n"
    message.attach(MIMEText(text, "plain", "utf-8", policy=email.policy.SMTP))
    attachment = MIMEApplication(gzip_report(item.report), "tlsrpt+gzip", policy=email.policy.SMTP)
    name = report_filename(submitter, item.domain, item.day)
    attachment.add_header("Content-Disposition", "attachment", filename=name)
    message.attach(attachment)
    data = message.as_bytes(policy=email.policy.SMTP)
    return _dkim_sign(data, settings)


def _dkim_sign(data: bytes, settings: Settings) -> bytes:
    params = settings.params
    import dkim  # the tlsrpt extra; loaded only when a report goes by mail

    try:
        key = Path(params.tlsrpt_dkim_private_key_file).read_bytes()
    except OSError as exc:
        raise MailcarrierError(
            f"tlsrpt_dkim_private_key_file: cannot read {exc.filename}: {exc.strerror}"
        ) from None
    algorithm = b"ed25519-sha256" if b"BEGIN PRIVATE KEY" in key and _ed25519(key) else None
    try:
        signature = dkim.sign(
            data,
            params.tlsrpt_dkim_selector.encode(),
            params.tlsrpt_dkim_domain.encode(),
            key,
            include_headers=list(_SIGNED),
            **({"signature_algorithm": algorithm} if algorithm else {}),
        )
    except dkim.DKIMException as exc:
        raise MailcarrierError(f"cannot DKIM-sign the TLSRPT report: {exc}") from None
    return bytes(signature) + data


def _ed25519(pem: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return isinstance(load_pem_private_key(pem, None), Ed25519PrivateKey)
    except (ValueError, TypeError):
        return False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = settings.params.smtp_tls_CAfile or None
    capath = settings.params.smtp_tls_CApath or None
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _addresses(resolver: Resolver, host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        answer = await resolver.resolve(host, rdtype)
        if answer.outcome is DnsOutcome.OK:
            found += [r.address for r in answer.records if isinstance(r, AddressRecord)]
    return found


async def post_report(
    url: str, body: bytes, settings: Settings, resolver: Resolver, timeout: float = 60.0
) -> str:
    """POST `body` to `url` (RFC 8460 5.2); "" on a 2xx answer, else what went wrong."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    addresses = await _addresses(resolver, host)
    if not addresses:
        return f"{url}: no address for {host}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: {MEDIA_TYPE}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    problem = ""
    for address in addresses:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=_ssl_context(settings), server_hostname=host
                )
                try:
                    writer.write(request)
                    await writer.drain()
                    status = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            problem = f"{url}: {address}: {exc or type(exc).__name__}"
            continue
        fields = status.decode("latin-1").split()
        if len(fields) >= 2 and fields[1].startswith("2"):
            return ""
        return f"{url}: {status.decode('latin-1').strip() or 'no answer'}"
    return problem


def _mail(item: DayReport, uri: str, settings: Settings, spool: Spool, log: LogSink) -> str:
    params = settings.params
    if not (params.tlsrpt_dkim_selector and params.tlsrpt_dkim_private_key_file):
        return f"{uri}: not sent by mail: tlsrpt_dkim_selector and key file are not set"
    recipient = urllib.parse.unquote(uri.split(":", 1)[1].split("?", 1)[0])
    data = report_message(item, recipient, settings)
    options = SubmitOptions(sender=params.tlsrpt_contact_info, recipients=(recipient,))
    queue_id = submit_stream(io.BytesIO(data), options, settings=settings, spool=spool, log=log)
    log.info(_SERVICE, f"{queue_id}: TLS report for {item.domain} of {item.day} to {recipient}")
    return ""


async def send_day(
    settings: Settings,
    spool: Spool,
    day: str,
    *,
    log: LogSink | None = None,
    resolver: Resolver | None = None,
) -> int:
    """Send every report of `day`; the number of reports sent (to at least one URI)."""
    log = log if log is not None else NullLog()
    resolver = resolver if resolver is not None else default_resolver(settings)
    sent = 0
    for item in await day_reports(settings, day, resolver=resolver):
        ok = False
        for uri in item.uris:
            try:
                if uri.lower().startswith("mailto:"):
                    problem = _mail(item, uri, settings, spool, log)
                else:
                    problem = await post_report(uri, gzip_report(item.report), settings, resolver)
                    if not problem:
                        log.info(_SERVICE, f"TLS report for {item.domain} of {day} to {uri}")
            except MailcarrierError as exc:
                problem = f"{uri}: {exc}"
            if problem:
                log.warning(_SERVICE, f"TLS report for {item.domain} of {day}: {problem}")
            ok = ok or not problem
        sent += ok
    write_atomically(Path(settings.params.data_directory) / SENT_FILE, f"{day}\n".encode())
    return sent


def due_day(settings: Settings, now: datetime.datetime | None = None) -> str | None:
    """Yesterday (UTC) when its reports have not been sent yet, else None."""
    day = yesterday(now)
    try:
        done = (Path(settings.params.data_directory) / SENT_FILE).read_text().strip()
    except OSError:
        done = ""
    return None if done >= day else day


async def daily_reports(
    settings: Callable[[], Settings], spool: Spool, log: LogSink, *, every: float = 3600.0
) -> None:
    """The once-a-day trigger of ``mailcarrier run``: every `every` seconds, when
    ``smtp_tlsrpt_enable`` is on (`settings()`: the current configuration, reloads included)
    and yesterday's reports are due, send them. Runs until cancelled."""
    while True:
        current = settings()
        day = due_day(current) if current.params.smtp_tlsrpt_enable else None
        if day is not None:
            try:
                await send_day(current, spool, day, log=log)
            except (OSError, sqlite3.Error, MailcarrierError) as exc:
                log.warning(_SERVICE, f"TLS reports of {day} not sent: {exc}")
        await asyncio.sleep(every)


async def with_daily_reports(
    main: Awaitable[None], settings: Callable[[], Settings], spool: Spool, log: LogSink
) -> None:
    """Run `main` (the daemon) with `daily_reports()` beside it, stopped when `main` ends."""
    reports = asyncio.create_task(daily_reports(settings, spool, log))
    try:
        await main
    finally:
        reports.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reports
