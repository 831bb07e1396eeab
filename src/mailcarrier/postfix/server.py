"""One qmgr(8) connection: the delivery request in, the delivery, the reports, the final
reply out (Postfix's deliver_request_read / deliver_request_done around smtp(8)'s work).

`NativeServer.handle(reader, writer)` speaks first (the protocol hello), reads the request's
common attribute list and one list per recipient, opens the queue file and delivers through
the shared `DeliveryAgent` (its connection cache serves every connection of the process).
Each recipient's verdict is reported as it is made (report.py: bounce/defer/trace/verify,
the mark in the queue file, the log line); the final reply is 0 only when every recipient
was finished, else -1, with the hop status when the destination itself failed. Just before
that reply it calls `release()` (the process's place for this connection is free: qmgr
connects for its next delivery the moment it has the reply); then it waits for qmgr to close.

What can go wrong never takes the process down and never finishes a recipient that was not
delivered or bounced: a qmgr that connects and goes away gets nothing; a malformed request
is logged and the connection closed with no reply (qmgr then defers the message as after an
agent crash, as with Postfix); a missing queue file is a deferral with no DSN, as
deliver_request.c replies; a request mailcarrier will not send (a bad address) defers its
recipients with the reason; any other failure replies defer. Neighbours: request.py (the
attributes), queuefile.py (the file), report.py, master.py (the process around this).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.errors import MailcarrierError
from mailcarrier.log import LogSink
from mailcarrier.postfix.attr import AttrError, AttrList, AttrParser
from mailcarrier.postfix.queuefile import QueueFile, QueueFileError, open_queue_file
from mailcarrier.postfix.reply import HELLO, Dsn, final_reply
from mailcarrier.postfix.report import Reporter
from mailcarrier.postfix.request import (
    NativeRecipient,
    NativeRequest,
    RequestRefused,
    parse_common,
    parse_recipient,
    to_delivery_request,
    trace_only,
)
from mailcarrier.postfix.services import StatusServices
from mailcarrier.status import DeliveryResult, DeliveryStatus, RecipientStatus

__all__ = ["NativeServer", "ServerOptions"]

_READ: Final = 65536


class Agent(Protocol):
    """What the server needs of delivery/agent.py's `DeliveryAgent`."""

    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
        log_lines: bool = True,
    ) -> DeliveryResult: ...


@dataclass(frozen=True, slots=True)
class ServerOptions:
    transport: str  # "smtp" or "lmtp": the personality
    process: str  # the log's process name (smtp, lmtp)
    hash_queue_names: tuple[str, ...] = ("deferred", "defer")
    hash_queue_depth: int = 1
    ipc_timeout: float = 3600.0
    max_string: int = 4 * 2048  # 4 x line_length_limit, as attr_scan0
    verify_negative_cache: bool = True
    resolution: int = 2


class _Closed(Exception):
    """qmgr closed the connection before the request was complete."""


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, options: ServerOptions
    ) -> None:
        self.reader, self.writer, self.options = reader, writer, options
        self.parser = AttrParser(max_string=options.max_string)

    async def read_list(self) -> AttrList:
        async with asyncio.timeout(self.options.ipc_timeout):
            while True:
                pairs = self.parser.next_list()
                if pairs is not None:
                    return pairs
                data = await self.reader.read(_READ)
                if not data:
                    if self.parser.idle:
                        raise _Closed
                    self.parser.feed(b"")
                    self.parser.next_list()  # raises: the list was cut short
                    raise _Closed
                self.parser.feed(data)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.options.ipc_timeout):
            await self.writer.drain()

    async def wait_close(self) -> None:
        """deliver_request_final: qmgr closes first; what it might still send is ignored."""
        async with asyncio.timeout(self.options.ipc_timeout):
            while await self.reader.read(_READ):
                pass


class NativeServer:
    """Serves qmgr connections for one process; `agent` is shared by all of them.
    `release()` is called once a connection's work is done, before its final reply
    (master.py's `MasterChild.release`: the place it held is free for the next one)."""

    def __init__(
        self,
        agent: Agent,
        services: StatusServices,
        log: LogSink,
        options: ServerOptions,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.agent, self.services, self.log, self.options = agent, services, log, options
        self.release = release or _nothing

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer, self.options)
        try:
            await self._serve(conn)
        except (_Closed, ConnectionError, BrokenPipeError):
            pass  # a qmgr that went away (often a stale one after a reload): nothing to say
        except (AttrError, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else str(exc)
            self.log.warning(self.options.process, f"bad delivery request: {reason}")
        except OSError as exc:
            self.log.warning(self.options.process, f"qmgr connection: {exc.strerror or exc}")
        except Exception as exc:  # one request's bug must not end the others' deliveries
            self.log.warning(
                self.options.process,
                f"delivery request abandoned: {type(exc).__name__}: {exc}",
            )
        finally:
            writer.close()

    async def _serve(self, conn: _Connection) -> None:
        await conn.write(HELLO)
        try:
            common = await conn.read_list()
        except _Closed:
            return  # connected and closed without a request: no reply
        partial, count = parse_common(common)
        recipients = [parse_recipient(await conn.read_list()) for _ in range(count)]
        request = partial.with_recipients(recipients)
        status, hop = await self._deliver(request)
        # qmgr connects for its next delivery as soon as it has this reply.
        self.release()
        await conn.write(final_reply(hop, status))
        await conn.wait_close()

    async def _deliver(self, request: NativeRequest) -> tuple[int, Dsn | None]:
        """Deliver and report; the request's final status and hop status."""
        options = self.options
        try:
            queue_file = open_queue_file(
                request.queue_name,
                request.queue_id,
                hash_queue_names=options.hash_queue_names,
                hash_queue_depth=options.hash_queue_depth,
            )
        except QueueFileError as exc:
            # Missing (deliver_request.c replies defer), or not to be opened or locked
            # (Postfix's agent exits; the message stays queued either way).
            self.log.warning(options.process, str(exc))
            return -1, None
        try:
            return await self._deliver_file(request, queue_file)
        finally:
            queue_file.close()

    async def _deliver_file(
        self, request: NativeRequest, queue_file: QueueFile
    ) -> tuple[int, Dsn | None]:
        options = self.options
        reporter = Reporter(
            self.services,
            self.log,
            flags=request.flags,
            queue_id=request.queue_id,
            mark=lambda offset: self._mark(queue_file, offset),
            process=options.process,
            verify_negative_cache=options.verify_negative_cache,
            resolution=options.resolution,
        )
        fields = request.recipients
        content = queue_file.content(request.data_offset)
        try:
            delivery = to_delivery_request(request, transport=options.transport, content=content)
        except (RequestRefused, MailcarrierError, ValueError) as exc:
            return await self._defer_all(reporter, request, fields, f"bad delivery request: {exc}")
        reports = _Reports(reporter, fields)
        try:
            result = await self.agent.deliver(delivery, on_status=reports.add, log_lines=False)
        finally:
            status = await reports.finish()
        if len(result.recipients) != len(fields) or reports.count != len(fields):
            return -1, None  # never "done" while a recipient is undecided
        if content.damage is not None:
            # A bad record in the content (its recipients bounced 5.3.0 "unreadable mail
            # queue entry"): mode 0400, and qmgr moves the file to the corrupt queue.
            self.log.warning(options.process, f"{request.queue_id}: {content.damage}")
            try:
                queue_file.mark_corrupt()
            except MailcarrierError as exc:
                self.log.warning(options.process, str(exc))
            return -1, None
        hop = result.hop_status
        dsn = Dsn(status=hop.dsn, reason=hop.reason) if hop is not None else None
        if trace_only(request.flags):
            dsn = None
        return status, dsn

    async def _defer_all(
        self,
        reporter: Reporter,
        request: NativeRequest,
        fields: Sequence[NativeRecipient],
        reason: str,
    ) -> tuple[int, Dsn | None]:
        self.log.warning(self.options.process, f"{request.queue_id}: {reason}")
        status = 0
        for rcpt in fields:
            verdict = RecipientStatus(
                rcpt.address,
                DeliveryStatus.DEFERRED,
                "4.3.0",
                reason,
                orig_address=rcpt.orig_addr,
            )
            status |= await reporter.report(rcpt, verdict)
        return status, None

    def _mark(self, queue_file: QueueFile, offset: int) -> None:
        """A recipient finished: its record marked done. Should that fail, the recipient
        stays to do (a duplicate later, never a loss), and the reason is logged."""
        try:
            queue_file.mark_done(offset)
        except (OSError, MailcarrierError) as exc:
            self.log.warning(self.options.process, f"update queue file {queue_file.path}: {exc}")


def _nothing() -> None:
    pass


class _Reports:
    """Reports each recipient as the agent marks it, in order, while the delivery goes on."""

    def __init__(self, reporter: Reporter, fields: Sequence[NativeRecipient]) -> None:
        self.reporter, self.fields = reporter, fields
        self.queue: asyncio.Queue[tuple[int, RecipientStatus] | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())
        self.status = 0
        self.count = 0

    def add(self, index: int, status: RecipientStatus) -> None:
        self.queue.put_nowait((index, status))

    async def _run(self) -> None:
        while (item := await self.queue.get()) is not None:
            index, status = item
            self.status |= await self.reporter.report(self.fields[index], status)
            self.count += 1

    async def finish(self) -> int:
        self.queue.put_nowait(None)
        await self.task
        return self.status
