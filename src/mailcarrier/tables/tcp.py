"""``tcp:host:port``: Postfix's client/server lookup protocol, as dict_tcp.c speaks it
(tcp_table(5)).

A lookup sends ``get KEY`` and a newline, the key %XX-encoded (`hex_quote`: ``%``, white
space and every byte that is not printable ASCII, so UTF-8 too), and reads one reply line of
at most 4096 bytes with its newline: ``200 text`` (found: the %XX-decoded text), ``500
text`` (not found), ``400 text`` (the lookup fails for now, silently, and the connection is
closed). A malformed reply or another status fails the lookup with Postfix's warning. When
the server cannot be reached, closes the connection, or sends a line too long, the client
says so, waits a second and tries again, ten times in all, before the lookup fails (a
temporary failure, never "not found"). Connecting, sending and receiving each have 100
seconds; the connection is kept for the next lookup. The key is sent as given (a pattern
table: no case folding, only full keys).

The tables of one server share its connections (endpoint.py, on the table loop). socketmap.py is the
netstring protocol of the same family.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from mailcarrier.printable import printable
from mailcarrier.tables.base import Table, TableLookupError
from mailcarrier.tables.endpoint import EndpointError, Stream, parse_endpoint, shared_pool
from mailcarrier.tables.netloop import run_async, run_sync

__all__ = ["TcpLimits", "TcpTable", "hex_quote", "hex_unquote", "open_tcp"]

MAX_REPLY: Final = 4096  # DICT_TCP_MAXLEN, the newline included
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class TcpLimits:
    timeout: float = 100  # DICT_TCP_TMOUT: connect, send, receive
    max_try: int = 10  # DICT_TCP_MAXTRY
    retry_pause: float = 1


DEFAULT_LIMITS: Final = TcpLimits()


def hex_quote(raw: bytes) -> bytes:
    """%XX for %, white space and every byte that is not printable ASCII."""
    out = bytearray()
    for byte in raw:
        if byte != 0x25 and 0x21 <= byte <= 0x7E:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def hex_unquote(text: bytes) -> bytes | None:
    """%XX (either case) decoded; None when a % is not followed by two hex digits."""
    out = bytearray()
    index = 0
    while index < len(text):
        byte = text[index]
        if byte == 0x25:
            pair = text[index + 1 : index + 3]
            if len(pair) != 2 or not all(c in _HEX for c in pair):
                return None
            out.append(int(pair, 16))
            index += 3
        else:
            out.append(byte)
            index += 1
    return bytes(out)


class TcpTable(Table):
    kind = "tcp"
    fixed = False
    pattern = True
    network = True

    def __init__(self, spec: str, limits: TcpLimits = DEFAULT_LIMITS) -> None:
        super().__init__(spec)
        self.name = spec.removeprefix("tcp:")
        self.limits = limits
        endpoint = parse_endpoint(self.name, where=spec, transport="inet")
        self.pool = shared_pool("tcp", endpoint, timeout=limits.timeout, line_limit=MAX_REPLY - 1)

    def lookup(self, key: str) -> str | None:
        return run_sync(self._lookup(key))

    async def lookup_async(self, key: str) -> str | None:
        return await run_async(self._lookup(key))

    async def _lookup(self, key: str) -> str | None:
        request = b"get " + hex_quote(key.encode("utf-8", "surrogateescape")) + b"\n"
        stream, line = await self._exchange(request)
        try:
            value = self._answer(line)
        except TableLookupError:
            self.pool.discard(stream)  # dict_tcp_disconnect()
            raise
        self.pool.release(stream)
        return value

    async def _ask(self, request: bytes) -> tuple[Stream, bytes] | None:
        """One attempt: the stream and its reply line without the newline, or None (after
        Postfix's warning)."""
        try:
            stream = await self.pool.acquire()
        except EndpointError as exc:
            self.lookup_warnings.append(f"connect to TCP map {self.name}: {exc.reason}")
            return None
        try:
            await stream.send(request)
            line = await stream.read_line()
        except EndpointError as exc:
            self.pool.discard(stream)
            if exc.kind == "size":
                problem = f"text longer than {MAX_REPLY}"
            else:
                # Postfix prints errno, which a plain end of file leaves at 0 ("Success").
                reason = "Success" if exc.reason == "unexpected EOF" else exc.reason
                problem = f"unexpected EOF ({reason})"
            self.lookup_warnings.append(f"read TCP map reply from {self.name}: {problem}")
            return None
        except BaseException:
            self.pool.discard(stream)
            raise
        return stream, line[:-1]

    async def _exchange(self, request: bytes) -> tuple[Stream, bytes]:
        tries = 0
        while True:
            answer = await self._ask(request)
            if answer is not None:
                return answer
            tries += 1
            if tries >= self.limits.max_try:
                raise TableLookupError(f"{self.spec}: lookup error: no usable reply")
            await asyncio.sleep(self.limits.retry_pause)

    def _malformed(self, what: str, line: bytes) -> TableLookupError:
        shown = printable(line.decode("utf-8", "surrogateescape")[:100], replacement="_")
        self.lookup_warnings.append(f"read TCP map reply from {self.name}: {what}: {shown}")
        return TableLookupError(f"{self.spec}: lookup error: {what}")

    def _answer(self, line: bytes) -> str | None:
        """The value of a reply line; `TableLookupError` for 4xx and malformed replies."""
        head = line[:4]
        text = hex_unquote(line[4:]) if len(head) == 4 else None
        if not (head[:3].isdigit() and head[3:4] in (b" ", b"\t", b"\v", b"\f", b"\r")):
            text = None
        if text is None:
            raise self._malformed("malformed reply", line)
        status = head[:1]
        if status == b"2":
            return text.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if status == b"5":
            return None
        if status == b"4":  # Postfix says nothing (unless verbose) and defers
            shown = printable(line.decode("utf-8", "surrogateescape")[:100])
            raise TableLookupError(f"{self.spec}: lookup error: {shown}")
        raise self._malformed("bad status code", line)


def open_tcp(name: str, limits: TcpLimits = DEFAULT_LIMITS) -> TcpTable:
    return TcpTable(f"tcp:{name}", limits)
