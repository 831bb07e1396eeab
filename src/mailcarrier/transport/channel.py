"""One connection's commands and replies: the only way the session driver (session.py),
STARTTLS (starttls.py), AUTH (auth.py) and BDAT (bdat.py) talk to a server.

A `Channel` joins the byte stream (`Connection`) to the sans-IO protocol object
(`ClientConnection`): `send()` writes commands (several at once: one write, RFC 2920
pipelining), `send_content()` the message content, `event()` and `reply()` read what answers
the oldest command in flight, each read limited by that command's stage (deadlines.py), and
`fail()` turns a protocol error into the `TransportError` of its stage ("remote protocol
error from h[a] while sending RCPT TO: ..."), after which the channel is `broken`. Bytes the
server sends with no command in flight are never taken as a reply: before a command goes out,
and after the last reply of a transaction, they end the session (`check_nothing_unasked`).
With a transcript (`history`, for the postmaster: delivery/transcript.py) every command and
reply is recorded, and the codes of failure replies are kept as they come (`failure_codes`,
as Postfix's session->error_mask).
"""

from __future__ import annotations

from mailcarrier.errors import RemoteProtocolError, TransportError
from mailcarrier.protocol.client import (
    NEED_DATA,
    ClientConnection,
    CommandReply,
    ConnectionClosed,
    Greeting,
    RecipientReply,
)
from mailcarrier.protocol.commands import Command
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.transport.connection import Connection
from mailcarrier.transport.deadlines import ReplyDeadline
from mailcarrier.transport.history import record_error, record_in, record_out
from mailcarrier.transport.options import SessionOptions

__all__ = ["Channel", "ReplyEvent"]

# The events a channel hands out: each carries a reply (end of file is a `TransportError`).
ReplyEvent = Greeting | CommandReply | RecipientReply


def _stage(command: Command | None) -> Stage:
    return command.stage if command is not None else Stage.GREETING


class Channel:
    """Commands out, replies in, on one connection. Create with `Channel(conn, options)`."""

    __slots__ = (
        "broken",
        "conn",
        "failure_codes",
        "history",
        "options",
        "proto",
        "protocol_errors",
        "reads",
    )

    def __init__(self, conn: Connection, options: SessionOptions) -> None:
        self.conn = conn
        self.options = options
        self.proto = ClientConnection(
            lmtp=options.lmtp,
            discard_keywords=options.discard_keywords,
            reply_filter=options.reply_filter,
        )
        self.reads = ReplyDeadline(options)
        self.broken = False  # no further use (I/O or protocol error, 421)
        # The conversation for a postmaster transcript: a list to record "Out: ..." and
        # "In: ..." lines in, or None (the default) to record nothing.
        self.history: list[str] | None = None
        self.protocol_errors = 0  # malformed or out-of-order replies seen
        self.failure_codes: set[int] = set()  # 4xx/5xx replies seen (recorded with history)

    # --- writing ----------------------------------------------------------------------
    def wire(self, *commands: Command, stage: Stage | None = None) -> bytes:
        """The commands' bytes (several: a pipelined group), each recorded as in flight; a
        server that sent something unasked ends the session (a protocol error at `stage`,
        by default the first command's: after it, a reply is awaited)."""
        proto = self.proto
        if self.conn.buffered and proto.idle:
            self._pull_unasked()
        try:
            sent = [proto.send(command) for command in commands]
        except RemoteProtocolError as exc:
            raise self.fail(stage or commands[0].stage, exc) from exc
        if self.history is not None:
            for command, data in zip(commands, sent, strict=True):
                record_out(self.history, command, data)
        return sent[0] if len(sent) == 1 else b"".join(sent)

    def send(self, *commands: Command, stage: Stage | None = None) -> None:
        """Write the commands in one write (a pipelined group when there are several)."""
        data = self.wire(*commands, stage=stage)
        try:
            self.conn.write(data, stage or commands[0].stage)
        except TransportError:
            self.lose()
            raise

    def content(self, data: bytes) -> bytes:
        """Message content bytes (already dot-stuffed when DATA carries them), accounted
        for by the protocol object; the caller writes them (with others, in batches)."""
        return self.proto.send_content(data)

    # --- reading ----------------------------------------------------------------------
    def ready_event(self) -> ReplyEvent | None:
        """The next event if the bytes already received hold one, else None (read more).
        A plain call: a pipelined group's replies arrive together, and only the first of
        them needs to wait. Protocol errors and end of file become `TransportError`."""
        proto = self.proto
        try:
            event = proto.next_event()
        except RemoteProtocolError as exc:
            raise self.fail(_stage(proto.next_in_flight), exc) from exc
        if event is NEED_DATA:
            return None
        if isinstance(event, ConnectionClosed):
            raise self.conn.lost_error(_stage(proto.next_in_flight))
        # Every other event (Greeting, CommandReply, RecipientReply) carries a reply.
        reply = event.reply
        if reply.code == 421:
            self.broken = True
        if self.history is not None:
            record_in(self.history, reply)
            if reply.code >= 400:
                self.failure_codes.add(reply.code)
        return event

    async def event(self) -> ReplyEvent:
        """The next protocol event; network failures become `TransportError`."""
        proto = self.proto
        if not proto.needs_data:
            event = self.ready_event()
            if event is not None:
                return event
        while True:
            awaited = proto.next_in_flight
            proto.receive_data(await self.reads.read(self.conn, awaited, _stage(awaited)))
            # Bytes came (or the end of file): the protocol object has something to look at.
            event = self.ready_event()
            if event is not None:
                return event

    async def reply(self) -> Reply:
        return (await self.event()).reply

    def _pull_unasked(self) -> None:
        """No reply is outstanding, yet the server sent something (a reply while the
        content was still going out, junk on an idle session): hand it to the protocol
        object, which refuses to send anything more once it holds unasked data."""
        self.proto.receive_data(self.conn.take_received())

    def check_nothing_unasked(self, stage: Stage) -> None:
        """After the last reply of a transaction nothing may follow it: a server that
        sends more (an early reply during the content, then the real one) has made the
        verdict ambiguous, and the transaction counts as failed (RFC 5321 4.1.1.4: only
        the reply to the final dot is the verdict on the message)."""
        if self.conn.buffered:
            self._pull_unasked()
        if self.proto.has_buffered_data:
            raise self.fail(
                stage, RemoteProtocolError("unexpected data from server after its last reply")
            )

    # --- failing ----------------------------------------------------------------------
    def lose(self) -> None:
        """The connection failed under a write or a read (or the content could not be
        read mid-DATA): the server may have seen any part of what was sent, so the
        protocol object refuses all further work (h11's send_failed) and the channel is
        not used again."""
        self.broken = True
        self.proto.send_failed()

    def fail(self, stage: Stage, exc: Exception) -> TransportError:
        """The `TransportError` of a protocol error at `stage`; the channel is broken."""
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

    def forget_transcript(self) -> None:
        """Start a new transcript (the last one was handed over, or not wanted)."""
        self.history = []
        self.protocol_errors = 0
        self.failure_codes = set()
