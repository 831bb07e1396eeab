"""Helpers for the sans-IO protocol tests: chunkers, event summaries and a transcript runner.

Like h11's tests/helpers.py: a transcript is a list of steps run against one
`ClientConnection` with no socket. `Send` asserts the exact bytes a command produces,
`Batch` the bytes of several commands written before any reply is read (pipelining), `Recv`
feeds server bytes through a *chunker* (whole, one byte at a time, random splits) and asserts
the events that come out, `Eof` ends the server side. Every step may also assert the state.
`assert_refuses_everything` checks h11's error rule: a connection in ERROR does no more work.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pytest

from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol.client import (
    NEED_DATA,
    ClientConnection,
    CommandReply,
    ConnectionClosed,
    Event,
    Greeting,
    RecipientReply,
    State,
)
from mailcarrier.protocol.commands import (
    Command,
    Data,
    Ehlo,
    Lhlo,
    MailFrom,
    Quit,
    RcptTo,
    Rset,
)
from mailcarrier.protocol.reply import Reply, ReplyParser

Chunker = Callable[[bytes], list[bytes]]
# A readable, comparable stand-in for an event (see `summarize`).
Summary = tuple[object, ...]


# --- chunkers ---------------------------------------------------------------------------
def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_splits(rng: random.Random) -> Chunker:
    """A chunker cutting each piece of data at random places (empty chunks excluded)."""

    def chunker(data: bytes) -> list[bytes]:
        if len(data) < 2:
            return [data]
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, min(len(data) - 1, 12))))
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    return chunker


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given offsets (duplicates and out-of-range offsets ignored)."""
    bounds = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


CHUNKERS: dict[str, Chunker] = {"whole": whole, "bytewise": bytewise}


# --- reply parser -----------------------------------------------------------------------
def parse_all(chunks: Iterable[bytes], parser: ReplyParser | None = None) -> list[Reply]:
    """Feed each chunk and collect every complete reply (errors propagate)."""
    parser = parser or ReplyParser()
    replies: list[Reply] = []
    for chunk in chunks:
        parser.feed(chunk)
        while (reply := parser.next_reply()) is not None:
            replies.append(reply)
    return replies


# --- client events ----------------------------------------------------------------------
def summarize(event: Event) -> Summary:
    """Greeting -> ("greeting", text); CommandReply -> (command, text);
    RecipientReply -> ("rcpt", recipient, text); ConnectionClosed -> ("closed", pending, partial).
    """
    if isinstance(event, Greeting):
        return ("greeting", event.reply.text)
    if isinstance(event, CommandReply):
        return (event.command, event.reply.text)
    if isinstance(event, RecipientReply):
        return ("rcpt", event.recipient, event.reply.text)
    assert isinstance(event, ConnectionClosed)
    return ("closed", event.pending, event.partial)


def drain(conn: ClientConnection) -> list[Event]:
    """Every event available now, up to NEED_DATA (bounded: a hang is a test failure)."""
    events: list[Event] = []
    for _ in range(10_000):
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
        if isinstance(event, ConnectionClosed):
            # After end of file there is nothing more to come.
            assert conn.next_event() is NEED_DATA
            return events
    raise AssertionError("next_event() never returned NEED_DATA")


def feed(conn: ClientConnection, data: bytes, chunker: Chunker = whole) -> list[Summary]:
    """Feed server bytes chunk by chunk, draining events after each chunk."""
    out: list[Summary] = []
    for chunk in chunker(data):
        if chunk:
            conn.receive_data(chunk)
            out.extend(summarize(e) for e in drain(conn))
    return out


# --- transcripts ------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """The client sends one command; its bytes must be exactly `wire`."""

    command: Command
    wire: bytes
    state: State | None = None


@dataclass(frozen=True)
class Batch:
    """Several commands written together, before any reply is read (one write)."""

    commands: tuple[Command, ...]
    wire: bytes
    state: State | None = None


@dataclass(frozen=True)
class Content:
    """Message content after a 354 (already encoded by content/); passed through unchanged."""

    data: bytes
    state: State | None = None


@dataclass(frozen=True)
class Recv:
    """The server sends `data`; exactly `events` come out (in order)."""

    data: bytes
    events: tuple[Summary, ...]
    state: State | None = None


@dataclass(frozen=True)
class Eof:
    """The server closes the connection."""

    events: tuple[Summary, ...]
    state: State | None = State.CLOSED


Step = Send | Batch | Content | Recv | Eof


def run(steps: Sequence[Step], *, lmtp: bool = False, chunker: Chunker = whole) -> ClientConnection:
    """Play a transcript against a fresh `ClientConnection`; return it for further checks."""
    conn = ClientConnection(lmtp=lmtp)
    for number, step in enumerate(steps):
        where = f"step {number}: {step!r}"
        if isinstance(step, Send):
            assert conn.send(step.command) == step.wire, where
        elif isinstance(step, Batch):
            assert b"".join(conn.send(c) for c in step.commands) == step.wire, where
        elif isinstance(step, Content):
            before = conn.content_bytes
            assert conn.send_content(step.data) == step.data, where
            assert conn.content_bytes == before + len(step.data), where
        elif isinstance(step, Recv):
            assert feed(conn, step.data, chunker) == list(step.events), where
        else:
            conn.receive_data(b"")
            assert [summarize(e) for e in drain(conn)] == list(step.events), where
        if step.state is not None:
            assert conn.state is step.state, where
    return conn


def connection_in(
    state: State, *, lmtp: bool = False, pipelining: bool = False
) -> ClientConnection:
    """A connection driven (by valid moves) into `state`, for tests of single moves."""
    conn = ClientConnection(lmtp=lmtp)
    if state is State.GREETING:
        return conn
    feed(conn, b"220 mx.example.org ESMTP\r\n")
    if state is State.HELLO:
        return conn
    conn.send(Lhlo("client.example") if lmtp else Ehlo("client.example"))
    extensions = b"250-PIPELINING\r\n" if pipelining else b""
    feed(conn, b"250-mx.example.org\r\n" + extensions + b"250 8BITMIME\r\n")
    if state is State.READY:
        return conn
    conn.send(MailFrom("a@example.org"))
    if state is State.MAIL:
        return conn
    feed(conn, b"250 2.1.0 Ok\r\n")
    conn.send(RcptTo("b@example.net"))
    feed(conn, b"250 2.1.5 Ok\r\n")
    if state is State.RCPT:
        return conn
    conn.send(Data())
    if state is State.DATA:
        return conn
    if state is State.ABORTED:
        feed(conn, b"554 5.5.1 Error: no valid recipients\r\n")
    else:
        assert state is State.CONTENT, f"connection_in({state}) is not supported"
        feed(conn, b"354 End data with <CR><LF>.<CR><LF>\r\n")
    assert conn.state is state
    return conn


# --- the error rule -----------------------------------------------------------------
def assert_refuses_everything(conn: ClientConnection) -> None:
    assert conn.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(Quit())
    with pytest.raises(LocalProtocolError):
        conn.send(Rset())
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"250 Ok\r\n")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send_content(b"x")
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    assert conn.state is State.ERROR
