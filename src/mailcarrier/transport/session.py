"""One SMTP/LMTP session over a `Channel`: greeting, EHLO/HELO/LHLO, mail transactions.

This is the driver of the sans-IO `ClientConnection`, as Postfix's smtp_proto.c is of its
state machine. The mail transaction is written once, as smtp_proto.c's loop: the commands
(RSET to check a reused session, XFORWARD, MAIL, each RCPT, DATA) go out as far ahead of the
server's replies as the session allows, all at once with PIPELINING (RFC 2920; DATA is the
group's last command, so the replies decide whether content follows) and one at a time
without it (a window of one command: a refused MAIL or no accepted RCPT ends it early). An
address probe (`Envelope.probe`) puts RSET where DATA would be and sends no content; with
`Envelope.probe_data` it sends DATA, and after 354 drops the connection without a word. After
354 the content flows from an iterator of wire-ready chunks (content/ did the dot-stuffing),
then the final dot; with BDAT (RFC 3030, `Envelope.bdat`) the content goes in chunks
instead (bdat.py). The replies to the end of the content are dot.py's.

Server-specific workarounds are values (`Workarounds`), decided by the caller from the
greeting and passed to `hello()`: HELO instead of EHLO, a pause before the final dot (PIX).
The session reports what happened as a `TransactionResult` of raw replies and at most one
`TransportError`; it never decides whether a recipient is sent, deferred or bounced (that is
delivery/trouble.py). Every read and write has the deadline of its stage (deadlines.py).
STARTTLS (starttls.py) and AUTH (auth.py) run on the same channel.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from mailcarrier.content.mime import ContentError
from mailcarrier.errors import TransportError
from mailcarrier.protocol.client import CommandReply, State
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
from mailcarrier.status import TlsSession
from mailcarrier.transport.auth import MAX_AUTH_CHALLENGE, MAX_AUTH_ROUNDS, AuthOutcome
from mailcarrier.transport.auth import authenticate as _authenticate
from mailcarrier.transport.bdat import send_chunks
from mailcarrier.transport.channel import Channel
from mailcarrier.transport.connection import Connection
from mailcarrier.transport.deadlines import ContentDeadline
from mailcarrier.transport.dot import collect_dot
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

__all__ = ["NO_WORKAROUNDS", "ContentFactory", "Session", "SessionOptions", "Workarounds"]

# Gather content into writes of about this size (fewer system calls for small messages).
WRITE_BATCH: Final = 65536
ContentFactory = Callable[[], Iterable[bytes]]

# A transaction was begun and not finished: RSET before the session is used again.
_NEEDS_RSET: Final = frozenset({State.MAIL, State.RCPT, State.ABORTED})
# Where QUIT may not be sent (nothing to say it to, or in the middle of something).
_NO_QUIT: Final = frozenset(
    {State.CLOSED, State.ERROR, State.CONTENT, State.CHUNK, State.DOT, State.TLS}
)


@dataclass(frozen=True, slots=True)
class Workarounds:
    """What a server needs that the protocol does not say (Postfix's PIX workarounds,
    delivery/quirks.py), decided from its greeting; kept with the session when it is
    cached, as Postfix keeps a session's endpoint features."""

    disable_esmtp: bool = False  # HELO, never EHLO
    dot_delay: float = 0.0  # seconds between the content and the final dot


NO_WORKAROUNDS: Final = Workarounds()


class Session:
    """Drive one connection: `read_greeting()`, `hello()`, then transactions (`start()`
    does the first two)."""

    def __init__(self, conn: Connection, options: SessionOptions) -> None:
        self.channel = Channel(conn, options)
        self.conn = conn
        self.options = options
        self.proto = self.channel.proto
        self.greeting: Reply | None = None
        self.workarounds = NO_WORKAROUNDS
        self.transactions = 0
        self.started = time.monotonic()
        # Policy results of the TLS step (delivery/), kept with the session for reuse:
        # whether the certificate was verified (it selects the SASL security options),
        # and the TLS feature status for Postfix 3.11's tls= log field.
        self.tls_verified = False
        self.tls_status = ""
        # The TLS session's trust, protocol and cipher (status.TlsSession), or None.
        self.tls_session: TlsSession | None = None
        # RFC 8689: the REQUIRETLS action of the session's messages (an IntEnum value of
        # tls/requiretls.py; 0: none) and whether the certificate matched as the TLS level
        # required (what the "requiretls" feature of the tls= field reports).
        self.requiretls = 0
        self.tls_matched = False
        # Kept for the connection-reuse keys of delivery/reuse.py, which alone reads them
        # (opaque here): the SASL identity of the session's address key, and the last
        # address key made for it with what it was made from.
        self.reuse_identity: tuple[object, str] | None = None
        self.reuse_key: tuple[object, object, object, str, str] | None = None

    # The channel's state, as the delivery code reads it.
    @property
    def broken(self) -> bool:
        return self.channel.broken

    @broken.setter
    def broken(self, value: bool) -> None:
        self.channel.broken = value

    @property
    def history(self) -> list[str] | None:
        return self.channel.history

    @history.setter
    def history(self, value: list[str] | None) -> None:
        self.channel.history = value

    @property
    def protocol_errors(self) -> int:
        return self.channel.protocol_errors

    @property
    def failure_codes(self) -> set[int]:
        return self.channel.failure_codes

    # --- session start ----------------------------------------------------------------
    async def start(self, workarounds: Workarounds = NO_WORKAROUNDS) -> HandshakeFailure | None:
        """Read the greeting and say EHLO/HELO/LHLO. None on success."""
        reply = await self.read_greeting()
        if reply.code // 100 != 2:
            return HandshakeFailure(Stage.GREETING, reply)
        return await self.hello(workarounds)

    async def read_greeting(self) -> Reply:
        """The server's greeting (any code: the caller judges it)."""
        reply = await self.channel.reply()
        self.greeting = reply
        return reply

    def _hello_command(self) -> Command:
        opts = self.options
        if opts.lmtp:
            return Lhlo(opts.helo_name)
        if opts.never_send_ehlo or self.workarounds.disable_esmtp:
            return Helo(opts.helo_name)
        if opts.always_send_ehlo:
            return Ehlo(opts.helo_name)
        # Neither forced: EHLO only when the greeting mentions ESMTP (Postfix behaviour).
        greeting = self.greeting.text if self.greeting else ""
        return Ehlo(opts.helo_name) if "ESMTP" in greeting.upper() else Helo(opts.helo_name)

    async def hello(self, workarounds: Workarounds | None = None) -> HandshakeFailure | None:
        """EHLO (or HELO/LHLO); after any refusal of EHLO but 421, fall back to HELO
        (RFC 5321 3.2; Postfix smtp_helo()). `workarounds` (None: those already in use,
        after STARTTLS) are kept for the rest of the session."""
        if workarounds is not None:
            self.workarounds = workarounds
        channel = self.channel
        command = self._hello_command()
        channel.send(command)
        reply = await channel.reply()
        if reply.code // 100 == 2:
            return None
        if isinstance(command, Ehlo) and reply.code != 421:
            channel.send(Helo(self.options.helo_name))
            reply = await channel.reply()
            if reply.code // 100 == 2:
                return None
            return HandshakeFailure(Stage.HELO, reply)
        return HandshakeFailure(command.stage, reply)

    # --- STARTTLS (RFC 3207) and SASL (RFC 4954): see starttls.py and auth.py ----------
    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> Reply | None:
        """STARTTLS and the handshake (starttls.py): the server's reply if it refused, None
        once TLS is up; a handshake failure or injected plaintext raises `TransportError`."""
        return await _starttls(self.channel, context, server_hostname)

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
            self.channel, mechanism, max_rounds=max_rounds, max_challenge=max_challenge
        )

    # --- mail transaction -------------------------------------------------------------
    async def transaction(
        self, envelope: Envelope, content: ContentFactory, *, reset_first: bool = False
    ) -> TransactionResult:
        """One MAIL/RCPT/DATA transaction. Never raises for network trouble: see `.error`.

        `reset_first` checks a reused session with RSET first; with PIPELINING the RSET goes
        in the same write as MAIL, RCPT and DATA (RFC 2920 3.1 allows it anywhere in a
        group), so the check costs no round trip. See `TransactionResult.reset_failed`.
        An address probe (`Envelope.probe`) is MAIL, the RCPTs and RSET: `content` is not
        called, and the session is left as after any transaction."""
        result = TransactionResult(rcpt=[None] * len(envelope.recipients), started=time.monotonic())
        try:
            await self._transaction(envelope, content, result, reset_first)
        except TransportError as exc:
            result.error = exc
            self.channel.lose()
        except ContentError as exc:
            # Mid-DATA there is no way to cancel but to drop the connection without the
            # final dot (Postfix: "disconnect ungracefully").
            result.content_error = exc
            self.channel.lose()
        self.transactions += 1
        return result

    async def _transaction(
        self,
        envelope: Envelope,
        content: ContentFactory,
        result: TransactionResult,
        reset_first: bool,
    ) -> None:
        caps = self.proto.capabilities
        quote = self.options.quote_envelope
        rcpts, position = rcpt_commands(envelope, caps, quote)
        commands: list[Command] = [Rset()] if reset_first else []
        # XFORWARD (not a sync point) rides in front of MAIL, as Postfix does.
        commands += xforward_commands(envelope, caps)
        commands.append(mail_command(envelope, caps, quote))
        commands += rcpts
        if envelope.probe_data:
            commands.append(Data())  # smtp_address_verify_target = data
        elif envelope.probe:
            # An address probe ends after the RCPTs with RSET, in the same group (Postfix
            # smtp_proto.c, trace-only request): the RCPT replies are the verdicts.
            commands.append(Rset())
        elif not envelope.bdat:
            # With BDAT (RFC 3030) the commands end with the last RCPT: chunks follow only
            # when a recipient was accepted.
            commands.append(Data())
        await self._exchange(commands, result, position, ahead=caps.pipelining)
        if result.reset_failed:
            self.broken = True
            if self.proto.state is State.CONTENT:
                self.channel.send(DataEnd())  # end the empty message; its reply does not count
                await self.channel.reply()
            return
        if envelope.probe:
            if self.proto.state is State.CONTENT:
                # The server waits for content that will never come: no RSET, no QUIT, no
                # reuse; "an unceremonious disconnect" (smtp_proto.c).
                self.broken = True
                self.channel.lose()
            return
        if envelope.bdat:
            if result.has_accepted and result.mail is not None and result.mail.code // 100 == 2:
                await send_chunks(self.channel, content, result, position)
            return
        if self.proto.state is not State.CONTENT:
            return
        if not result.has_accepted or (result.mail is not None and result.mail.code // 100 != 2):
            # The server said 354 although nothing was accepted: end the empty message at
            # once (RFC 2920 3.1) and disregard its reply.
            self.channel.send(DataEnd())
            await self.channel.reply()
            return
        await self._send_content(content(), result)
        await collect_dot(self.channel, result, position)

    async def _exchange(
        self,
        commands: list[Command],
        result: TransactionResult,
        position: dict[int, int],
        *,
        ahead: bool,
    ) -> None:
        """Send `commands` and read their replies into `result`. With `ahead`
        (PIPELINING) every command goes in one write before the first reply is read;
        without it, each waits for the reply to the one before (a window of one), and a
        command the replies made pointless is not sent: nothing after a failed RSET check
        or a refused MAIL, no DATA when no RCPT was accepted (Postfix smtp_proto.c)."""
        channel = self.channel
        if ahead:
            channel.send(*commands)
            # The first reply needs a read; the others of a group usually came with it.
            event = await channel.event()
            for n in range(len(commands)):
                if n:
                    event = channel.ready_event() or await channel.event()
                assert isinstance(event, CommandReply)
                _record(result, event, position)
            return
        for command in commands:
            if not self._still_wanted(command, result):
                return
            channel.send(command)
            event = await channel.event()
            assert isinstance(event, CommandReply)
            _record(result, event, position)

    @staticmethod
    def _still_wanted(command: Command, result: TransactionResult) -> bool:
        if result.reset_failed:
            return False
        mail = result.mail
        if isinstance(command, (RcptTo, Data)) and mail is not None and mail.code // 100 != 2:
            return False
        return not isinstance(command, Data) or result.has_accepted

    async def _send_content(self, chunks: Iterable[bytes], result: TransactionResult) -> None:
        """Stream the content, then the final dot, in as few writes as the sizes allow.

        Small chunks are gathered up to WRITE_BATCH bytes (each write() of an idle asyncio
        transport is a send() system call), and the final dot rides with the last of them:
        a message encoded whole (ContentPlan.plain_chunks: one chunk) goes in one write.
        """
        channel = self.channel
        conn = channel.conn
        # Made when a write first has to wait (most messages never do).
        deadline: ContentDeadline | None = None
        sent = 0
        batch: list[bytes] = []
        batched = 0
        streamed = False
        for chunk in chunks:
            if not chunk:
                continue
            batch.append(channel.content(chunk))
            batched += len(chunk)
            if batched >= WRITE_BATCH:
                conn.write(b"".join(batch), Stage.BODY)
                sent += batched
                batch.clear()
                batched = 0
                streamed = True
                if conn.must_drain:
                    deadline = self._content_deadline(deadline, sent)
                    sent = 0
                    await deadline.drain(conn, Stage.BODY)
        if streamed:
            # One turn of the event loop before the dot: a reply the server sent while the
            # content was going out (never the verdict) is then seen, and no dot is sent.
            await asyncio.sleep(0)
        if self.workarounds.dot_delay > 0:
            # PIX delay_dotcrlf: the final dot must not share a packet with the content.
            if batch:
                conn.write(b"".join(batch), Stage.BODY)
                sent += batched
                batch.clear()
                batched = 0
            deadline = self._content_deadline(deadline, sent)
            sent = 0
            await deadline.drain(conn, Stage.BODY)
            await asyncio.sleep(self.workarounds.dot_delay)
        # A reply that came while the content went out was not asked for: the dot is not
        # sent, so the server cannot take the message (the error is the content's).
        batch.append(channel.wire(DataEnd(), stage=Stage.BODY))
        conn.write(b"".join(batch), Stage.DOT)
        result.content_sent = True
        if not conn.drained:
            deadline = self._content_deadline(deadline, sent + batched)
            await deadline.drain(conn, Stage.DOT, self.options.timeout(Stage.DOT))

    def _content_deadline(self, deadline: ContentDeadline | None, sent: int) -> ContentDeadline:
        """The content's deadline (made now if needed), credited with `sent` more octets."""
        if deadline is None:
            deadline = ContentDeadline(self.options)
        deadline.sent(sent)
        return deadline

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
            self.channel.send(Rset())
            reply = await self.channel.reply()
        except TransportError:
            self.channel.lose()
            return False
        return reply.code // 100 == 2

    @property
    def needs_rset(self) -> bool:
        return self.proto.state in _NEEDS_RSET

    async def quit(self) -> None:
        """QUIT and close. Never raises. No QUIT after a 421 or a broken session."""
        try:
            if not self.broken and not self.conn.at_eof and self.proto.state not in _NO_QUIT:
                self.channel.send(Quit())
                if self.options.skip_quit_response:
                    await self.conn.drain(self.options.timeout(Stage.QUIT), Stage.QUIT)
                else:
                    await self.channel.reply()
        except TransportError:
            pass
        if self.broken:
            self.conn.abort()
        else:
            await self.conn.close()


def _record(result: TransactionResult, event: CommandReply, position: dict[int, int]) -> None:
    """A reply to an envelope command into its place in `result`."""
    command, reply = event.command, event.reply
    if isinstance(command, RcptTo):
        result.rcpt[position[id(command)]] = reply
    elif isinstance(command, MailFrom):
        result.mail = reply
    elif isinstance(command, Data):
        result.data = reply
    elif isinstance(command, Rset):
        # Replies come in order: the check of a reused session is answered before MAIL, a
        # probe's final RSET after it.
        if result.mail is None:
            result.rset = reply
        else:
            result.final_rset = reply
    elif isinstance(command, Xforward):
        result.xforward.append(reply)
