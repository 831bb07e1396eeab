"""Tests of h11's error rule in mailcarrier.protocol.client.

What the machine refuses (an illegal move, refused input) is refused before anything changes,
and the connection stays usable (tests/protocol/test_client.py, test_commands.py). Anything
else that goes wrong inside `send()`, `send_content()`, `receive_data()` or `next_event()`
moves the machine to ERROR and is re-raised, and so does `send_failed()`; in ERROR the machine
refuses all work. A raising smtp_reply_filter used to consume the line and leave the state
as it was, so that the next line was taken for the reply (the design review's appendix A2).
"""

from __future__ import annotations

import pytest

from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol.client import NEED_DATA, ClientConnection, State
from mailcarrier.protocol.commands import Bdat, DataEnd, Ehlo, MailFrom, Quit, RcptTo
from mailcarrier.protocol.ehlo import Capabilities
from tests.protocol.helpers import assert_refuses_everything, connection_in, feed


class FilterBroke(Exception):
    """What a broken reply filter raises."""


def failing_once() -> tuple[list[str], object]:
    seen: list[str] = []

    def reply_filter(line: str) -> str:
        seen.append(line)
        if len(seen) == 1:
            raise FilterBroke(line)
        return line

    return seen, reply_filter


def test_a_raising_reply_filter_moves_to_error() -> None:
    """Appendix A2: the first line raised, and the second was then taken as the greeting."""
    seen, reply_filter = failing_once()
    conn = ClientConnection(reply_filter=reply_filter)  # type: ignore[arg-type]
    conn.receive_data(b"220 first\r\n220 second\r\n")
    with pytest.raises(FilterBroke):
        conn.next_event()
    assert seen == ["220 first"]
    assert_refuses_everything(conn)
    assert seen == ["220 first"]  # the second line was never parsed


def test_a_raising_reply_filter_mid_session_moves_to_error() -> None:
    calls = 0

    def reply_filter(line: str) -> str:
        nonlocal calls
        calls += 1
        if line.startswith("550"):
            raise FilterBroke(line)
        return line

    conn = ClientConnection(reply_filter=reply_filter)
    feed(conn, b"220 mx\r\n")
    conn.send(Ehlo("c"))
    feed(conn, b"250 mx\r\n")
    conn.send(MailFrom("a@example.org"))
    feed(conn, b"250 2.1.0 Ok\r\n")
    conn.send(RcptTo("b@example.net"))
    with pytest.raises(FilterBroke):
        feed(conn, b"550 5.1.1 no\r\n250 2.1.5 Ok\r\n")
    assert calls == 4
    assert_refuses_everything(conn)


def test_any_exception_in_next_event_moves_to_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside the machine (here: EHLO parsing) leaves it in ERROR, not half-moved."""

    def broken(*args: object) -> Capabilities:
        raise RuntimeError("bug")

    conn = connection_in(State.HELLO)
    conn.send(Ehlo("c"))
    monkeypatch.setattr(Capabilities, "parse", broken)
    with pytest.raises(RuntimeError, match="bug"):
        feed(conn, b"250-mx\r\n250 PIPELINING\r\n")
    assert_refuses_everything(conn)


def test_base_exceptions_move_to_error_too() -> None:
    def interrupted(line: str) -> str:
        raise KeyboardInterrupt

    conn = ClientConnection(reply_filter=interrupted)
    conn.receive_data(b"220 mx\r\n")
    with pytest.raises(KeyboardInterrupt):
        conn.next_event()
    assert conn.state is State.ERROR


def test_a_failing_receive_data_moves_to_error() -> None:
    conn = connection_in(State.READY)
    with pytest.raises(TypeError):
        conn.receive_data("250 Ok\r\n")  # type: ignore[arg-type]
    assert_refuses_everything(conn)


def test_a_failing_wire_moves_to_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a `LocalProtocolError` from `wire()` is refused input; anything else is a bug."""

    def broken(self: MailFrom) -> bytes:
        raise MemoryError

    conn = connection_in(State.READY)
    monkeypatch.setattr(MailFrom, "wire", broken)
    with pytest.raises(MemoryError):
        conn.send(MailFrom("a@example.org"))
    assert conn.in_flight == ()
    assert_refuses_everything(conn)


def test_refused_input_still_leaves_the_connection_usable() -> None:
    conn = connection_in(State.READY)
    with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
        conn.send(MailFrom("a@example.org\r\nRSET"))
    assert conn.state is State.READY
    assert conn.send(MailFrom("a@example.org")) == b"MAIL FROM:<a@example.org>\r\n"


def test_a_failing_send_content_moves_to_error() -> None:
    conn = connection_in(State.CONTENT)
    with pytest.raises(TypeError):
        conn.send_content(42)  # type: ignore[arg-type]
    assert_refuses_everything(conn)


@pytest.mark.parametrize(
    "state",
    [State.GREETING, State.HELLO, State.READY, State.MAIL, State.RCPT, State.DATA, State.CONTENT],
)
def test_send_failed_refuses_further_work(state: State) -> None:
    """h11's send_failed(): the driver's write failed, so the server may have seen any part
    of what was sent; nothing more is sent, read or reported."""
    conn = connection_in(state)
    conn.send_failed()
    assert_refuses_everything(conn)


def test_send_failed_mid_content_and_after_replies_arrived() -> None:
    conn = connection_in(State.CONTENT)
    conn.send_content(b"Subject: x\r\n\r\nbody\r\n")
    conn.send(DataEnd())
    conn.receive_data(b"250 2.0.0 Ok\r\n")
    conn.send_failed()  # e.g. the pipelined QUIT could not be written
    assert_refuses_everything(conn)


def test_send_failed_after_close_and_in_a_bdat_chunk() -> None:
    conn = connection_in(State.READY)
    conn.send(Quit())
    conn.send_failed()
    assert_refuses_everything(conn)
    conn = connection_in(State.RCPT)
    conn.send(Bdat(10))
    conn.send_content(b"12345")
    conn.send_failed()
    assert_refuses_everything(conn)


def test_error_is_final_even_for_end_of_file() -> None:
    conn = connection_in(State.READY)
    conn.send_failed()
    with pytest.raises(LocalProtocolError, match="ERROR"):
        conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="ERROR"):
        conn.next_event()
    assert conn.state is State.ERROR


def test_a_closed_connection_still_reports_what_arrived() -> None:
    """CLOSED is not ERROR: replies to commands sent before QUIT are still read."""
    conn = connection_in(State.READY)
    conn.send(Quit())
    conn.receive_data(b"221 Bye\r\n")
    assert conn.next_event() is not NEED_DATA
    assert conn.state is State.CLOSED
