"""The sans-IO SMTP/LMTP client state machine: bytes in, events out; commands in, bytes out.

`ClientConnection` owns no socket, clock or logger. The driver (transport/session.py) calls
`send(command)` to get the bytes to write, `send_content(chunk)` for the message body,
`receive_data(bytes)` with what the server sent (``b""`` at end of file), and `next_event()`
to get `Greeting`, `CommandReply`, `RecipientReply` (LMTP: one per accepted recipient after
the final dot or BDAT LAST) or `ConnectionClosed` events, or `NEED_DATA`. With CHUNKING
(RFC 3030) each `Bdat` command is followed by exactly its size in `send_content` octets.

Replies are matched to commands through a FIFO of commands in flight, which is what makes
RFC 2920 pipelining safe: a reply that arrives with no command in flight, or any byte that
arrives while nothing is expected, is a `RemoteProtocolError`. Every legal move is in the
`_SEND` and `_AFTER_REPLY` tables below; any exception moves the machine to ERROR, after which
it refuses all work. What a reply *means* for a recipient is not decided here (that is
delivery/trouble.py); course correction (RSET after a rejected MAIL, RCPTs or DATA) is the
driver's choice, but this machine only allows the moves RFC 5321 allows.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import LocalProtocolError, RemoteProtocolError
from mailcarrier.protocol.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    DataEnd,
    Ehlo,
    Helo,
    Lhlo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTls,
    Xforward,
)
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.protocol.reply import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    LineFilter,
    Reply,
    ReplyParser,
)
from mailcarrier.status import fast_init

__all__ = [
    "NEED_DATA",
    "ClientConnection",
    "CommandReply",
    "ConnectionClosed",
    "Event",
    "Greeting",
    "NeedData",
    "RecipientReply",
    "State",
]


class State(enum.Enum):
    """What the client may send next."""

    # Part of the `_SEND` key of every command sent: hash by identity, in C, instead of
    # Enum's hash of the name in Python. Members compare by identity anyway.
    __hash__ = object.__hash__

    GREETING = "greeting"  # waiting for the server greeting
    HELLO = "hello"  # may send EHLO/HELO/LHLO
    READY = "ready"  # session established: MAIL, STARTTLS, AUTH, RSET, NOOP, QUIT
    AUTH = "auth"  # a 334 challenge is outstanding: answer it
    MAIL = "mail"  # MAIL sent: RCPT
    RCPT = "rcpt"  # RCPT sent: more RCPT, or DATA
    DATA = "data"  # DATA sent, its reply not yet seen
    CONTENT = "content"  # 354 received: the body, then the final dot
    CHUNK = "chunk"  # RFC 3030: BDAT chunks being sent: chunk data, the next BDAT, or QUIT
    DOT = "dot"  # final dot (or BDAT LAST) sent, reply(ies) outstanding
    ABORTED = "aborted"  # transaction failed: RSET or QUIT only
    TLS = "tls"  # STARTTLS accepted: handshake, then tls_established()
    CLOSED = "closed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Greeting:
    reply: Reply


@fast_init
@dataclass(frozen=True, slots=True)
class CommandReply:
    command: Command
    reply: Reply


@fast_init
@dataclass(frozen=True, slots=True)
class RecipientReply:
    """LMTP (RFC 2033 4.2): the reply for one accepted recipient after the final dot."""

    recipient: RcptTo
    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """End of file from the server. `pending` lists the commands still awaiting a reply."""

    pending: tuple[Command, ...]
    partial: bool  # part of a reply had arrived


class NeedData(enum.Enum):
    NEED_DATA = "need-data"


NEED_DATA: Final = NeedData.NEED_DATA

Event = Greeting | CommandReply | RecipientReply | ConnectionClosed

# Moves allowed on send: (state, command class) -> state after sending.
_SEND: Final[dict[tuple[State, type[Command]], State]] = {
    (State.GREETING, Quit): State.CLOSED,
    (State.HELLO, Ehlo): State.HELLO,
    (State.HELLO, Helo): State.HELLO,
    (State.HELLO, Lhlo): State.HELLO,
    (State.HELLO, Quit): State.CLOSED,
    (State.READY, Ehlo): State.HELLO,
    (State.READY, Lhlo): State.HELLO,
    (State.READY, StartTls): State.READY,
    (State.READY, Auth): State.READY,
    # Postfix XFORWARD_README: before MAIL; the reply does not change the state.
    (State.READY, Xforward): State.READY,
    (State.READY, MailFrom): State.MAIL,
    (State.READY, Rset): State.READY,
    (State.READY, Noop): State.READY,
    (State.READY, Quit): State.CLOSED,
    (State.AUTH, AuthResponse): State.READY,
    (State.AUTH, Quit): State.CLOSED,
    (State.MAIL, RcptTo): State.RCPT,
    (State.MAIL, Rset): State.READY,
    (State.MAIL, Quit): State.CLOSED,
    (State.RCPT, RcptTo): State.RCPT,
    (State.RCPT, Data): State.DATA,
    (State.RCPT, Rset): State.READY,
    (State.RCPT, Quit): State.CLOSED,
    (State.DATA, Rset): State.READY,
    (State.DATA, Quit): State.CLOSED,
    (State.CONTENT, DataEnd): State.DOT,
    # RFC 3030 2: BDAT after the RCPTs (a BDAT LAST moves to DOT instead, see `send`).
    (State.RCPT, Bdat): State.CHUNK,
    (State.CHUNK, Bdat): State.CHUNK,
    (State.CHUNK, Quit): State.CLOSED,
    (State.ABORTED, Rset): State.READY,
    (State.ABORTED, Quit): State.CLOSED,
    (State.DOT, Quit): State.CLOSED,
    (State.TLS, Quit): State.CLOSED,
}


# Commands whose reply must be read before anything but QUIT is sent (see `send`).
_SYNC_POINTS: Final = (Data, StartTls, Auth, AuthResponse)
_SYNC_TYPES: Final = frozenset(_SYNC_POINTS)
_HELLO_TYPES: Final = frozenset({Ehlo, Helo, Lhlo})

# Only commands of exactly these types can be in flight (`_SEND` is keyed by the exact type),
# so the machine dispatches on `type(command) is ...` rather than on isinstance() chains.


def _after_reply(state: State, command: Command, reply: Reply) -> State:
    """The state change a reply causes, given the state at the time it is processed."""
    cls = type(command)
    code = reply.code
    if cls is Data:
        if state is State.DATA:
            return State.CONTENT if code == 354 else State.ABORTED
        return state
    if cls in _HELLO_TYPES:
        if state is State.HELLO:
            return State.READY if code // 100 == 2 else State.HELLO
        return state
    if cls is StartTls:
        return State.TLS if code // 100 == 2 and state is State.READY else state
    if cls is Auth or cls is AuthResponse:
        if state in (State.READY, State.AUTH):
            return State.AUTH if code == 334 else State.READY
        return state
    return state


class ClientConnection:
    """One SMTP or LMTP client connection's protocol state. See the module docstring."""

    def __init__(
        self,
        *,
        lmtp: bool = False,
        discard_keywords: Iterable[str] = (),
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_lines: int = DEFAULT_MAX_LINES,
        reply_filter: LineFilter | None = None,
    ) -> None:
        self.lmtp = lmtp
        self._discard = tuple(discard_keywords)
        self._reply_filter = reply_filter
        self._parser = ReplyParser(
            max_line_length=max_line_length, max_lines=max_lines, line_filter=reply_filter
        )
        self._limits = (max_line_length, max_lines)
        self._state = State.GREETING
        # FIFO of (command, replies still expected); None stands for the greeting.
        self._in_flight: deque[tuple[Command | None, int]] = deque([(None, 1)])
        # The sync point (see `send`) in flight, if any: at most one, since nothing but
        # QUIT may follow it until its reply is read.
        self._sync: Command | None = None
        self._eof = False
        self._closed_reported = False
        self.capabilities = Capabilities()
        self.hello_reply: Reply | None = None
        self._accepted: list[RcptTo] = []
        self._dot_replies: deque[RcptTo] = deque()
        self.content_bytes = 0
        # RFC 3030: octets of the current BDAT chunk still to be sent; a refused chunk.
        self._chunk_remaining = 0
        self._bdat_failed = False

    # --- introspection ----------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def in_flight(self) -> tuple[Command, ...]:
        return tuple(c for c, _ in self._in_flight if c is not None)

    @property
    def next_in_flight(self) -> Command | None:
        """The oldest command still awaiting a reply (`in_flight[0]`, without building the
        tuple: the driver asks on every read); None when there is none."""
        for command, _ in self._in_flight:
            if command is not None:
                return command
        return None

    @property
    def needs_data(self) -> bool:
        """True when `next_event()` would return NEED_DATA without looking: no unread byte
        from the server, no end of file to report, no error. The driver then reads at once
        (a pipelined group's first reply, the reply to the final dot)."""
        return self._parser.exhausted and not self._eof and self._state is not State.ERROR

    @property
    def idle(self) -> bool:
        """True when no reply is outstanding (not even the greeting's): any byte from the
        server now is one nobody asked for."""
        return not self._in_flight

    @property
    def has_buffered_data(self) -> bool:
        """True when the server sent bytes that no event has consumed yet."""
        return self._parser.in_reply

    @property
    def accepted_recipients(self) -> tuple[RcptTo, ...]:
        """RCPTs of the current transaction the server accepted (2xx)."""
        return tuple(self._accepted)

    # --- sending ----------------------------------------------------------------------
    def send(self, command: Command) -> bytes:
        """Validate the move, record the command as in flight, return its bytes."""
        state = self._state
        cls = type(command)
        # No command leaves ERROR or CLOSED (`_SEND` has no such move).
        after = _SEND.get((state, cls))
        if after is None:
            if state is State.ERROR or state is State.CLOSED:
                self._check_usable()
            raise LocalProtocolError(f"cannot send {cls.__name__} in state {state.value}")
        if cls in _HELLO_TYPES:
            if cls is not Lhlo and self.lmtp:
                raise LocalProtocolError("LMTP sessions use LHLO, not EHLO or HELO")
            if cls is Lhlo and not self.lmtp:
                raise LocalProtocolError("LHLO is for LMTP sessions only")
        # RFC 2920 3.1 (DATA), RFC 3207 4.2 (STARTTLS), RFC 4954 4 (AUTH and its 334 answers):
        # the reply decides what the next line means (content, a TLS handshake, a SASL
        # response), so nothing but QUIT may follow such a command until its reply is read.
        sync = self._sync
        if sync is not None and cls is not Quit:
            raise LocalProtocolError(
                f"cannot send {cls.__name__} before the reply to {type(sync).__name__}"
            )
        if not self._in_flight and self._parser.in_reply:
            self._fail()
            raise RemoteProtocolError("unexpected data from server with no command in flight")
        if self._chunk_remaining:
            # RFC 3030 2: the chunk is exactly `size` octets; a command now would be data.
            raise LocalProtocolError(
                f"cannot send {type(command).__name__} with {self._chunk_remaining} octets "
                "of the BDAT chunk unsent"
            )
        # Refused input (CR/LF/NUL) raises here and leaves the connection usable: nothing
        # was sent, nothing is in flight.
        data = command.wire()
        if cls is MailFrom:
            self._accepted.clear()
            self._bdat_failed = False
        expected = 1
        if cls is DataEnd or (cls is Bdat and command.last):  # type: ignore[attr-defined]
            # LMTP (RFC 2033 4.2, RFC 3030 with LMTP): one reply per accepted recipient.
            self._dot_replies = deque(self._accepted)
            expected = max(1, len(self._accepted)) if self.lmtp else 1
        if cls is Bdat:
            assert isinstance(command, Bdat)
            self._state = State.DOT if command.last else after
            self._chunk_remaining = command.size
        else:
            self._state = after
        if cls in _SYNC_TYPES:
            self._sync = command
        self._in_flight.append((command, expected))
        return data

    def send_content(self, data: bytes) -> bytes:
        """Account for encoded body bytes (already dot-stuffed by content/); pass them on."""
        if self._state is not State.CONTENT:
            if len(data) > self._chunk_remaining:
                raise LocalProtocolError(
                    f"cannot send {len(data)} octets of message content in state "
                    f"{self._state.value} ({self._chunk_remaining} left in the BDAT chunk)"
                )
            self._chunk_remaining -= len(data)
        self.content_bytes += len(data)
        return data

    def tls_established(self) -> None:
        """The TLS handshake after STARTTLS completed: forget everything from before it.

        RFC 3207 4.2: the client MUST discard knowledge obtained from the server before TLS
        and MUST send EHLO again. Any byte the server sent after its STARTTLS reply and
        before the handshake is an injection attempt: the session is aborted.
        """
        if self._state is not State.TLS:
            raise LocalProtocolError(f"tls_established() in state {self._state.value}")
        if self._parser.in_reply:
            self._fail()
            raise RemoteProtocolError("unexpected plaintext data received after STARTTLS reply")
        self._parser = ReplyParser(
            max_line_length=self._limits[0],
            max_lines=self._limits[1],
            line_filter=self._reply_filter,
        )
        self.capabilities = Capabilities()
        self.hello_reply = None
        self._state = State.HELLO

    # --- receiving --------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server; ``b""`` means end of file."""
        if self._state is State.ERROR:
            self._check_usable(allow_closed=True)
        if data:
            self._parser.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        if self._state is State.ERROR:
            self._check_usable(allow_closed=True)
        try:
            if self._in_flight:
                reply = self._parser.next_reply()
                if reply is not None:
                    return self._dispatch(reply)
            elif self._parser.in_reply:
                # Complete or not, bytes with nothing in flight desynchronise the pipeline.
                raise RemoteProtocolError("unexpected reply from server with no command in flight")
        except RemoteProtocolError:
            self._fail()
            raise
        if self._eof:
            if self._closed_reported:
                return NEED_DATA
            self._closed_reported = True
            pending = self.in_flight
            self._state = State.CLOSED
            return ConnectionClosed(pending, self._parser.in_reply)
        return NEED_DATA

    def _dispatch(self, reply: Reply) -> Event:
        in_flight = self._in_flight
        command, expected = in_flight[0]
        cls = type(command)
        last_chunk = cls is Bdat and command.last  # type: ignore[union-attr]
        if last_chunk and self._bdat_failed:
            # RFC 3030 2: after a refused chunk BDAT LAST is refused (503) with one reply,
            # not one per LMTP recipient.
            self._dot_replies.clear()
            expected = 1
        if expected <= 1:
            in_flight.popleft()
        else:
            in_flight[0] = (command, expected - 1)
        ok = reply.code // 100 == 2
        if command is None:
            # Only from GREETING: a QUIT sent before the greeting arrived keeps us CLOSED.
            if ok and self._state is State.GREETING:
                self._state = State.HELLO
            return Greeting(reply)
        if command is self._sync:
            self._sync = None  # sync points expect one reply: it has come
        if cls is RcptTo:
            if ok:
                self._accepted.append(command)  # type: ignore[arg-type]
            return CommandReply(command, reply)  # RCPT moves no state on its reply
        if cls is MailFrom or cls is Xforward or cls is Noop:
            return CommandReply(command, reply)  # nor do these
        if ok:
            if cls is Ehlo or cls is Lhlo:
                self.capabilities = Capabilities.parse(reply, self._discard)
                self.hello_reply = reply
            elif cls is Helo:
                self.capabilities = Capabilities()
                self.hello_reply = reply
        self._state = _after_reply(self._state, command, reply)
        if cls is Bdat and not last_chunk and not ok:
            # RFC 3030 2: after a refused chunk, no further BDAT; the transaction failed.
            self._bdat_failed = True
            if self._state is State.CHUNK:
                self._state = State.ABORTED
        if cls is DataEnd or last_chunk:
            if not in_flight or in_flight[0][0] is not command:
                if self._state is State.DOT:
                    # After a refused chunk the server's state is unsure: RSET first.
                    self._state = State.ABORTED if self._bdat_failed else State.READY
                self._accepted.clear()
            if self.lmtp and self._dot_replies:
                return RecipientReply(self._dot_replies.popleft(), reply)
        if cls is Rset and self._state is State.READY:
            self._accepted.clear()
        return CommandReply(command, reply)

    # --- error handling ---------------------------------------------------------------
    def _fail(self) -> None:
        self._state = State.ERROR

    def _check_usable(self, *, allow_closed: bool = False) -> None:
        if self._state is State.ERROR:
            raise LocalProtocolError("connection is in ERROR state after a protocol error")
        if self._state is State.CLOSED and not allow_closed:
            raise LocalProtocolError("connection is closed")
