"""Sending the TLSRPT reports of a day (RFC 8460 5): by mail, or by POST.

`send_day(settings, mailer, day)` sends each report of `day` (queue/tlsrpt.py) to every
``rua`` URI of its domain:

* ``mailto:``: a ``multipart/report; report-type="tlsrpt"`` message (5.3: a short text part
  and the gzip'd report as ``application/tlsrpt+gzip`` with the 5.3 file name; Subject,
  ``TLS-Report-Domain`` and ``TLS-Report-Submitter`` headers), with ``TLS-Required: No``
  (RFC 8689 4.3: the report's own delivery must not need the TLS it reports on; the
  REQUIRETLS code lowers the policy for it), DKIM-signed with dkimpy (RFC 8460 3: d= is
  ``tlsrpt_dkim_domain``, s= ``tlsrpt_dkim_selector``, the key ``tlsrpt_dkim_private_key_file``),
  from ``tlsrpt_contact_info``, handed to a `Mailer`: our own queue (`queue_mailer`, with
  queue/submit.py's `submit_stream`; a `Spool` stands for it), or in Postfix-native mode
  Postfix's sendmail (postfix/sendmail.py). Either queue retries it. Without a selector and
  key no report goes by mail (a warning says so).
* ``https:``: a POST (tlsrpt_post.py); one that failed in a way that may pass (refused,
  timed out, a 5xx) is kept in ``$data_directory`` and retried with a backoff for up to 24
  hours (RFC 8460 5.3), then given up with one line.

A day is sent once: its name is then written to ``$data_directory/tlsrpt.sent``
(durable.write_atomically) and `due_day()` says whether yesterday still has to go.
`send_due()` is one round: the POSTs due for a retry, then yesterday's reports if due (or
the day asked for); ``mailcarrier tlsrpt send`` runs one (from cron, in Postfix-native
mode), and ``mailcarrier run`` runs them in `daily_reports()` (hourly checks, so a daemon
started late or stopped over midnight still sends, and earlier when a retry is due), beside
the daemon by `with_daily_reports()`. The counts of a sent day are kept (``tlsrpt show
--date``). A failure is one log line and never stops the other reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.policy
import io
import sqlite3
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Final, Protocol

from mailcarrier.config.settings import Settings
from mailcarrier.durable import write_atomically
from mailcarrier.errors import MailcarrierError
from mailcarrier.log import LogSink, NullLog
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.queue.tlsrpt import DayReport, day_reports, default_resolver, yesterday
from mailcarrier.queue.tlsrpt_post import POST_TIMEOUT, PendingPosts, post_report, retry_due
from mailcarrier.routing.resolver import Resolver
from mailcarrier.status import EX_OK, EX_TEMPFAIL
from mailcarrier.tls.tlsrpt_report import (
    gzip_report,
    report_filename,
    report_subject,
)

__all__ = [
    "SENT_FILE",
    "Mailer",
    "daily_reports",
    "due_day",
    "post_report",
    "queue_mailer",
    "report_message",
    "send_day",
    "send_due",
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


class Mailer(Protocol):
    """Takes a report message for one recipient from `sender`; answers its queue id (""
    when it has none), raises `MailcarrierError` (one line) when it cannot."""

    def __call__(self, data: bytes, sender: str, recipient: str, /) -> str: ...


def queue_mailer(settings: Settings, spool: Spool, log: LogSink) -> Mailer:
    """Reports by mail through our own queue (queue/submit.py), which retries them."""

    def submit(data: bytes, sender: str, recipient: str) -> str:
        options = SubmitOptions(sender=sender, recipients=(recipient,))
        return submit_stream(io.BytesIO(data), options, settings=settings, spool=spool, log=log)

    return submit


def _mail(item: DayReport, uri: str, settings: Settings, mailer: Mailer, log: LogSink) -> str:
    params = settings.params
    if not (params.tlsrpt_dkim_selector and params.tlsrpt_dkim_private_key_file):
        return f"{uri}: not sent by mail: tlsrpt_dkim_selector and key file are not set"
    recipient = urllib.parse.unquote(uri.split(":", 1)[1].split("?", 1)[0])
    data = report_message(item, recipient, settings)
    queue_id = mailer(data, params.tlsrpt_contact_info, recipient)
    prefix = f"{queue_id}: " if queue_id else ""
    log.info(_SERVICE, f"{prefix}TLS report for {item.domain} of {item.day} to {recipient}")
    return ""


async def _post(
    item: DayReport,
    uri: str,
    settings: Settings,
    resolver: Resolver,
    log: LogSink,
    *,
    now: Callable[[], float],
    timeout: float,
) -> str:
    """POST the report; a failure that may pass is kept for a retry (tlsrpt_post.py)."""
    body = gzip_report(item.report)
    result = await post_report(uri, body, settings, resolver, timeout)
    if not result.problem:
        log.info(_SERVICE, f"TLS report for {item.domain} of {item.day} to {uri}")
        return ""
    if not result.retry:
        return result.problem
    pending = PendingPosts(Path(settings.params.data_directory))
    try:
        pending.add(uri, item.domain, item.day, body, now(), result.problem)
    except OSError as exc:  # the day is still marked sent: no report goes twice by mail
        return f"{result.problem} (not kept for a retry: {exc})"
    return f"{result.problem} (will retry)"


async def send_day(
    settings: Settings,
    mailer: Mailer | Spool,
    day: str,
    *,
    log: LogSink | None = None,
    resolver: Resolver | None = None,
    now: Callable[[], float] = time.time,
    timeout: float = POST_TIMEOUT,
) -> int:
    """Send every report of `day`; the number of reports sent (to at least one URI, a
    POST kept for a retry not counted). `mailer` takes the reports by mail: a spool
    (our own queue) or another `Mailer` (Postfix's sendmail, postfix/sendmail.py)."""
    log = log if log is not None else NullLog()
    resolver = resolver if resolver is not None else default_resolver(settings)
    if isinstance(mailer, Spool):
        mailer = queue_mailer(settings, mailer, log)
    sent = 0
    for item in await day_reports(settings, day, resolver=resolver):
        ok = False
        for uri in item.uris:
            try:
                if uri.lower().startswith("mailto:"):
                    problem = _mail(item, uri, settings, mailer, log)
                else:
                    problem = await _post(
                        item, uri, settings, resolver, log, now=now, timeout=timeout
                    )
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
        wait = every
        if current.params.smtp_tlsrpt_enable:
            await send_due(current, spool, log)
            # Wake for the next retry of a POST when it comes before the next check.
            due = PendingPosts(Path(current.params.data_directory)).next_due()
            if due is not None:
                wait = min(every, max(1.0, due - time.time()))
        await asyncio.sleep(wait)


async def send_due(
    settings: Settings,
    mailer: Mailer | Spool,
    log: LogSink,
    *,
    day: str | None = None,
    resolver: Resolver | None = None,
    now: Callable[[], float] = time.time,
    timeout: float = POST_TIMEOUT,
) -> int:
    """One round: the POSTs due for a retry, then the reports of `day` (default: yesterday,
    unless they were sent). 0 when all went, 75 (EX_TEMPFAIL) when something failed in a
    way that stops the round (a store or file that cannot be read or written)."""
    resolver = resolver if resolver is not None else default_resolver(settings)
    try:
        await retry_due(settings, resolver, log, now=now, timeout=timeout)
    except OSError as exc:
        log.warning(_SERVICE, f"TLS reports to retry not tried: {exc}")
        return EX_TEMPFAIL
    day = day if day is not None else due_day(settings)
    if day is None:
        return EX_OK
    try:
        await send_day(settings, mailer, day, log=log, resolver=resolver, now=now, timeout=timeout)
    except (OSError, sqlite3.Error, MailcarrierError) as exc:
        log.warning(_SERVICE, f"TLS reports of {day} not sent: {exc}")
        return EX_TEMPFAIL
    return EX_OK


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
