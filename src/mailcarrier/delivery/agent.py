"""The delivery agent: one request -> servers -> sessions -> one status per recipient.

`DeliveryAgent.deliver(request)` is Postfix's smtp(8) deliver_message(): parse the next hop,
find the servers, and try them in order. A server that cannot be reached, refuses the
session or drops it mid-transaction moves the remaining recipients to the next server; a
reply to MAIL, RCPT, DATA or the final dot marks recipients (trouble.py decides how). Every
recipient is marked exactly once (recipients.py) and logged as it is marked. Injected: the
settings, a log sink, a clock, and the content opener; nothing global.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import BinaryIO

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.content.encoder import DataEncoder
from mailcarrier.content.stream import encode_file
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.servers import ServerFinder, destinations
from mailcarrier.delivery.trouble import (
    Verdict,
    handshake_verdict,
    reply_verdict,
    size_verdict,
    soften,
    transport_verdict,
)
from mailcarrier.errors import TransportError, UsageError
from mailcarrier.log import LogSink, NullLog, delivery_line
from mailcarrier.protocol.commands import RcptTo
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.routing.resolver import NativeLookup, Resolver
from mailcarrier.status import Delays, DeliveryResult, DeliveryStatus, RecipientStatus
from mailcarrier.transport.connection import Connection, Peer, open_tcp, open_unix
from mailcarrier.transport.session import Envelope, Session, SessionOptions, TransactionResult

__all__ = ["DeliveryAgent"]


class _Attempt:
    """Timing and identity for the recipients marked during one delivery request."""

    def __init__(self, request: DeliveryRequest, start: float, wall: float) -> None:
        qmgr = request.qmgr_time or wall
        self.before_qmgr = max(0.0, qmgr - request.arrival_time) if request.qmgr_time else 0.0
        self.in_qmgr = (
            max(0.0, wall - qmgr) if request.qmgr_time else max(0.0, wall - request.arrival_time)
        )
        self.start = start
        self.ready: float | None = None

    def delays(self, now: float) -> Delays:
        if self.ready is None:
            return Delays(self.before_qmgr, self.in_qmgr, now - self.start, 0.0)
        return Delays(self.before_qmgr, self.in_qmgr, self.ready - self.start, now - self.ready)


class DeliveryAgent:
    """Delivers requests with one configuration. Reusable and safe for concurrent use."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        native: NativeLookup | None = None,
        rng: random.Random | None = None,
        _depth: int = 0,
    ) -> None:
        self.settings = settings
        self.log: LogSink = log if log is not None else NullLog()
        self.clock = clock
        self.wallclock = wallclock
        self.resolver = resolver
        self.native = native
        self.rng = rng
        self._depth = _depth
        self._finders: dict[str, ServerFinder] = {}

    # --- public -----------------------------------------------------------------------
    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
    ) -> DeliveryResult:
        """Deliver `request`; `on_status(index, status)` runs as each recipient is marked
        (before the next one), so a queue can record it durably at once."""
        agent = self.settings.for_transport(request.transport)
        process = request.transport
        resolution = self.settings.get_int("delay_logging_resolution_limit")

        def on_mark(index: int, status: RecipientStatus) -> None:
            if on_status is not None:
                on_status(index, status)
            self.log.info(process, delivery_line(request.queue_id, status, resolution))

        tracker = RecipientTracker(request.recipients, on_mark)
        attempt = _Attempt(request, self.clock(), self.wallclock())
        with ExitStack() as stack:
            content = self._open_content(request, stack)
            await self._deliver(request, agent, tracker, attempt, content)
        return tracker.result(request.queue_id)

    # --- content ----------------------------------------------------------------------
    def _open_content(self, request: DeliveryRequest, stack: ExitStack) -> BinaryIO:
        src = request.content
        if not isinstance(src, (str, os.PathLike)):
            if src.seekable():
                return src
            # A pipe can be read once; a second server needs it again: spool it to disk.
            spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
            while block := src.read(65536):
                spool.write(block)
            spool.flush()
            return spool
        try:
            return stack.enter_context(open(src, "rb"))
        except OSError as exc:
            raise UsageError(f"cannot open message file {src}: {exc.strerror}") from exc

    def _content_size(self, request: DeliveryRequest, content: BinaryIO) -> int:
        if request.size is not None:
            return request.size
        try:
            return max(0, os.fstat(content.fileno()).st_size - request.content_offset)
        except (OSError, ValueError):
            pos = content.tell()
            end = content.seek(0, os.SEEK_END)
            content.seek(pos)
            return max(0, end - request.content_offset)

    def _content_factory(
        self, request: DeliveryRequest, agent: AgentSettings, content: BinaryIO
    ) -> Callable[[], Iterator[bytes]]:
        limit = agent.int("line_length_limit")
        length = request.size

        def factory() -> Iterator[bytes]:
            encoder = DataEncoder(line_length_limit=limit, dot_stuff=True)
            return encode_file(
                content, start=request.content_offset, length=length, encoder=encoder
            )

        return factory

    # --- the server loop --------------------------------------------------------------
    async def _deliver(
        self,
        request: DeliveryRequest,
        agent: AgentSettings,
        tracker: RecipientTracker,
        attempt: _Attempt,
        content: BinaryIO,
    ) -> None:
        soft_bounce = self.settings.get_bool("soft_bounce")
        finder = self._finder(agent)
        domains = frozenset(
            r.address.rpartition("@")[2].lower() for r in request.recipients if "@" in r.address
        )
        factory = self._content_factory(request, agent, content)
        size = self._content_size(request, content)
        options = SessionOptions.from_settings(agent)
        session_limit = agent.int("mx_session_limit")
        last: Verdict | None = None
        last_relay = "none"
        loop = False
        for destination in destinations(request.nexthop, agent):
            servers = await finder.find(destination, domains)
            for note in servers.notes:
                log = self.log.warning if note.level == "warning" else self.log.info
                log(request.transport, note.text)
            if servers.failure is not None:
                last, last_relay, loop = servers.failure, "none", servers.loop
                if servers.final:
                    break
                continue
            sessions = 0
            for peer in servers.peers:
                if session_limit and sessions >= session_limit:
                    break
                verdict, relay = await self._try_server(
                    request, agent, options, peer, tracker, attempt, factory, size, False
                )
                if relay != "none":
                    sessions += 1
                if verdict is not None:
                    last, last_relay = verdict, relay
                if not tracker.pending():
                    return
            if servers.final:
                break
        if loop and await self._hand_off(request, tracker, attempt):
            return
        if last is None:
            last = Verdict(DeliveryStatus.DEFERRED, "4.3.5", "no destination to deliver to")
        self._mark_all(tracker, last, last_relay, attempt, soft_bounce)

    def _finder(self, agent: AgentSettings) -> ServerFinder:
        finder = self._finders.get(agent.transport)
        if finder is None:
            finder = ServerFinder(
                self.settings, agent, resolver=self.resolver, native=self.native, rng=self.rng
            )
            self._finders[agent.transport] = finder
        return finder

    async def _hand_off(
        self, request: DeliveryRequest, tracker: RecipientTracker, attempt: _Attempt
    ) -> bool:
        """A mail loop with best_mx_transport set: deliver the rest through that transport.

        mailcarrier's transports are smtp and lmtp, so best_mx_transport is written as
        ``transport:nexthop`` (like a transport_maps result), e.g. ``lmtp:unix:/run/lmtp``.
        """
        target = self.settings.get_str("best_mx_transport").strip()
        if not target or self._depth > 0:
            return False
        transport, _, nexthop = target.partition(":")
        if transport not in ("smtp", "lmtp") or not nexthop:
            self.log.warning(
                request.transport,
                f'best_mx_transport: unsupported value "{target}" (want smtp:DEST or lmtp:DEST)',
            )
            return False
        pending = tracker.pending()
        sub = replace(
            request,
            transport=transport,
            nexthop=nexthop,
            recipients=tuple(request.recipients[i] for i in pending),
        )
        inner = DeliveryAgent(
            self.settings,
            log=self.log,
            clock=self.clock,
            wallclock=self.wallclock,
            resolver=self.resolver,
            native=self.native,
            rng=self.rng,
            _depth=self._depth + 1,
        )
        result = await inner._deliver_quiet(sub)
        now = self.clock()
        for i, status in zip(pending, result.recipients, strict=True):
            tracker.mark(
                i,
                Verdict(status.status, status.dsn, status.diagnostic),
                relay=status.relay,
                delays=attempt.delays(now),
                conn_use=status.conn_use,
            )
        return True

    async def _deliver_quiet(self, request: DeliveryRequest) -> DeliveryResult:
        """Deliver without logging delivery lines (the outer request logs its own)."""
        agent = self.settings.for_transport(request.transport)
        tracker = RecipientTracker(request.recipients)
        attempt = _Attempt(request, self.clock(), self.wallclock())
        with ExitStack() as stack:
            content = self._open_content(request, stack)
            await self._deliver(request, agent, tracker, attempt, content)
        return tracker.result(request.queue_id)

    def _mark_all(
        self,
        tracker: RecipientTracker,
        verdict: Verdict,
        relay: str,
        attempt: _Attempt,
        soft_bounce: bool,
        conn_use: int = 1,
    ) -> None:
        if soft_bounce:
            verdict = soften(verdict)
        now = self.clock()
        for i in tracker.pending():
            tracker.mark(i, verdict, relay=relay, delays=attempt.delays(now), conn_use=conn_use)

    async def _connect(self, agent: AgentSettings, peer: Peer) -> Connection:
        timeout = agent.time("connect_timeout")
        if peer.address.startswith("/") or peer.port == 0:
            return await open_unix(peer, timeout=timeout)
        bind = agent.str("bind_address6" if ":" in peer.address else "bind_address")
        return await open_tcp(peer, timeout=timeout, bind_address=bind)

    async def _try_server(
        self,
        request: DeliveryRequest,
        agent: AgentSettings,
        options: SessionOptions,
        peer: Peer,
        tracker: RecipientTracker,
        attempt: _Attempt,
        factory: Callable[[], Iterator[bytes]],
        size: int,
        final_server: bool,
    ) -> tuple[Verdict | None, str]:
        """Try one server. Returns the verdict for recipients left pending (or None)."""
        process = request.transport
        soft_bounce = self.settings.get_bool("soft_bounce")
        try:
            conn = await self._connect(agent, peer)
        except TransportError as exc:
            self.log.info(process, exc.reason)
            return transport_verdict(exc), "none"
        session = Session(conn, options)
        try:
            try:
                refused = await session.start()
            except TransportError as exc:
                session.broken = True
                if not final_server:
                    self.log.info(process, f"{request.queue_id}: {exc.reason}")
                return transport_verdict(exc), peer.relay
            if refused is not None:
                verdict = handshake_verdict(
                    peer.namaddr,
                    refused.reply,
                    refused.stage,
                    skip_5xx_greeting=agent.bool("skip_5xx_greeting"),
                    soft_bounce=soft_bounce,
                )
                if not final_server:
                    self.log.info(process, f"{request.queue_id}: {verdict.diagnostic}")
                return verdict, peer.relay
            attempt.ready = self.clock()
            return await self._transaction(
                request, session, peer, tracker, attempt, factory, size, final_server
            )
        finally:
            await session.quit()

    async def _transaction(
        self,
        request: DeliveryRequest,
        session: Session,
        peer: Peer,
        tracker: RecipientTracker,
        attempt: _Attempt,
        factory: Callable[[], Iterator[bytes]],
        size: int,
        final_server: bool,
    ) -> tuple[Verdict | None, str]:
        soft_bounce = self.settings.get_bool("soft_bounce")
        relay = peer.relay
        pending = tracker.pending()
        caps = session.proto.capabilities
        conn_use = session.transactions + 1

        def mark(i: int, verdict: Verdict) -> None:
            tracker.mark(
                i, verdict, relay=relay, delays=attempt.delays(self.clock()), conn_use=conn_use
            )

        if caps.size_limit and size > caps.size_limit:
            verdict = size_verdict(size, caps.size_limit, peer.namaddr, soft_bounce=soft_bounce)
            for i in pending:
                mark(i, verdict)
            return None, relay
        envelope = Envelope(
            sender=request.sender,
            recipients=tuple(
                RcptTo(
                    tracker.recipients[i].address,
                    notify=tracker.recipients[i].dsn_notify.wire(),
                    orcpt=_orcpt(
                        tracker.recipients[i].dsn_orcpt, tracker.recipients[i].orig_address
                    ),
                    index=i,
                )
                for i in pending
            ),
            size=size,
            body="8BITMIME" if request.encoding == "8bit" else "",
            smtputf8=request.smtputf8,
            ret=request.dsn_ret,
            envid=request.dsn_envid,
        )
        result = await session.transaction(envelope, factory)
        return self._mark_transaction(
            request, peer, result, pending, mark, soft_bounce, final_server
        )

    def _mark_transaction(
        self,
        request: DeliveryRequest,
        peer: Peer,
        result: TransactionResult,
        pending: list[int],
        mark: Callable[[int, Verdict], None],
        soft_bounce: bool,
        final_server: bool,
    ) -> tuple[Verdict | None, str]:
        namaddr = peer.namaddr

        def verdict_for(reply_stage: Stage, reply: Reply) -> Verdict:
            return reply_verdict(namaddr, reply, reply_stage, soft_bounce=soft_bounce)

        # 1. MAIL rejected: every recipient gets that reply (Postfix smtp_mesg_fail).
        if result.mail is not None and result.mail.code // 100 != 2:
            verdict = verdict_for(Stage.MAIL, result.mail)
            for i in pending:
                mark(i, verdict)
            return None, peer.relay
        # 2. Recipients the server rejected are final now, whatever happens next.
        for pos, reply in enumerate(result.rcpt):
            if reply is not None and reply.code // 100 != 2:
                mark(pending[pos], verdict_for(Stage.RCPT, reply))
        accepted = result.accepted
        # 3. DATA rejected: the accepted recipients get that reply.
        if result.data is not None and result.data.code != 354 and accepted:
            verdict = verdict_for(Stage.DATA, result.data)
            for pos in accepted:
                mark(pending[pos], verdict)
            return None, peer.relay
        # 4. Replies to the final dot: one for all (SMTP) or one each (LMTP).
        if result.dot:
            for pos in accepted:
                reply = (
                    result.dot[0]
                    if len(result.dot) == 1 and not _is_lmtp(request)
                    else (result.dot[pos] if pos < len(result.dot) else None)
                )
                if reply is not None:
                    mark(pending[pos], verdict_for(Stage.DOT, reply))
        # 5. Whatever is left lost its server mid-way: next server, or deferred at the end.
        if result.error is not None:
            verdict = transport_verdict(result.error)
            if not final_server:
                self.log.info(request.transport, f"{request.queue_id}: {verdict.diagnostic}")
            return verdict, peer.relay
        # An LMTP server that sent fewer replies than it accepted recipients.
        return (
            Verdict(
                DeliveryStatus.DEFERRED,
                "4.5.0",
                f"lost reply from host {namaddr} for some recipients after end of data",
            ),
            peer.relay,
        )


def _is_lmtp(request: DeliveryRequest) -> bool:
    return request.transport == "lmtp"


def _orcpt(dsn_orcpt: str, orig_address: str) -> str:
    """RFC 3461 ORCPT: the one given, else derived from the original recipient (as Postfix)."""
    if dsn_orcpt:
        return dsn_orcpt
    if orig_address:
        return f"rfc822;{orig_address}"
    return ""
