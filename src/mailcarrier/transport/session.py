"""One SMTP/LMTP session over a `Connection`: greeting, EHLO/HELO/LHLO, mail transactions.

This is the I/O driver of the sans-IO `ClientConnection`, as Postfix's smtp_proto.c is of its
state machine. With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write and the
replies are then read in order; without it, each command waits for its reply (lock-step).
After 354 the content flows from an iterator of wire-ready chunks (content/ did the
dot-stuffing), then the final dot; LMTP (RFC 2033) gets one reply per accepted recipient.
XFORWARD (Postfix XFORWARD_README) goes in front of MAIL when asked for. With BDAT
(RFC 3030, `Envelope.bdat`) the content goes instead in chunks after the RCPT replies,
pipelined when the server allows it, not dot-stuffed.

The session reports what happened as a `TransactionResult` of raw replies and at most one
`TransportError`; it never decides whether a recipient is sent, deferred or bounced (that is
delivery/trouble.py). Every read and write has the deadline of its stage (`Stage.timeout`).

Parts live in their own modules and are re-exported here: STARTTLS (starttls.py), the AUTH
exchange (auth.py), BDAT chunks (bdat.py), `SessionOptions` (options.py) and the values
`Envelope`, `HandshakeFailure` and `TransactionResult` with the MAIL, RCPT and XFORWARD
commands made of an envelope (records.py), and the transcript recording (history.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from mailcarrier.content.mime import ContentError
from mailcarrier.errors import RemoteProtocolError, TransportError
from mailcarrier.protocol.client import (
    NEED_DATA,
    ClientConnection,
    CommandReply,
    ConnectionClosed,
    Event,
    RecipientReply,
    State,
)
from mailcarrier.protocol.commands import (
    Command,
    Data,
    DataEnd,
    Ehlo,
    Helo,
    Lhlo,
    MailFrom,
    Quit,
    RcptTo,
    Rset,
    Xforward,
)
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.sasl.mechanism import Mechanism
from mailcarrier.transport.auth import (
    AUTH_LINE_LIMIT,
    MAX_AUTH_CHALLENGE,
    MAX_AUTH_ROUNDS,
    AuthOutcome,
)
from mailcarrier.transport.auth import authenticate as _authenticate
from mailcarrier.transport.bdat import BDAT_CHUNK, send_chunks
from mailcarrier.transport.connection import Connection
from mailcarrier.transport.deadlines import ContentDeadline, ReplyDeadline
from mailcarrier.transport.history import record_error, record_in, record_out
from mailcarrier.transport.options import SessionOptions
from mailcarrier.transport.records import (
    Envelope,
    HandshakeFailure,
    TransactionResult,
    mail_command,
    rcpt_commands,
    xforward_commands,
)
from mailcarrier.transport.starttls import starttls as _starttls

if TYPE_CHECKING:
    import ssl

__all__ = [
    "AUTH_LINE_LIMIT",
    "BDAT_CHUNK",
    "MAX_AUTH_CHALLENGE",
    "MAX_AUTH_ROUNDS",
    "AuthOutcome",
    "Envelope",
    "HandshakeFailure",
    "Session",
    "SessionOptions",
    "TransactionResult",
]

# Gather content into writes of about this size (fewer system calls for small messages).
WRITE_BATCH: Final = 65536
ContentFactory = Callable[[], Iterable[bytes]]


# A transaction was begun and not finished: RSET before the session is used again.
_NEEDS_RSET: Final = frozenset({State.MAIL, State.RCPT, State.ABORTED})


def _stage(command: Command | None) -> Stage:
    return command.stage if command is not None else Stage.GREETING


class Session:
    """Drive one connection. Create with `Session(conn, options)`, then `await start()`."""

    def __init__(self, conn: Connection, options: SessionOptions) -> None:
        self.conn = conn
        self.options = options
        self.proto = ClientConnection(
            lmtp=options.lmtp,
            discard_keywords=options.discard_keywords,
            reply_filter=options.reply_filter,
        )
        self.greeting: Reply | None = None
        self.transactions = 0
        self.broken = False  # no further use (I/O or protocol error, 421)
        self.started = time.monotonic()
        # Called with a 2xx greeting before EHLO; may set the PIX workarounds below
        # (delivery/quirks.py): HELO instead of EHLO, and a pause before the final dot.
        self.on_greeting: Callable[[Reply], None] | None = None
        self.disable_esmtp = False
        self.dot_delay = 0.0
        # The conversation for a postmaster transcript (delivery/transcript.py): a list to
        # record "Out: ..." and "In: ..." lines in, or None (the default) to record nothing.
        self.history: list[str] | None = None
        self.protocol_errors = 0  # malformed or out-of-order replies seen
        self.reads = ReplyDeadline(options)

    @property
    def peer_relay(self) -> str:
        return self.conn.peer.relay

    # --- low level --------------------------------------------------------------------
    def _wire(self, command: Command, stage: Stage | None = None) -> bytes:
        """The command's bytes; a server that sent something unasked ends the session
        (a protocol error at `stage`, by default the command's)."""
        proto = self.proto
        if self.conn.buffered and proto.idle:
            self._pull_unasked()
        try:
            data = proto.send(command)
        except RemoteProtocolError as exc:
            raise self._protocol_error(stage or command.stage, exc) from exc
        if self.history is not None:
            self._record_out(command, data)
        return data

    def _pull_unasked(self) -> None:
        """No reply is outstanding, yet the server sent something (a reply while the
        content was still going out, junk on an idle session): hand it to the protocol
        object, which refuses to send anything more once it holds unasked data."""
        self.proto.receive_data(self.conn.take_received())

    def _check_nothing_unasked(self, stage: Stage) -> None:
        """After the last reply of a transaction nothing may follow it: a server that
        sends more (an early reply during the content, then the real one) has made the
        verdict ambiguous, and the transaction counts as failed (RFC 5321 4.1.1.4: only
        the reply to the final dot is the verdict on the message)."""
        if self.conn.buffered:
            self._pull_unasked()
        if self.proto.has_buffered_data:
            raise self._protocol_error(
                stage, RemoteProtocolError("unexpected data from server after its last reply")
            )

    def _record_out(self, command: Command, data: bytes) -> None:
        assert self.history is not None
        record_out(self.history, command, data)

    def _wire_group(self, commands: tuple[Command, ...]) -> bytes:
        """The bytes of a pipelined group (`_wire` of each command, joined)."""
        if self.conn.buffered and self.proto.idle:
            self._pull_unasked()
        send = self.proto.send
        parts = []
        for command in commands:
            try:
                parts.append(send(command))
            except RemoteProtocolError as exc:
                raise self._protocol_error(command.stage, exc) from exc
            if self.history is not None:
                self._record_out(command, parts[-1])
        return b"".join(parts)

    def _send(self, command: Command) -> None:
        self.conn.write(self._wire(command), command.stage)

    def _ready_event(self) -> Event | None:
        """The next protocol event if the bytes already received hold one, else None (read
        more). A plain call: a pipelined group's replies arrive together, and only the first
        of them needs to wait. Protocol errors and end of file become `TransportError`."""
        proto = self.proto
        # The stage (for deadlines and diagnostics) is that of the oldest command in flight,
        # looked up only when it is needed: NEED_DATA, ConnectionClosed and a protocol error
        # all leave the commands in flight as they were.
        try:
            event = proto.next_event()
        except RemoteProtocolError as exc:
            raise self._protocol_error(_stage(proto.next_in_flight), exc) from exc
        if event is NEED_DATA:
            return None
        if isinstance(event, ConnectionClosed):
            raise self.conn.lost_error(_stage(proto.next_in_flight))
        # Every other event (Greeting, CommandReply, RecipientReply) carries a reply.
        if event.reply.code == 421:
            self.broken = True
        if self.history is not None:
            record_in(self.history, event.reply)
        return event

    async def _event(self) -> Event:
        """The next protocol event; network failures become `TransportError`."""
        proto = self.proto
        while True:
            if not proto.needs_data:
                event = self._ready_event()
                if event is not None:
                    return event
            awaited = proto.next_in_flight
            proto.receive_data(await self.reads.read(self.conn, awaited, _stage(awaited)))

    def _protocol_error(self, stage: Stage, exc: Exception) -> TransportError:
        self.broken = True
        self.protocol_errors += 1
        if self.history is not None:
            record_error(self.history, exc)
        return TransportError(
            f"remote protocol error from {self.conn.peer.namaddr} while {stage.while_phrase}: "
            f"{exc}",
            stage=stage,
            peer=self.conn.peer.relay,
        )

    async def _reply(self) -> Reply:
        event = await self._event()
        assert not isinstance(event, ConnectionClosed)
        return event.reply

    # --- session start ----------------------------------------------------------------
    async def start(self) -> HandshakeFailure | None:
        """Read the greeting and say EHLO/HELO/LHLO. None on success."""
        reply = await self._reply()
        self.greeting = reply
        if reply.code // 100 != 2:
            return HandshakeFailure(Stage.GREETING, reply)
        if self.on_greeting is not None:
            self.on_greeting(reply)
        return await self.hello()

    def _hello_command(self) -> Command:
        opts = self.options
        if opts.lmtp:
            return Lhlo(opts.helo_name)
        if opts.never_send_ehlo or self.disable_esmtp:
            return Helo(opts.helo_name)
        if opts.always_send_ehlo:
            return Ehlo(opts.helo_name)
        # Neither forced: EHLO only when the greeting mentions ESMTP (Postfix behaviour).
        greeting = self.greeting.text if self.greeting else ""
        return Ehlo(opts.helo_name) if "ESMTP" in greeting.upper() else Helo(opts.helo_name)

    async def hello(self) -> HandshakeFailure | None:
        """EHLO (or HELO/LHLO); after any refusal of EHLO but 421, fall back to HELO
        (RFC 5321 3.2; Postfix smtp_helo())."""
        command = self._hello_command()
        self._send(command)
        reply = await self._reply()
        if reply.code // 100 == 2:
            return None
        if isinstance(command, Ehlo) and reply.code != 421:
            helo = Helo(self.options.helo_name)
            self._send(helo)
            reply = await self._reply()
            if reply.code // 100 == 2:
                return None
            return HandshakeFailure(Stage.HELO, reply)
        return HandshakeFailure(command.stage, reply)

    # --- STARTTLS (RFC 3207) and SASL (RFC 4954): see starttls.py and auth.py ----------
    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> Reply | None:
        """STARTTLS and the handshake (starttls.py): the server's reply if it refused, None
        once TLS is up; a handshake failure or injected plaintext raises `TransportError`."""
        return await _starttls(self, context, server_hostname)

    async def authenticate(
        self,
        mechanism: Mechanism,
        *,
        max_rounds: int = MAX_AUTH_ROUNDS,
        max_challenge: int = MAX_AUTH_CHALLENGE,
    ) -> AuthOutcome:
        """One AUTH exchange driven by a sasl/ mechanism (auth.py). Network trouble raises
        `TransportError`; everything the server says, hostile or not, is an `AuthOutcome`."""
        return await _authenticate(
            self, mechanism, max_rounds=max_rounds, max_challenge=max_challenge
        )

    # --- mail transaction -------------------------------------------------------------
    async def transaction(
        self, envelope: Envelope, content: ContentFactory, *, reset_first: bool = False
    ) -> TransactionResult:
        """One MAIL/RCPT/DATA transaction. Never raises for network trouble: see `.error`.

        `reset_first` checks a reused session with RSET first; with PIPELINING the RSET goes
        in the same write as MAIL, RCPT and DATA (RFC 2920 3.1 allows it anywhere in a
        group), so the check costs no round trip. See `TransactionResult.reset_failed`."""
        result = TransactionResult(rcpt=[None] * len(envelope.recipients), started=time.monotonic())
        try:
            await self._transaction(envelope, content, result, reset_first)
        except TransportError as exc:
            result.error = exc
            self.broken = True
        except ContentError as exc:
            # Mid-DATA there is no way to cancel but to drop the connection without the
            # final dot (Postfix: "disconnect ungracefully").
            result.content_error = exc
            self.broken = True
        self.transactions += 1
        return result

    async def _transaction(
        self,
        envelope: Envelope,
        content: ContentFactory,
        result: TransactionResult,
        reset_first: bool = False,
    ) -> None:
        caps = self.proto.capabilities
        quote = self.options.quote_envelope
        mail = mail_command(envelope, caps, quote)
        rcpts, position = rcpt_commands(envelope, caps, quote)
        xforward = xforward_commands(envelope, caps)
        if self.proto.capabilities.pipelining:
            # RFC 2920 3.1: MAIL, RCPTs and DATA in one write; DATA is the last command
            # of the group, so the server's replies tell us whether to send content.
            # XFORWARD (not a sync point) rides in front of MAIL, as Postfix does.
            # With BDAT (RFC 3030) the group ends with the last RCPT: chunks follow only when
            # a recipient was accepted.
            first: tuple[Command, ...] = (Rset(),) if reset_first else ()
            tail: tuple[Command, ...] = () if envelope.bdat else (Data(),)
            group = self._wire_group((*first, *xforward, mail, *rcpts, *tail))
            self.conn.write(group, Stage.RSET if reset_first else Stage.MAIL)
            await self._collect_until_data(
                result, position, rcpts[-1] if envelope.bdat and rcpts else None
            )
            if result.reset_failed:
                self.broken = True
                if self.proto.state is State.CONTENT:
                    self._send(DataEnd())  # end the empty message; its reply does not count
                    await self._reply()
                return
        else:
            if reset_first:
                self._send(Rset())
                result.rset = await self._reply()
                if result.reset_failed:
                    self.broken = True
                    return
            for command in xforward:
                # Postfix: a refused XFORWARD is logged and the transaction goes on.
                self._send(command)
                result.xforward.append(await self._reply())
            self._send(mail)
            result.mail = await self._reply()
            if result.mail.code // 100 != 2:
                return
            for cmd in rcpts:
                self._send(cmd)
                result.rcpt[position[id(cmd)]] = await self._reply()
            if not result.accepted:
                return
            if not envelope.bdat:
                self._send(Data())
                result.data = await self._reply()
        if envelope.bdat:
            if result.accepted and result.mail is not None and result.mail.code // 100 == 2:
                await send_chunks(self, content, result, position)
            return
        if self.proto.state is not State.CONTENT:
            return
        if not result.has_accepted or (result.mail is not None and result.mail.code // 100 != 2):
            # The server said 354 although nothing was accepted: end the empty message at
            # once (RFC 2920 3.1) and disregard its reply.
            self._send(DataEnd())
            await self._reply()
            return
        chunks = content()
        if type(chunks) is tuple and len(chunks) <= 1 and self.dot_delay <= 0:
            # A message encoded whole (ContentPlan.plain_chunks): with the dot in one write.
            batch = [self.proto.send_content(chunks[0])] if chunks and chunks[0] else []
            size = len(batch[0]) if batch else 0
            if self._write_last(batch, result):
                deadline = ContentDeadline(self.options)
                deadline.sent(size)
                await deadline.drain(self.conn, Stage.DOT, self.options.timeout(Stage.DOT))
        else:
            await self._send_content(chunks, result)
        if self.options.lmtp:
            await self._collect_dot(result, position)
        else:
            event = await self._event()
            assert not isinstance(event, ConnectionClosed)
            self._check_nothing_unasked(Stage.DOT)
            result.dot = [event.reply]

    async def _collect_until_data(
        self, result: TransactionResult, position: dict[int, int], last: Command | None = None
    ) -> None:
        """Replies up to DATA's, or up to that of `last` (the last RCPT, for BDAT)."""
        # The first reply needs a read; the others of the group usually came with it.
        event: Event | None = await self._event()
        while True:
            if event is None:
                event = await self._event()
            assert type(event) is CommandReply
            cmd = event.command
            # Commands in flight are of exactly these types (protocol/client.py `_SEND`).
            cls = type(cmd)
            if cls is RcptTo:
                result.rcpt[position[id(cmd)]] = event.reply
                if cmd is last:
                    return
            elif cls is MailFrom:
                result.mail = event.reply
            elif cls is Data:
                result.data = event.reply
                return
            elif cls is Rset:
                result.rset = event.reply
            elif cls is Xforward:
                result.xforward.append(event.reply)
            event = self._ready_event()

    def _write_last(self, batch: list[bytes], result: TransactionResult) -> bool:
        """Write the last content bytes with the final dot; True when a drain is due."""
        # A reply that came while the content went out was not asked for: the dot is not
        # sent, so the server cannot take the message (the error is the content's).
        batch.append(self._wire(DataEnd(), Stage.BODY))
        self.conn.write(b"".join(batch), Stage.DOT)
        result.content_sent = True
        return not self.conn.drained

    async def _send_content(self, chunks: Iterable[bytes], result: TransactionResult) -> None:
        """Stream the content, then the final dot, in as few writes as the sizes allow.

        Small chunks are gathered up to WRITE_BATCH bytes (each write() of an idle asyncio
        transport is a send() system call), and the final dot rides with the last of them.
        """
        deadline = ContentDeadline(self.options)
        batch: list[bytes] = []
        batched = 0
        streamed = False
        for chunk in chunks:
            if not chunk:
                continue
            batch.append(self.proto.send_content(chunk))
            batched += len(chunk)
            if batched >= WRITE_BATCH:
                self.conn.write(b"".join(batch), Stage.BODY)
                deadline.sent(batched)
                batch.clear()
                batched = 0
                streamed = True
                if self.conn.must_drain:
                    await deadline.drain(self.conn, Stage.BODY)
        if streamed:
            # One turn of the event loop before the dot: a reply the server sent while the
            # content was going out (never the verdict) is then seen, and no dot is sent.
            await asyncio.sleep(0)
        if self.dot_delay > 0:
            # PIX delay_dotcrlf: the final dot must not share a packet with the content.
            if batch:
                self.conn.write(b"".join(batch), Stage.BODY)
                deadline.sent(batched)
                batch.clear()
                batched = 0
            await deadline.drain(self.conn, Stage.BODY)
            await asyncio.sleep(self.dot_delay)
        if self._write_last(batch, result):
            deadline.sent(batched)
            await deadline.drain(self.conn, Stage.DOT, self.options.timeout(Stage.DOT))

    async def _collect_dot(self, result: TransactionResult, position: dict[int, int]) -> None:
        """The reply (LMTP: the replies) to the end of the content. None of them counts
        when the server sends anything more after them (`_check_nothing_unasked`)."""
        stage = Stage.BDAT if result.bdat else Stage.DOT
        if not self.options.lmtp:
            reply = await self._reply()
            self._check_nothing_unasked(stage)
            result.dot = [reply]
            return
        accepted = result.accepted
        # Filled in place: replies that came stand even when the connection is lost later.
        dot: list[Reply | None] = [None] * len(result.rcpt)
        result.dot = dot
        for _ in range(max(1, len(accepted))):
            event = await self._event()
            if isinstance(event, RecipientReply):
                dot[position.get(id(event.recipient), 0)] = event.reply
            else:
                assert isinstance(event, CommandReply)
                for i in accepted:
                    dot[i] = event.reply
        try:
            self._check_nothing_unasked(stage)
        except TransportError:
            result.dot = []
            raise

    # --- ending -----------------------------------------------------------------------
    async def rset(self) -> bool:
        """RSET to clear a failed transaction before reuse; False if the session is unusable."""
        if self.broken or self.proto.state not in (
            State.READY,
            State.MAIL,
            State.RCPT,
            State.ABORTED,
        ):
            return False
        try:
            self._send(Rset())
            reply = await self._reply()
        except TransportError:
            self.broken = True
            return False
        return reply.code // 100 == 2

    @property
    def needs_rset(self) -> bool:
        return self.proto.state in _NEEDS_RSET

    async def quit(self) -> None:
        """QUIT and close. Never raises. No QUIT after a 421 or a broken session."""
        try:
            if (
                not self.broken
                and not self.conn.at_eof
                and self.proto.state
                not in (
                    State.CLOSED,
                    State.ERROR,
                    State.CONTENT,
                    State.CHUNK,
                    State.DOT,
                    State.TLS,
                )
            ):
                self._send(Quit())
                if self.options.skip_quit_response:
                    await self.conn.drain(self.options.timeout(Stage.QUIT), Stage.QUIT)
                else:
                    await self._reply()
        except (TransportError, RemoteProtocolError):
            pass
        if self.broken:
            self.conn.abort()
        else:
            await self.conn.close()
