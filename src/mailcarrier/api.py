"""The public Python API: `deliver()` one request without a queue, `Config` to configure it.

Async first; each function has a blocking twin with the ``_sync`` suffix that runs its own
event loop. Results are values (`DeliveryResult`), never exceptions for per-recipient
outcomes; exceptions are for bad arguments (`UsageError`) and bad configuration
(`ConfigError`). `submit()` puts a message into the durable queue (`queue_directory`) and
returns its queue ID once it is on disk; `mailcarrier run` delivers it. A log sink passed
in that is not one of log.py's gets its text made printable first (`printable_sink`), so
nothing a peer sends can forge a line in whatever it writes to. `submit()` raises
`DataError` for bad input (`MessageTooBigError` past `message_size_limit`) and
`TemporaryError` when the queue cannot be written (a full disk, a read-only directory):
never a bare OSError, and never with a partial message left queued. With
``event_log_file`` set, `submit()` appends the ``queued`` event record there and `deliver()`
a ``delivery`` record per recipient (eventlog.py), as the command line's do.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from mailcarrier.api_content import Content, as_content
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.autodetect import (
    ContentScan,
    MailSource,
    declare,
    scan_stream,
    spool_stream,
)
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.errors import DataError, UsageError
from mailcarrier.eventlog import with_events
from mailcarrier.log import LineSink, LogSink, printable_sink
from mailcarrier.notify import Notify
from mailcarrier.queue.ids import new_queue_id
from mailcarrier.queue.spool import Spool, open_spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.status import DeliveryResult

__all__ = ["Config", "deliver", "deliver_sync", "make_request", "submit", "submit_sync"]

Config = Settings


async def deliver(
    request: DeliveryRequest, *, config: Settings | None = None, log: LineSink | None = None
) -> DeliveryResult:
    """Deliver one request to its next hop now, without a queue (with event_log_file set,
    a record per recipient is appended there)."""
    settings = config if config is not None else Settings.defaults()
    sink = printable_sink(log, utf8=settings.params.smtputf8_enable)
    events = with_events(sink, settings)
    agent = DeliveryAgent(settings, log=sink if events is None else events)
    try:
        return await agent.deliver(request)
    finally:
        await agent.close_tlsrpt()  # its TLSRPT counts written (smtp_tlsrpt_enable)
        if events is not None:
            events.close()


def deliver_sync(
    request: DeliveryRequest, *, config: Settings | None = None, log: LineSink | None = None
) -> DeliveryResult:
    """Blocking twin of `deliver()`."""
    return asyncio.run(deliver(request, config=config, log=log))


def make_request(
    content: Content,
    *,
    sender: str,
    recipients: Iterable[str],
    nexthop: str,
    transport: str = "smtp",
    notify: str = "",
    ret: str = "",
    envid: str = "",
    queue_id: str = "",
    smtputf8: bool = False,
    config: Settings | None = None,
    probe: bool = False,
    requiretls: bool = False,
) -> DeliveryRequest:
    """Build a `DeliveryRequest` from plain values: `content` is the message as bytes, text
    (``str``: never a file name), a `pathlib.Path`, a binary file or an `email.message`
    object (api_content.py); bytes are wrapped in a stream.

    The content is scanned once, as ``sendmail`` and ``deliver`` scan it (delivery/
    autodetect.py): 8-bit content makes the request ``8bit``, and UTF-8 in the header or a
    UTF-8 local part sets its SMTPUTF8 flag when `config`'s smtputf8_autodetect_classes lists
    ``sendmail``; `smtputf8` asks for SMTPUTF8 whatever the content. A path is read once
    here; a seekable stream is read from where it is and put back there; a stream that can
    be read only once (a pipe) is copied into a temporary file, which the request then holds.

    `requiretls` asks for REQUIRETLS (RFC 8689): the message goes only over verified TLS to a
    securely found server that announces REQUIRETLS, as smtp_requiretls_policy enforces,
    else bounces with 5.7.30. A "TLS-Required: No" header is noted by the scan.

    `probe` makes an address probe (`DeliveryRequest.probe`, ``sendmail -bv``): MAIL and
    RCPT only, each recipient's verdict its RCPT reply. Its content is neither read nor
    scanned (pass ``b""``); a UTF-8 address still asks for SMTPUTF8.
    """
    settings = config if config is not None else Settings.defaults()
    recipients = tuple(recipients)
    content = as_content(content)
    if probe:
        # A probe sends no content: nothing is opened, read or scanned (an empty scan).
        body = io.BytesIO(content) if isinstance(content, bytes) else content
        scan = ContentScan(settings.params.header_size_limit).finish()
    else:
        body, scan = _scanned_content(content, settings.params.header_size_limit)
    declared = declare(
        settings, MailSource.SENDMAIL, scan, addresses=(sender, *recipients), explicit=smtputf8
    )
    flags = Notify.parse(notify) if notify else Notify.NONE
    return DeliveryRequest(
        queue_id=queue_id or new_queue_id(),
        nexthop=nexthop,
        sender=sender,
        recipients=tuple(Recipient(r, dsn_notify=flags) for r in recipients),
        content=body,
        transport=transport,
        encoding=declared.encoding,
        smtputf8=declared.smtputf8,
        dsn_ret=ret.upper(),
        dsn_envid=envid,
        probe=probe,
        requiretls=requiretls,
        tls_required_no=declared.tls_required_no,
    )


def _scanned_content(
    content: bytes | Path | BinaryIO, header_limit: int
) -> tuple[Path | BinaryIO, ContentScan]:
    """The request's content, and what `ContentScan` found in it."""
    if isinstance(content, bytes):
        scan = ContentScan(header_limit)
        scan.feed(content)
        return io.BytesIO(content), scan.finish()
    if isinstance(content, Path):
        path = content
        try:
            with open(path, "rb") as f:
                return path, scan_stream(f, header_limit)
        except OSError as exc:
            raise UsageError(f"cannot open message file {path}: {exc.strerror}") from exc
    if content.seekable():
        return content, scan_stream(content, header_limit)
    import tempfile

    spool = tempfile.TemporaryFile(prefix="mailcarrier-")  # noqa: SIM115 - the request's now
    try:
        scan = spool_stream(content, spool, header_limit)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, scan


def submit_sync(
    content: Content,
    *,
    sender: str,
    recipients: Iterable[str],
    config: Settings | None = None,
    notify: str = "",
    ret: str = "",
    envid: str = "",
    log: LineSink | None = None,
    requiretls: bool = False,
) -> str:
    """Blocking twin of `submit()`."""
    settings = config if config is not None else Settings.defaults()
    sink = printable_sink(log, utf8=settings.params.smtputf8_enable)
    options = SubmitOptions(
        sender=sender,
        recipients=tuple(recipients),
        ignore_dots=True,
        notify=Notify.parse(notify) if notify else Notify.NONE,
        ret=ret.upper(),
        envid=envid,
        requiretls=requiretls,
    )
    spool = open_spool(settings, log=sink)
    content = as_content(content)
    # event_log_file: the queued event's record goes there, the lines to `log` as before.
    events = with_events(sink, settings)
    try:
        return _submit(content, options, settings, spool, sink if events is None else events)
    finally:
        if events is not None:
            events.close()


def _submit(
    content: bytes | Path | BinaryIO,
    options: SubmitOptions,
    settings: Settings,
    spool: Spool,
    log: LogSink,
) -> str:
    if isinstance(content, bytes):
        return submit_stream(io.BytesIO(content), options, settings=settings, spool=spool, log=log)
    if isinstance(content, Path):
        try:
            f = open(content, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise DataError(f"cannot open message file {content}: {exc.strerror}") from exc
        with f:
            return submit_stream(f, options, settings=settings, spool=spool, log=log)
    return submit_stream(content, options, settings=settings, spool=spool, log=log)


async def submit(
    content: Content,
    *,
    sender: str,
    recipients: Iterable[str],
    config: Settings | None = None,
    notify: str = "",
    ret: str = "",
    envid: str = "",
    log: LineSink | None = None,
    requiretls: bool = False,
) -> str:
    """Queue a message durably (write, fsync, rename, fsync directory); return its queue ID.

    `content` is bytes, text (``str``), a `pathlib.Path`, a binary file object (read in
    bounded chunks) or an `email.message` object (api_content.py). Bad
    addresses or headers raise `DataError`, a message larger than `message_size_limit`
    raises `MessageTooBigError` (a `DataError`), and a queue that cannot be written raises
    `TemporaryError` (its `path` and `errno` say which file and why); none queues anything.
    `requiretls` asks for REQUIRETLS (RFC 8689, see `make_request`), kept with the message.
    """
    return await asyncio.to_thread(
        submit_sync,
        content,
        sender=sender,
        recipients=list(recipients),
        config=config,
        notify=notify,
        ret=ret,
        envid=envid,
        log=log,
        requiretls=requiretls,
    )
