"""asyncio byte streams to SMTP/LMTP servers, with a deadline on every read and write.

A `Connection` is the socket plus who is at the other end (`Peer`, printed as Postfix prints
it, ``host[addr]:port``); connector.py opens them. Every operation takes a timeout and a
`Stage`; failures raise `TransportError` whose reason is Postfix's wording ("lost connection
with h[a] while sending RCPT TO", "conversation with h[a] timed out while ..."). This module
knows nothing of SMTP replies; `session.py` drives the protocol over it. Deadlines and
end-of-round writes use aio.py's `Deadline` and `EndOfTurn`.

Almost all of it is `Connection`, one class on purpose: its protocol callbacks, deadlines
and write rounds share per-connection state on the engine's hottest path (several calls per
message); split across objects, every message would pay for the indirection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, cast

from mailcarrier.aio import INF, Deadline, EndOfTurn
from mailcarrier.errors import TransportError
from mailcarrier.protocol.stages import Stage

__all__ = ["Connection", "Peer", "time_limit"]

READ_SIZE: Final = 65536
# Write-buffer level above which the sender waits for the socket to drain.
HIGH_WATER: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end. For unix sockets `address` is the path and `port` is 0.

    For DANE (RFC 7672 2.2), what routing learnt of the DNSSEC status of the way here:
    `dnssec_valid` is the AD bit of the host's A/AAAA answer, `mx_dnssec_valid` that of
    the MX/SRV RRset that named the host (None: no MX/SRV was involved). Neither takes
    part in equality: a peer is its name, address and port."""

    hostname: str
    address: str
    port: int
    family: int = socket.AF_INET
    dnssec_valid: bool = field(default=False, compare=False)
    mx_dnssec_valid: bool | None = field(default=None, compare=False)
    # ``host[addr]``: how Postfix names a server in diagnostics.
    namaddr: str = field(init=False, repr=False, compare=False)
    # ``host[addr]:port`` (``host[path]`` for unix sockets): the log's relay= field.
    relay: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Made once: every mark and diagnostic of every message names its server.
        namaddr = f"{self.hostname}[{self.address}]"
        object.__setattr__(self, "namaddr", namaddr)
        relay = namaddr if self.family == socket.AF_UNIX else f"{namaddr}:{self.port}"
        object.__setattr__(self, "relay", relay)


def time_limit(seconds: float) -> float | None:
    """Postfix time limits of 0 mean "no limit of our own"."""
    return seconds if seconds > 0 else None


# Wakes a waiter whose deadline passed.
_TIMED_OUT: Final = object()


# Writes smaller than this wait for the end of the event loop's current round (see
# `Connection.write`); a larger one goes out at once, with whatever was waiting before it.
COALESCE_LIMIT: Final = 65536


class _WriteRound(EndOfTurn["Connection | None"]):
    """The writes of one event loop's current round of callbacks (aio.py's `EndOfTurn`).

    Each connection adds itself at its first write of a round: itself when its writes wait
    (flushed together with the others at the end of the round), None when it wrote at once.
    Writes wait only while rounds have several writers: when the last round had one (a
    single busy session), there is nobody to share a wake-up with, and waiting would only
    add an event-loop turn to every round trip.
    """

    # No reference to the loop itself: the loop keys a WeakKeyDictionary of these.
    __slots__ = ("coalesce",)

    def __init__(self) -> None:
        super().__init__(self._end)
        self.coalesce = False  # whether writes wait for the end of the round

    def _end(self, writers: list[Connection | None]) -> None:
        self.coalesce = len(writers) > 1
        for conn in writers:
            if conn is not None:
                conn.flush()


_ROUNDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _WriteRound] = (
    weakref.WeakKeyDictionary()
)


def _write_round(loop: asyncio.AbstractEventLoop) -> _WriteRound:
    found = _ROUNDS.get(loop)
    if found is None:
        found = _ROUNDS[loop] = _WriteRound()
    return found


class Connection(asyncio.Protocol):
    """A connected stream with per-operation deadlines.

    The connection is the asyncio protocol of its transport: received bytes are kept as
    they arrive (no StreamReader copies) and handed to `read()` whole; small writes reach
    the transport at the end of the loop's round, with every other connection's (`write`).
    Deadlines cost no timer per operation: each wait records its deadline and
    one timer per connection, re-armed only when a wait needs an earlier deadline than the
    one armed, wakes a waiter whose deadline has passed.
    """

    __slots__ = (
        "_chunks",
        "_closed",
        "_deadline",
        "_drain_deadline",
        "_drain_waiter",
        "_ended",
        "_eof",
        "_exc",
        "_loop",
        "_lost",
        "_on_lost",
        "_out",
        "_out_size",
        "_over_ssl",
        "_read_deadline",
        "_read_paused",
        "_read_waiter",
        "_size",
        "_transport",
        "_write_paused",
        "_write_round",
        "peer",
        "tls",
    )

    def __init__(self, peer: Peer, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.peer = peer
        self.tls = False  # the stream is encrypted (STARTTLS done, or wrapper mode)
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._over_ssl = False
        self._chunks: list[bytes] = []  # received, not yet read
        self._out: list[bytes] = []  # written, waiting for the end of the loop's round
        self._out_size = 0
        self._write_round = _write_round(self._loop)
        self._size = 0
        self._eof = False  # a read returned b"" (end of file seen by the reader)
        self._ended = False  # the peer sent EOF or the connection was lost
        self._lost = False  # connection_lost() was called
        self._exc: BaseException | None = None  # why the connection was lost, if not EOF
        self._read_paused = False
        self._write_paused = False
        self._read_waiter: asyncio.Future[object] | None = None
        self._drain_waiter: asyncio.Future[object] | None = None
        self._read_deadline = INF
        self._drain_deadline = INF
        self._deadline = Deadline(self._on_time)  # one timer for both (aio.py)
        self._closed: asyncio.Future[None] | None = None
        self._on_lost: list[Callable[[], None]] = []  # `when_lost` callbacks

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._over_ssl = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > 2 * READ_SIZE and not self._read_paused and self._transport is not None:
            # Bound memory against a peer that sends faster than we read.
            self._transport.pause_reading()
            self._read_paused = True
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self._ended = True
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        # As asyncio's streams: keep a plain TCP connection half-open (QUIT may still go out).
        return not self._over_ssl

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = self._ended = True
        self._exc = exc
        for waiter in (self._read_waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        closed = self._closed
        if closed is not None and not closed.done():
            closed.set_result(None)
        self._deadline.cancel()
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback()

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the connection is gone (closed, aborted or lost; at
        once if it is gone already): fleet mode releases the connection's lease there."""
        if self._lost:
            callback()
        else:
            self._on_lost.append(callback)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- deadlines --------------------------------------------------------------------------
    def _deadline_in(self, timeout: float) -> float:
        """The deadline `timeout` seconds from now (0: none); the timer fires by then."""
        if timeout <= 0:
            return INF
        loop = self._loop
        deadline = loop.time() + timeout
        if deadline < self._deadline.when:  # else armed early enough: no call (hot path)
            self._deadline.at(loop, deadline)
        return deadline

    def _on_time(self, now: float) -> float:
        """The timer fired: wake the waiters whose deadline passed; the next deadline."""
        following = INF
        for waiter, deadline in (
            (self._read_waiter, self._read_deadline),
            (self._drain_waiter, self._drain_deadline),
        ):
            if waiter is None or waiter.done():
                continue
            if deadline <= now:
                waiter.set_result(_TIMED_OUT)
            elif deadline < following:
                following = deadline
        return following

    # --- errors -----------------------------------------------------------------------------
    def lost_error(self, stage: Stage) -> TransportError:
        return TransportError(
            f"lost connection with {self.peer.namaddr} while {stage.while_phrase}",
            stage=stage,
            peer=self.peer.relay,
        )

    def timeout_error(self, stage: Stage) -> TransportError:
        return TransportError(
            f"conversation with {self.peer.namaddr} timed out while {stage.while_phrase}",
            stage=stage,
            peer=self.peer.relay,
        )

    # --- reading ----------------------------------------------------------------------------
    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        if self._read_paused and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()
        return data

    async def read(self, timeout: float, stage: Stage) -> bytes:
        """What has been received (at least one byte); ``b""`` at end of file."""
        if self._exc is not None:
            raise self.lost_error(stage) from self._exc
        if not self._chunks and not self._ended:
            waiter = self._read_waiter = self._loop.create_future()
            self._read_deadline = self._deadline_in(timeout)
            try:
                await waiter
            finally:
                self._read_waiter = None
            if waiter.result() is _TIMED_OUT:
                raise self.timeout_error(stage)
            if self._exc is not None:
                raise self.lost_error(stage) from self._exc
        if self._chunks:
            return self._take()
        self._eof = True
        return b""

    # --- writing ----------------------------------------------------------------------------
    def write(self, data: bytes, stage: Stage) -> None:
        """Queue bytes without waiting (pipelining: replies are read while this drains).

        While several connections write in each round of the event loop's callbacks,
        small writes go to the transport at the end of the round, together with those of
        every other connection: the server is woken once for the lot instead of once per
        write (a single busy session writes at once). Waking a process that sleeps on another CPU
        is the dearest part of a loopback send (about a tenth of the engine benchmark's
        CPU time went there). Order is kept; `drain()`, `start_tls()` and `close()` write
        what waits first, `abort()` discards it with the rest.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise self.lost_error(stage)
        out = self._out
        rounds = self._write_round
        size = self._out_size + len(data)
        if size >= COALESCE_LIMIT or not rounds.coalesce:
            if out:
                out.append(data)
                data = b"".join(out)
                out.clear()
                self._out_size = 0
            else:
                rounds.add(None, self._loop)  # a writer of this round, writing at once
            transport.write(data)
            return
        if not out:
            rounds.add(self, self._loop)  # flushed at the end of the round
        out.append(data)
        self._out_size = size

    def flush(self) -> None:
        """Hand what `write()` holds to the transport now."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    @property
    def must_drain(self) -> bool:
        transport = self._transport
        return transport is not None and transport.get_write_buffer_size() > HIGH_WATER

    @property
    def drained(self) -> bool:
        """True when `drain()` would return at once (room in the buffer, connection up):
        the caller may skip awaiting it."""
        transport = self._transport
        return (
            not self._write_paused
            and not self._lost
            and self._exc is None
            and transport is not None
            and not transport.is_closing()
        )

    async def _room(self, timeout: float) -> object:
        """Wait for room in the write buffer, after handing over what `write()` holds, at
        most `timeout` seconds (0: no limit of our own). None when there is room;
        `_TIMED_OUT`; or, once the connection is lost, the error asyncio's
        StreamWriter.drain would raise: the connection's own, else ConnectionResetError."""
        self.flush()
        if self._exc is not None:
            return self._exc
        transport = self._transport
        if transport is not None and transport.is_closing():
            # Let connection_lost() run, so that a write to a closed socket is noticed.
            await asyncio.sleep(0)
        if self._lost:
            return ConnectionResetError("Connection lost")
        if not self._write_paused:
            return None
        waiter = self._drain_waiter = self._loop.create_future()
        self._drain_deadline = self._deadline_in(timeout)
        try:
            await waiter
        finally:
            self._drain_waiter = None
        if waiter.result() is _TIMED_OUT:
            return _TIMED_OUT
        if self._lost:
            return ConnectionResetError("Connection lost")
        return None

    async def drain(self, timeout: float, stage: Stage) -> None:
        """Wait until the written bytes are (mostly) handed to the kernel."""
        problem = await self._room(timeout)
        if problem is None:
            return
        if problem is _TIMED_OUT:
            raise self.timeout_error(stage)
        raise self.lost_error(stage) from self._exc

    # --- TLS --------------------------------------------------------------------------------
    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> None:
        try:
            async with asyncio.timeout(time_limit(timeout)):
                lost = await self._room(0)  # no limit of its own: the handshake's holds
                if isinstance(lost, BaseException):
                    raise lost
                assert self._transport is not None
                transport = await self._loop.start_tls(
                    self._transport, self, context, server_hostname=server_hostname
                )
        except TimeoutError:
            raise self.timeout_error(Stage.STARTTLS) from None
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"TLS handshake failed with {self.peer.namaddr}: {exc}",
                stage=Stage.STARTTLS,
                peer=self.peer.relay,
            ) from exc
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._over_ssl = True
        self._read_paused = False
        self.tls = True

    @property
    def writer(self) -> asyncio.Transport:
        """The transport (TLS once `start_tls()` is done), for `get_extra_info()` as on a
        StreamWriter."""
        assert self._transport is not None
        return self._transport

    @property
    def buffered(self) -> int:
        """Bytes received but not yet read (after STARTTLS any of these is an injection)."""
        return self._size

    def take_received(self) -> bytes:
        """What has been received and not yet read, without waiting (``b""``: nothing).
        The session looks here before a command goes out with no reply outstanding: such
        bytes were never asked for."""
        return self._take() if self._chunks else b""

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS state after `start_tls()` or a wrapper-mode connect."""
        if self._transport is None:
            return None
        obj = self._transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    @property
    def at_eof(self) -> bool:
        return self._eof

    # --- closing ----------------------------------------------------------------------------
    def abort(self) -> None:
        """Close at once, discarding unsent data (after errors)."""
        self._out.clear()
        self._out_size = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        self._deadline.cancel()

    async def close(self) -> None:
        """Close politely; never raises."""
        self._deadline.cancel()
        transport = self._transport
        if transport is None:
            return
        self.flush()  # QUIT, when it was just written
        try:
            transport.close()
            if not self._lost:
                closed = self._closed
                if closed is None:
                    closed = self._closed = self._loop.create_future()
                async with asyncio.timeout(2):
                    await closed
            if self._exc is not None:
                raise self._exc
        except (OSError, ssl.SSLError, TimeoutError):
            self.abort()
