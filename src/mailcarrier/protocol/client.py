"""The sans-IO SMTP/LMTP client state machine: bytes in, events out; commands in, bytes out.

`ClientConnection` owns no socket, clock or logger. The driver (transport/session.py) calls
`send(command)` to get the bytes to write, `send_content(chunk)` for the message body,
`receive_data(bytes)` with what the server sent (``b""`` at end of file), and `next_event()`
to get the events of events.py (re-exported here), or `NEED_DATA`. With CHUNKING (RFC 3030)
each `Bdat` command is followed by exactly its size in `send_content` octets.

Replies are matched to commands through a FIFO of commands in flight, which is what makes
RFC 2920 pipelining safe: a reply that arrives with no command in flight, or any byte that
arrives while nothing is expected, is a `RemoteProtocolError`. Every move of the machine is in
two tables: `_SEND` (what may be sent in each state, and the state after it) and `_ON_REPLY`
(where a command's last reply leads, by the reply's class). Code keeps only the bookkeeping:
the accepted recipients (LMTP answers the final dot once for each, RFC 2033 4.2) and the BDAT
chunks (RFC 3030).

Errors follow h11's rule. What the machine refuses (a move `_SEND` does not allow, anything
but QUIT before a sync point's reply, CR, LF or NUL in an address) is refused before anything
changes: `LocalProtocolError`, and the connection stays usable. Any other exception inside
`send()`, `send_content()`, `tls_established()`, `receive_data()` or `next_event()` (from the
parser, a raising smtp_reply_filter, a bug) moves it to ERROR, as does `send_failed()` (the
driver's write failed); in ERROR it refuses all work. What a reply *means* for a recipient is
delivery/trouble.py's business; course correction (RSET after a rejected MAIL, RCPTs or DATA)
is the driver's, but this machine allows only the moves RFC 5321 allows.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
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
from mailcarrier.protocol.events import (
    NEED_DATA,
    CommandReply,
    ConnectionClosed,
    Event,
    Greeting,
    NeedData,
    RecipientReply,
)
from mailcarrier.protocol.reply import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    LineFilter,
    Reply,
    ReplyParser,
)

__all__ = [
    "NEED_DATA",
    "ClientConnection",
    "CommandReply",
    "ConnectionClosed",
    "Event",
    "Greeting",
    "NeedData",
    "RecipientReply",
    "ReplyClass",
    "State",
]


class State(enum.Enum):
    """What the client may send next."""

    # Part of every table key: hash by identity, in C, not by Enum's hash of the name.
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


class ReplyClass(enum.Enum):
    """A reply's class for the moves: the first digit of its code (RFC 5321 4.2.1)."""

    __hash__ = object.__hash__  # as `State`

    SUCCESS = 2  # 2xx, Positive Completion
    INTERMEDIATE = 3  # 3xx, Positive Intermediate: the go-ahead its command asked for
    TRANSIENT = 4  # 4xx, Transient Negative Completion
    PERMANENT = 5  # 5xx, Permanent Negative Completion


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


# Moves on a reply: (state when the reply is read, command class, reply class) -> state. The
# move applies to a command's last reply (LMTP: the last of the final dot's per-recipient
# replies); a key not here leaves the state as it is (a reply read after a pipelined QUIT
# finds CLOSED; MAIL, RCPT, XFORWARD, NOOP, RSET and QUIT move nothing on their reply). None
# stands for the greeting, and a BDAT LAST moves as the final dot does.
_ON_REPLY: Final[dict[tuple[State, type[Command] | None, ReplyClass], State]] = {
    (State.GREETING, None, ReplyClass.SUCCESS): State.HELLO,
    (State.HELLO, Ehlo, ReplyClass.SUCCESS): State.READY,
    (State.HELLO, Helo, ReplyClass.SUCCESS): State.READY,
    (State.HELLO, Lhlo, ReplyClass.SUCCESS): State.READY,
    (State.READY, StartTls, ReplyClass.SUCCESS): State.TLS,  # RFC 3207 4: 220, handshake
    # RFC 4954 4: a 334 asks for a response; any other reply ends the exchange.
    (State.READY, Auth, ReplyClass.INTERMEDIATE): State.AUTH,
    (State.READY, AuthResponse, ReplyClass.INTERMEDIATE): State.AUTH,
    # RFC 5321 4.1.1.4: 354 and the content follows; anything else fails the transaction.
    (State.DATA, Data, ReplyClass.INTERMEDIATE): State.CONTENT,
    (State.DATA, Data, ReplyClass.SUCCESS): State.ABORTED,
    (State.DATA, Data, ReplyClass.TRANSIENT): State.ABORTED,
    (State.DATA, Data, ReplyClass.PERMANENT): State.ABORTED,
    # RFC 3030 2: after a refused chunk, no further BDAT; the transaction failed.
    (State.CHUNK, Bdat, ReplyClass.TRANSIENT): State.ABORTED,
    (State.CHUNK, Bdat, ReplyClass.PERMANENT): State.ABORTED,
    # RFC 5321 4.1.1.4: whatever the verdict, the transaction is over.
    (State.DOT, DataEnd, ReplyClass.SUCCESS): State.READY,
    (State.DOT, DataEnd, ReplyClass.TRANSIENT): State.READY,
    (State.DOT, DataEnd, ReplyClass.PERMANENT): State.READY,
}

# Reply classes by the first digit of the code (the parser lets only 2xx to 5xx through).
_REPLY_CLASSES: Final = {rclass.value: rclass for rclass in ReplyClass}
# The one go-ahead each command may get (RFC 5321 4.3.2: 354 to DATA; RFC 4954 4: 334 to
# AUTH and to each response). Any other 3xx asks for something no command here can give: it
# counts as a refusal (PERMANENT) for the moves, as it always did.
_GO_AHEAD: Final[dict[type[Command | None], int]] = {Data: 354, Auth: 334, AuthResponse: 334}

# Members read on every reply or chunk, as plain globals: on CPython 3.11 reading an attribute
# of an Enum class goes through EnumType.__getattr__ (~0.2 us); a global read is cached.
_SUCCESS: Final = ReplyClass.SUCCESS
_INTERMEDIATE: Final = ReplyClass.INTERMEDIATE
_PERMANENT: Final = ReplyClass.PERMANENT
_READY: Final = State.READY
_CONTENT: Final = State.CONTENT
_DOT: Final = State.DOT
_ERROR: Final = State.ERROR

# Commands whose reply must be read before anything but QUIT is sent (see `send`).
_SYNC_TYPES: Final = frozenset((Data, StartTls, Auth, AuthResponse))
# Commands that get one reply, which moves nothing (`_ON_REPLY` has no key for them) and
# asks for nothing (no go-ahead, no sync point): most replies of a transaction are theirs,
# and `_dispatch` needs only its bookkeeping for them (accepted RCPTs; RSET in READY).
_NO_MOVE: Final = frozenset((MailFrom, RcptTo, Xforward, Noop, Rset, Quit))
_HELLO_TYPES: Final = frozenset((Ehlo, Helo, Lhlo))


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
        self._limits = (max_line_length, max_lines)
        self._parser = self._new_parser()
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
        return self._parser.exhausted and not self._eof and self._state is not _ERROR

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
            self._state = State.ERROR
            raise RemoteProtocolError("unexpected data from server with no command in flight")
        if self._chunk_remaining:
            # RFC 3030 2: the chunk is exactly `size` octets; a command now would be data.
            raise LocalProtocolError(
                f"cannot send {cls.__name__} with {self._chunk_remaining} octets "
                "of the BDAT chunk unsent"
            )
        try:
            data = command.wire()
        except LocalProtocolError:
            raise  # refused input (CR/LF/NUL, a bad address): nothing sent, nothing changed
        except BaseException:
            self._state = State.ERROR
            raise
        try:
            expected = 1
            if cls is MailFrom:
                self._accepted.clear()
                self._bdat_failed = False
            elif type(command) is Bdat:
                self._chunk_remaining = command.size
                if command.last:
                    after = _DOT  # RFC 3030 2: the message ends with BDAT LAST
            if after is _DOT:
                # The final dot or BDAT LAST: LMTP answers once per accepted recipient
                # (RFC 2033 4.2, RFC 3030 with LMTP), SMTP once.
                self._dot_replies = deque(self._accepted)
                expected = max(1, len(self._accepted)) if self.lmtp else 1
            self._state = after
            if cls in _SYNC_TYPES:
                self._sync = command
            self._in_flight.append((command, expected))
        except BaseException:
            self._state = State.ERROR
            raise
        return data

    def send_content(self, data: bytes) -> bytes:
        """Account for encoded body bytes (already dot-stuffed by content/); pass them on."""
        try:
            if self._state is not _CONTENT:
                if self._state is State.ERROR:
                    self._check_usable()
                if len(data) > self._chunk_remaining:
                    raise LocalProtocolError(
                        f"cannot send {len(data)} octets of message content in state "
                        f"{self._state.value} ({self._chunk_remaining} left in the BDAT chunk)"
                    )
                self._chunk_remaining -= len(data)
            self.content_bytes += len(data)
        except LocalProtocolError:
            raise  # refused before anything changed
        except BaseException:
            self._state = State.ERROR
            raise
        return data

    def tls_established(self) -> None:
        """The TLS handshake after STARTTLS completed: forget everything from before it.

        RFC 3207 4.2: the client MUST discard knowledge obtained from the server before TLS
        and MUST send EHLO again. Any byte the server sent after its STARTTLS reply and
        before the handshake is an injection attempt: the session is aborted.
        """
        if self._state is not State.TLS:
            raise LocalProtocolError(f"tls_established() in state {self._state.value}")
        try:
            if self._parser.in_reply:
                raise RemoteProtocolError("unexpected plaintext data received after STARTTLS reply")
            self._parser = self._new_parser()
            self.capabilities = Capabilities()
            self.hello_reply = None
            self._state = State.HELLO
        except BaseException:
            self._state = State.ERROR
            raise

    def _new_parser(self) -> ReplyParser:
        length, lines = self._limits
        return ReplyParser(max_line_length=length, max_lines=lines, line_filter=self._reply_filter)

    def send_failed(self) -> None:
        """The driver could not write what `send()` or `send_content()` returned (the
        connection broke, a deadline passed): the server may have seen part of it, so
        nothing sent or read from now on can be trusted. The machine moves to ERROR and
        refuses further work (h11's `Connection.send_failed`)."""
        self._state = State.ERROR

    # --- receiving --------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server; ``b""`` means end of file."""
        if self._state is _ERROR:
            self._check_usable(allow_closed=True)
        try:
            if data:
                self._parser.feed(data)
            else:
                self._eof = True
        except BaseException:
            self._state = State.ERROR
            raise

    def next_event(self) -> Event | NeedData:
        if self._state is _ERROR:
            self._check_usable(allow_closed=True)
        try:
            if self._in_flight:
                reply = self._parser.next_reply()
                if reply is not None:
                    return self._dispatch(reply)
            elif self._parser.in_reply:
                # Complete or not, bytes with nothing in flight desynchronise the pipeline.
                raise RemoteProtocolError("unexpected reply from server with no command in flight")
            if self._eof:
                if self._closed_reported:
                    return NEED_DATA
                self._closed_reported = True
                pending = self.in_flight
                self._state = State.CLOSED
                return ConnectionClosed(pending, self._parser.in_reply)
            return NEED_DATA
        except BaseException:
            # h11's rule: whatever went wrong (the peer, the reply filter, a bug), the
            # machine's idea of the conversation can no longer be trusted.
            self._state = State.ERROR
            raise

    def _dispatch(self, reply: Reply) -> Event:
        """Match `reply` to the oldest command in flight and make the move `_ON_REPLY` gives
        for its last reply; keep the bookkeeping of recipients, EHLO and chunks."""
        in_flight = self._in_flight
        command, expected = in_flight[0]
        cls = type(command)
        if command is not None and cls in _NO_MOVE:
            # One reply, no move, no sync point (see `_NO_MOVE`): only the bookkeeping.
            in_flight.popleft()
            if type(command) is RcptTo:
                if reply.code // 100 == 2:  # LMTP counts the accepted ones
                    self._accepted.append(command)
            elif cls is Rset and self._state is _READY:
                self._accepted.clear()
            return CommandReply(command, reply)
        code = reply.code
        rclass = _REPLY_CLASSES[code // 100]
        if rclass is _INTERMEDIATE and _GO_AHEAD.get(cls) != code:
            rclass = _PERMANENT
        last_chunk = type(command) is Bdat and command.last
        if last_chunk and self._bdat_failed:
            # RFC 3030 2: after a refused chunk BDAT LAST is refused (503) with one reply,
            # not one per LMTP recipient.
            self._dot_replies.clear()
            expected = 1
        if expected > 1:
            # LMTP (RFC 2033 4.2): one reply per accepted recipient; the last one moves.
            in_flight[0] = (command, expected - 1)
            return RecipientReply(self._dot_replies.popleft(), reply)
        in_flight.popleft()
        state = self._state
        if command is None:
            # Only from GREETING: a QUIT sent before the greeting arrived keeps us CLOSED.
            self._state = _ON_REPLY.get((state, None, rclass), state)
            return Greeting(reply)
        if command is self._sync:
            self._sync = None  # sync points expect one reply: it has come
        success = rclass is _SUCCESS
        if cls in _HELLO_TYPES:
            if success:
                self.hello_reply = reply
                if cls is Helo:
                    self.capabilities = Capabilities()
                else:
                    self.capabilities = Capabilities.parse(reply, self._discard)
        elif cls is Bdat and not last_chunk and not success:
            self._bdat_failed = True  # RFC 3030 2: no further chunk; RSET after the last
        key = DataEnd if last_chunk else type(command)  # BDAT LAST ends it, as the dot does
        after = _ON_REPLY.get((state, key, rclass), state)
        if key is DataEnd:
            if after is _READY and self._bdat_failed:
                after = State.ABORTED  # after a refused chunk the server's state is unsure
            self._accepted.clear()
            self._state = after
            if self.lmtp and self._dot_replies:
                return RecipientReply(self._dot_replies.popleft(), reply)
            return CommandReply(command, reply)
        self._state = after
        return CommandReply(command, reply)

    # --- error handling ---------------------------------------------------------------
    def _check_usable(self, *, allow_closed: bool = False) -> None:
        if self._state is State.ERROR:
            raise LocalProtocolError("connection is in ERROR state after a protocol error")
        if self._state is State.CLOSED and not allow_closed:
            raise LocalProtocolError("connection is closed")
