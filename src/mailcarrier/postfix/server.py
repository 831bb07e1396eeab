"""One qmgr(8) connection: the delivery request in, the delivery, the reports, the final
reply out (Postfix's deliver_request_read / deliver_request_done around smtp(8)'s work).

`NativeServer.handle(sock)` speaks first (the protocol hello), reads the request's common
attribute list and one list per recipient, opens the queue file and delivers through the
shared `DeliveryAgent` (its connection cache serves every connection of the process). The
connection is an asyncio protocol on the event loop's transport (`_Qmgr`), without streams:
a request in, one reply out, and every wait bounded by ipc_timeout. Each recipient's verdict
is reported as it is made (report.py: bounce/defer/trace/verify, the mark in the queue
file, the log line; a plain success at once, what needs another service in a task); the
final reply is 0 only when every recipient was finished, else -1, with the hop status when
the destination itself failed. Just before that reply it calls `release()` (the process's
place for this connection is free: qmgr connects for its next delivery the moment it has the
reply); then it waits for qmgr to close.

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
import collections
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.errors import MailcarrierError
from mailcarrier.log import LogSink
from mailcarrier.postfix.attr import AttrError, AttrParser
from mailcarrier.postfix.queuefile import QueueFile, QueueFileError, open_queue_file
from mailcarrier.postfix.reply import HELLO, Dsn, final_reply
from mailcarrier.postfix.report import Reporter
from mailcarrier.postfix.request import (
    NativeRecipient,
    NativeRequest,
    RequestReader,
    RequestRefused,
    to_delivery_request,
    trace_only,
)
from mailcarrier.postfix.services import StatusServices
from mailcarrier.status import Counts, DeliveryResult, DeliveryStatus, RecipientStatus

__all__ = ["Counting", "NativeServer", "ServerOptions"]


class Agent(Protocol):
    """What the server needs of delivery/agent.py's `DeliveryAgent`."""

    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
        log_lines: bool = True,
    ) -> DeliveryResult: ...


class Counting(Protocol):
    """What the process's metrics are told (counters.py's `NativeCounters`): a delivery
    started and ended, each recipient's verdict as logged, and what the agent counted
    (connections, TLS, DNS, ...) with each result."""

    def started(self) -> None: ...

    def ended(self) -> None: ...

    def verdict(self, status: RecipientStatus) -> None: ...

    def result(self, counts: Counts) -> None: ...


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


class _Qmgr(asyncio.Protocol):
    """One qmgr connection, as an asyncio protocol on the accepted socket (the transport is
    the event loop's: uvloop's in C): what passes on it is the hello out, one request in,
    one reply out, then qmgr closes (deliver_request.c). `data_received` feeds the bytes to
    a `RequestReader` and resolves `waiter` when the request is complete (`request`), cut
    short (`error`) or when qmgr went away; once the request is in, only the end matters.
    Each wait is bounded by ipc_timeout."""

    def __init__(self, options: ServerOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.timeout = loop, options.ipc_timeout
        self.reader = RequestReader(AttrParser(max_string=options.max_string))
        self.transport: asyncio.Transport | None = None
        self.request: NativeRequest | None = None
        self.error: BaseException | None = None
        self.ended = False  # qmgr closed, or the connection failed
        self.waiter: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are asyncio.Transports without subclassing it.
        self.transport = cast("asyncio.Transport", transport)
        self.transport.write(HELLO)  # deliver_request_initial: the agent speaks first

    def data_received(self, data: bytes) -> None:
        if self.request is not None or self.error is not None:
            return  # what qmgr may send after the request is ignored, as Postfix does
        try:
            self.reader.feed(data)
            self.request = self.reader.request()
        except Exception as exc:  # AttrError; anything else is abandoned with its name
            self.error = exc
        if self.request is not None or self.error is not None:
            self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        if self.request is not None:
            self._wake()
            return True  # qmgr may close its side first: the reply still goes out
        if self.error is None:
            reader = self.reader
            try:
                if not reader.idle:
                    reader.feed(b"")
                    reader.request()  # raises: the request was cut short
            except Exception as exc:  # AttrError; anything else is abandoned with its name
                self.error = exc
            if self.error is None:
                self.error = _Closed()
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.request is None and self.error is None:
            self.error = exc if exc is not None else _Closed()
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)

    def _expired(self) -> None:
        if self.error is None:
            self.error = TimeoutError()
        self._wake()

    async def _wait(self) -> None:
        timer = self.loop.call_later(self.timeout, self._expired)
        try:
            await self.waiter
        finally:
            timer.cancel()

    async def read_request(self) -> NativeRequest:
        """The request; `_Closed` when qmgr went away before it was complete, `AttrError`
        when it was malformed or cut short, `TimeoutError` after ipc_timeout."""
        if self.request is None and self.error is None:
            await self._wait()
        if self.request is None:
            raise self.error if self.error is not None else _Closed()
        return self.request

    def write(self, data: bytes) -> None:
        """Out at once into the socket's buffer (the transport keeps what does not fit)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise _Closed  # qmgr went away
        transport.write(data)

    async def wait_close(self) -> None:
        """deliver_request_final: qmgr closes first."""
        if not self.ended:
            self.waiter = self.loop.create_future()
            await self._wait()
        if not self.ended:
            raise TimeoutError

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class NativeServer:
    """Serves qmgr connections for one process; `agent` is shared by all of them.
    `release()` is called once a connection's work is done, before its final reply
    (master.py's `MasterChild.release`: the place it held is free for the next one);
    `counting` (metrics_directory set) is told what happened."""

    def __init__(
        self,
        agent: Agent,
        services: StatusServices,
        log: LogSink,
        options: ServerOptions,
        release: Callable[[], None] | None = None,
        counting: Counting | None = None,
    ) -> None:
        self.agent, self.services, self.log, self.options = agent, services, log, options
        self.release = release or _nothing
        self.counting = counting

    async def handle(self, conn: socket.socket) -> None:
        """Serve one qmgr connection (master.py's handler: `conn` is the accepted socket)."""
        loop = asyncio.get_running_loop()
        qmgr = _Qmgr(self.options, loop)
        try:
            await loop.connect_accepted_socket(lambda: qmgr, conn)
            await self._serve(qmgr)
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
            qmgr.close()

    async def _serve(self, qmgr: _Qmgr) -> None:
        request = await qmgr.read_request()
        status, hop = await self._deliver(request)
        # qmgr connects for its next delivery as soon as it has this reply.
        self.release()
        qmgr.write(final_reply(hop, status))
        await qmgr.wait_close()

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
            on_verdict=self.counting.verdict if self.counting is not None else None,
        )
        fields = request.recipients
        content = queue_file.content(request.data_offset)
        try:
            delivery = to_delivery_request(request, transport=options.transport, content=content)
        except (RequestRefused, MailcarrierError, ValueError) as exc:
            return await self._defer_all(reporter, request, fields, f"bad delivery request: {exc}")
        reports = _Reports(reporter, fields)
        counting = self.counting
        if counting is not None:
            counting.started()
        try:
            result = await self.agent.deliver(delivery, on_status=reports.add, log_lines=False)
        finally:
            status = await reports.finish()
            if counting is not None:
                counting.ended()
        if counting is not None:
            counting.result(result.counts)
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
    """Reports each recipient as the agent marks it, in order, while the delivery goes on:
    at once when that asks no other service anything (a plain success: the log line and the
    mark), else in a task, behind which those after it wait. After a failure nothing more
    is reported, and `finish()` raises it."""

    def __init__(self, reporter: Reporter, fields: Sequence[NativeRecipient]) -> None:
        self.reporter, self.fields = reporter, fields
        self.waiting: collections.deque[tuple[int, RecipientStatus]] = collections.deque()
        self.running: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.failed = False
        self.status = 0
        self.count = 0

    def add(self, index: int, status: RecipientStatus) -> None:
        if self.failed:
            return
        if self.running is None:
            done = self.reporter.report_at_once(self.fields[index], status)
            if done is not None:
                self.status |= done
                self.count += 1
                return
            self.running = asyncio.get_running_loop().create_task(self._run())
            self.tasks.append(self.running)
        self.waiting.append((index, status))

    async def _run(self) -> None:
        try:
            while self.waiting:
                index, status = self.waiting.popleft()
                self.status |= await self.reporter.report(self.fields[index], status)
                self.count += 1
        except BaseException:
            self.failed = True
            raise
        finally:
            self.running = None

    async def finish(self) -> int:
        for task in self.tasks:
            await task
        return self.status
