"""Tests of the moves of mailcarrier.protocol.client: the `_SEND` and `_ON_REPLY` tables.

The tables are data, so they are checked as data (every reply move starts where its command
leaves the machine, nothing moves into ERROR or out of CLOSED, a 4xx and a 5xx lead to the
same place), and the machine is walked through every settled state x every command it may
send there x a spread of reply codes, against the moves RFC 5321, 3207, 4954 and 3030 give,
written out plainly below (`expected_after`).
"""

from __future__ import annotations

import pytest

from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol import client, events
from mailcarrier.protocol.client import ClientConnection, ReplyClass, State
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
from tests.protocol.helpers import drain, feed

# A spread of codes: every class, the go-aheads, and 3xx codes no command asked for.
CODES = (220, 221, 235, 250, 251, 334, 354, 350, 421, 450, 452, 500, 503, 530, 550, 554)

SAMPLES: tuple[Command, ...] = (
    Ehlo("c"),
    Helo("c"),
    Lhlo("c"),
    StartTls(),
    Auth("LOGIN"),
    AuthResponse("eA=="),
    Xforward((("NAME", "x.example"),)),
    MailFrom("a@example.org"),
    RcptTo("b@example.net"),
    Data(),
    DataEnd(),
    Bdat(0),
    Bdat(0, last=True),
    Rset(),
    Noop(),
    Quit(),
)


def line(code: int) -> bytes:
    return f"{code} text\r\n".encode()


def settled(state: State) -> ClientConnection:
    """A connection in `state` with nothing in flight (every reply read)."""
    conn = ClientConnection()
    if state is State.GREETING:
        return conn
    steps: dict[State, list[tuple[Command, int]]] = {
        State.HELLO: [],
        State.READY: [(Ehlo("c"), 250)],
        State.AUTH: [(Ehlo("c"), 250), (Auth("LOGIN"), 334)],
        State.TLS: [(Ehlo("c"), 250), (StartTls(), 220)],
        State.MAIL: [(Ehlo("c"), 250), (MailFrom("a@x.example"), 250)],
        State.RCPT: [(Ehlo("c"), 250), (MailFrom("a@x.example"), 250), (RcptTo("b@x"), 250)],
    }
    transaction = [(Ehlo("c"), 250), (MailFrom("a@x.example"), 250), (RcptTo("b@x"), 250)]
    steps[State.CONTENT] = [*transaction, (Data(), 354)]
    steps[State.ABORTED] = [*transaction, (Data(), 554)]
    steps[State.CHUNK] = [*transaction, (Bdat(0), 250)]
    feed(conn, line(220))
    for command, code in steps[state]:
        conn.send(command)
        feed(conn, line(code))
    assert conn.state is state and conn.idle
    return conn


SETTLED = (
    State.HELLO,
    State.READY,
    State.AUTH,
    State.TLS,
    State.MAIL,
    State.RCPT,
    State.CONTENT,
    State.CHUNK,
    State.ABORTED,
)


def expected_after(sent: State, command: Command, code: int) -> State:
    """Where the reply `code` to `command` leads, the command having left the machine in
    `sent`: RFC 5321 (EHLO, DATA, the dot), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 3030
    (BDAT). Only 354 to DATA and 334 to AUTH are go-aheads; nothing else moves."""
    success = 200 <= code < 300
    match command:
        case Ehlo() | Helo() | Lhlo():
            return State.READY if success else State.HELLO
        case StartTls():
            return State.TLS if success else State.READY
        case Auth() | AuthResponse():
            return State.AUTH if code == 334 else State.READY
        case Data():
            return State.CONTENT if code == 354 else State.ABORTED
        case DataEnd() | Bdat(last=True):
            return State.READY
        case Bdat():
            return State.CHUNK if success else State.ABORTED
    return sent


def _walk() -> list[tuple[State, Command]]:
    cases = []
    for state in SETTLED:
        for command in SAMPLES:
            conn = settled(state)
            try:
                conn.send(command)
            except LocalProtocolError:
                continue
            cases.append((state, command))
    return cases


WALK = _walk()


def test_the_walk_covers_every_move_on_send_from_a_settled_state() -> None:
    walked = {(state, type(command)) for state, command in WALK}
    allowed = {(state, cls) for state, cls in client._SEND if state in SETTLED and cls is not Lhlo}
    assert walked == allowed  # LHLO: the walk is SMTP; LMTP's moves are the same


@pytest.mark.parametrize(("state", "command"), WALK, ids=[f"{s.value}-{c!r}"[:60] for s, c in WALK])
def test_every_reply_moves_as_the_rfcs_say(state: State, command: Command) -> None:
    for code in CODES:
        conn = settled(state)
        conn.send(command)
        sent = conn.state
        events_seen = feed(conn, line(code))
        assert len(events_seen) == 1
        assert conn.state is expected_after(sent, command, code), code
        assert conn.idle


@pytest.mark.parametrize("code", CODES)
def test_the_greeting_moves_on_2xx_only(code: int) -> None:
    conn = ClientConnection()
    feed(conn, line(code))
    assert conn.state is (State.HELLO if code // 100 == 2 else State.GREETING)


def test_lmtp_dot_moves_on_the_last_recipient_reply_only() -> None:
    conn = ClientConnection(lmtp=True)
    feed(conn, line(220))
    for command, code in [
        (Lhlo("c"), 250),
        (MailFrom("a@x.example"), 250),
        (RcptTo("b@x"), 250),
        (RcptTo("c@x"), 250),
        (Data(), 354),
    ]:
        conn.send(command)
        feed(conn, line(code))
    conn.send(DataEnd())
    conn.receive_data(line(250))
    assert len(drain(conn)) == 1
    waiting = conn.state
    assert waiting is State.DOT  # one recipient's reply is still to come
    conn.receive_data(line(452))
    assert len(drain(conn)) == 1
    assert conn.state is State.READY
    assert conn.accepted_recipients == ()


# --- the tables as data -----------------------------------------------------------------
def test_every_reply_move_starts_where_its_command_leaves_the_machine() -> None:
    after_send = {(cls, after) for (_, cls), after in client._SEND.items()}
    for state, cls, _ in client._ON_REPLY:
        if cls is None:
            assert state is State.GREETING  # the greeting: nothing was sent
        else:
            assert (cls, state) in after_send, (state, cls)


def test_nothing_moves_into_error_or_out_of_closed_or_error() -> None:
    for (state, _, _), after in client._ON_REPLY.items():
        assert after is not State.ERROR
        assert state not in (State.CLOSED, State.ERROR)
    for (state, _), after in client._SEND.items():
        assert after is not State.ERROR
        assert state not in (State.CLOSED, State.ERROR)


def test_a_4xx_and_a_5xx_lead_to_the_same_state() -> None:
    """The machine does not tell them apart; what they mean is delivery/trouble.py's."""
    table = client._ON_REPLY
    for state, cls, rclass in table:
        if rclass in (ReplyClass.TRANSIENT, ReplyClass.PERMANENT):
            transient = table.get((state, cls, ReplyClass.TRANSIENT))
            assert transient is table.get((state, cls, ReplyClass.PERMANENT)), (state, cls)


def test_go_aheads_are_the_only_intermediate_moves() -> None:
    intermediate = {cls for _, cls, rclass in client._ON_REPLY if rclass is ReplyClass.INTERMEDIATE}
    assert intermediate == {Data, Auth, AuthResponse} == set(client._GO_AHEAD)
    assert {Data: 354, Auth: 334, AuthResponse: 334} == client._GO_AHEAD


def test_mail_rcpt_xforward_noop_rset_and_quit_move_nothing_on_their_reply() -> None:
    moving = {cls for _, cls, _ in client._ON_REPLY}
    assert {MailFrom, RcptTo, Xforward, Noop, Rset, Quit} == client._NO_MOVE
    assert not moving & client._NO_MOVE
    # `_dispatch` reads their replies without the moves: none of them may be a sync point,
    # ask for a go-ahead, or end the content (several LMTP replies).
    assert not client._NO_MOVE & (client._SYNC_TYPES | set(client._GO_AHEAD))
    for (_, cls), after in client._SEND.items():
        assert cls not in client._NO_MOVE or after is not State.DOT, cls


@pytest.mark.parametrize("code", [200, 299, 300, 399, 400, 499, 500, 599])
def test_reply_class_is_the_first_digit(code: int) -> None:
    assert client._REPLY_CLASSES[code // 100].value == code // 100


def test_events_are_re_exported_by_client() -> None:
    for name in events.__all__:
        assert getattr(client, name) is getattr(events, name)
        assert name in client.__all__
