"""A scripted SMTP/LMTP server on 127.0.0.1 for faults no real server produces.

A `ScriptedServer` plays a list of steps per accepted connection: `Send` bytes, `Expect` the
exact bytes the client must send next, `ReadUntil` a marker (the end of the message content),
`Close` (politely or with a reset), `Stall` (never answer), `Hold` (stop reading and never
answer, so the client's writes block), `SendForever` (an over-long line or
an endless multi-line reply), `Pause` (wait a while), `Trickle` (send bytes one at a time
with a pause between them), `ExpectEOF` (the client must send nothing more) and `ReadRest`.

`Expect` also checks batching: it waits until the expected bytes have arrived and then, unless
told otherwise, fails if the client had already sent *more* than that before the server said
anything (a lock-step client must wait for each reply). Expecting several commands in one step
proves they were all sent before the server replied (RFC 2920 pipelining). The server runs in
the test's own event loop, so whatever the client writes between two awaits is in the socket
before the server reads, and `reads` (one entry per read) shows how the client batched.

Mismatches never raise inside the server: they are collected in `failures` and the connection
is closed so the client cannot hang; tests call `check()` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "Close",
    "Expect",
    "ExpectEOF",
    "Hold",
    "Pause",
    "ReadRest",
    "ReadUntil",
    "ScriptedServer",
    "Send",
    "SendForever",
    "Stall",
    "StartScripted",
    "Step",
    "Trickle",
]

READ_SIZE: Final = 65536
# Upper bound of what one step waits for the client; far above any configured test timeout,
# so a step only runs into it when the client is truly stuck.
STEP_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Send:
    """Write these bytes to the client."""

    data: bytes


@dataclass(frozen=True)
class Expect:
    """The client must send exactly these bytes next.

    With `alone` (the default) nothing beyond them may have arrived by the time they are
    complete: the client must be waiting for the server's answer.
    """

    data: bytes
    alone: bool = True


@dataclass(frozen=True)
class ReadUntil:
    """Read until `marker` has arrived (inclusive); keep the bytes under `name`.

    With `keep=False` only the length and the last `tail` bytes are kept (large messages).
    """

    marker: bytes
    name: str = "content"
    keep: bool = True
    tail: int = 4096


@dataclass(frozen=True)
class Close:
    """Close the connection; `reset` sends a TCP RST instead of a FIN."""

    reset: bool = False


@dataclass(frozen=True)
class Stall:
    """Never answer: read and record whatever arrives until the client gives up."""


@dataclass(frozen=True)
class Hold:
    """Stop reading but keep the connection open, so the client's writes block."""


@dataclass(frozen=True)
class SendForever:
    """Write `prefix` once, then `chunk` again and again until the client goes away.

    `limit` bounds the test itself: if the client is still reading after that many bytes,
    the step records a failure (the client did not bound what it reads).
    """

    chunk: bytes
    prefix: bytes = b""
    limit: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Pause:
    """Wait `seconds` before the next step (a slow server; deadline tests)."""

    seconds: float


@dataclass(frozen=True)
class Trickle:
    """Send `data` one byte at a time, `interval` seconds apart (a hostile slow server).

    Stops early, without failing, when the client goes away."""

    data: bytes
    interval: float


@dataclass(frozen=True)
class ExpectEOF:
    """The client must close the connection without sending anything more."""


@dataclass(frozen=True)
class ReadRest:
    """Read whatever the client still sends until it closes; keep it under `name`."""

    name: str = "rest"


Step = (
    Send
    | Expect
    | ReadUntil
    | Close
    | Stall
    | Hold
    | SendForever
    | Pause
    | Trickle
    | ExpectEOF
    | ReadRest
)


@dataclass
class ConnectionLog:
    """What happened on one connection."""

    reads: list[bytes] = field(default_factory=list)
    captured: dict[str, bytes] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    sent_forever: int = 0
    done: bool = False

    @property
    def received(self) -> bytes:
        return b"".join(self.reads)


class _Failure(Exception):
    pass


class _Conn:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ConnectionLog
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.log = log
        self.buffer = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        """One read into the buffer; False at end of file."""
        if self.eof:
            return False
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.log.reads.append(data)
        self.buffer += data
        return True

    def available(self) -> None:
        """Pull in bytes that are already waiting, without blocking (batching checks)."""
        # StreamReader keeps what the transport delivered; take all of it.
        pending = getattr(self.reader, "_buffer", None)
        if pending:
            data = bytes(pending)
            pending.clear()
            self.log.reads.append(data)
            self.buffer += data


class ScriptedServer:
    """Serves `scripts[i]` on the i-th connection (the last script repeats)."""

    def __init__(self, *scripts: list[Step], host: str = "127.0.0.1") -> None:
        if not scripts:
            raise ValueError("at least one script")
        self.scripts = scripts
        self.host = host
        self.connections: list[ConnectionLog] = []
        self.failures: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    # --- life cycle ---------------------------------------------------------------------
    async def start(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, limit=READ_SIZE)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def wait_done(self, timeout: float = 10.0) -> None:
        """Wait until every connection's script has finished."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def nexthop(self) -> str:
        host = f"ipv6:{self.host}" if ":" in self.host else self.host
        return f"[{host}]:{self.port}"

    @property
    def namaddr(self) -> str:
        return f"{self.host}[{self.host}]"

    @property
    def relay(self) -> str:
        return f"{self.namaddr}:{self.port}"

    @property
    def conn(self) -> ConnectionLog:
        """The first connection's log (most tests have one)."""
        assert self.connections, "the client never connected"
        return self.connections[0]

    def check(self) -> None:
        """Raise AssertionError listing every script mismatch."""
        if self.failures:
            raise AssertionError("scripted server: " + "; ".join(self.failures))

    # --- serving ------------------------------------------------------------------------
    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.connections)
        log = ConnectionLog()
        self.connections.append(log)
        self._writers.append(writer)
        script = self.scripts[min(index, len(self.scripts) - 1)]
        task = asyncio.get_running_loop().create_task(self._play(index, script, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(
        self,
        index: int,
        script: list[Step],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        conn = _Conn(reader, writer, self.connections[index])
        try:
            for n, step in enumerate(script):
                try:
                    if await self._step(conn, step):
                        break
                except _Failure as exc:
                    self.failures.append(f"connection {index} step {n} {step!r}: {exc}")
                    break
                except (ConnectionError, OSError) as exc:
                    self.failures.append(f"connection {index} step {n} {step!r}: {exc!r}")
                    break
        finally:
            conn.log.done = True
            with contextlib.suppress(Exception):
                writer.transport.abort() if conn.eof else writer.close()

    async def _step(self, conn: _Conn, step: Step) -> bool:
        """Play one step; True when the connection is finished."""
        if isinstance(step, Send):
            conn.writer.write(step.data)
            await conn.writer.drain()
        elif isinstance(step, Expect):
            await self._expect(conn, step)
        elif isinstance(step, ReadUntil):
            await self._read_until(conn, step)
        elif isinstance(step, Close):
            if step.reset:
                sock = conn.writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.writer.transport.abort()
            else:
                conn.writer.close()
            return True
        elif isinstance(step, Stall):
            while await conn.fill():
                pass
            conn.log.captured["stall"] = bytes(conn.buffer)
            conn.buffer.clear()
            return True
        elif isinstance(step, Hold):
            transport = conn.writer.transport
            assert isinstance(transport, asyncio.ReadTransport)  # a socket transport reads too
            transport.pause_reading()
            await asyncio.sleep(STEP_TIMEOUT)
            return True
        elif isinstance(step, SendForever):
            await self._send_forever(conn, step)
            return True
        elif isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Trickle):
            try:
                for i in range(len(step.data)):
                    if conn.writer.is_closing() or conn.reader.at_eof():
                        return True
                    conn.writer.write(step.data[i : i + 1])
                    await conn.writer.drain()
                    await asyncio.sleep(step.interval)
            except (ConnectionError, OSError):
                return True
        elif isinstance(step, ExpectEOF):
            if not conn.buffer:
                await conn.fill()
            if conn.buffer:
                raise _Failure(f"client sent {bytes(conn.buffer)!r}, expected it to close")
            return True
        elif isinstance(step, ReadRest):
            while await conn.fill():
                pass
            conn.log.captured[step.name] = bytes(conn.buffer)
            conn.buffer.clear()
            return True
        return False

    async def _expect(self, conn: _Conn, step: Expect) -> None:
        want = step.data
        while len(conn.buffer) < len(want):
            if not await conn.fill():
                raise _Failure(f"client closed after sending {bytes(conn.buffer)!r}")
        got = bytes(conn.buffer[: len(want)])
        if got != want:
            raise _Failure(f"client sent {bytes(conn.buffer)!r}")
        if step.alone:
            # Let the loop run the client once more: a client that did not wait for our
            # reply has its next command in the socket already.
            await asyncio.sleep(0)
            conn.available()
            if len(conn.buffer) > len(want):
                extra = bytes(conn.buffer[len(want) :])
                raise _Failure(f"client sent {extra!r} before the server replied")
        del conn.buffer[: len(want)]

    async def _read_until(self, conn: _Conn, step: ReadUntil) -> None:
        total = 0
        tail = bytearray()
        kept = bytearray()
        while True:
            pos = conn.buffer.find(step.marker)
            if pos >= 0:
                end = pos + len(step.marker)
                piece = bytes(conn.buffer[:end])
                del conn.buffer[:end]
                total += len(piece)
                if step.keep:
                    kept += piece
                tail = (tail + piece)[-step.tail :]
                break
            # Keep the last len(marker)-1 bytes: the marker may straddle two reads.
            keep_back = len(step.marker) - 1
            if len(conn.buffer) > keep_back:
                cut = len(conn.buffer) - keep_back
                piece = bytes(conn.buffer[:cut])
                del conn.buffer[:cut]
                total += len(piece)
                if step.keep:
                    kept += piece
                tail = (tail + piece)[-step.tail :]
            if not await conn.fill():
                raise _Failure(f"client closed before {step.marker!r} ({total} bytes read)")
            if not step.keep:
                # Reads can be large; do not keep them in the log either.
                conn.log.reads[-1] = conn.log.reads[-1][:64]
        conn.log.lengths[step.name] = total
        conn.log.captured[step.name] = bytes(kept) if step.keep else bytes(tail)

    async def _send_forever(self, conn: _Conn, step: SendForever) -> None:
        writer = conn.writer
        sent = 0
        try:
            block = step.chunk * max(1, 16384 // max(1, len(step.chunk)))
            # The prefix goes out with the first block, in one segment: a client must not get
            # to act on the prefix alone before the endless part arrives.
            writer.write(step.prefix + block)
            sent += len(step.prefix) + len(block)
            while sent < step.limit:
                if writer.is_closing() or conn.reader.at_eof():
                    break
                writer.write(block)
                sent += len(block)
                async with asyncio.timeout(STEP_TIMEOUT):
                    await writer.drain()
            else:
                raise _Failure(f"client still reading after {sent} bytes")
        except (ConnectionError, OSError):
            pass
        finally:
            conn.log.sent_forever = sent


# The `scripted` fixture (tests/conftest.py): start(*scripts, host=...) -> a running server.
StartScripted = Callable[..., Awaitable[ScriptedServer]]
