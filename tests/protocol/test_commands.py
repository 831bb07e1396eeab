"""Tests of mailcarrier.protocol.commands: exact wire bytes, RFC 3461 xtext, RFC 5321 quoting.

Every command's bytes are asserted exactly; xtext is checked against the RFC's rules and
round-tripped with hypothesis; CR, LF or NUL (and unencodable text) in any envelope value is
a `LocalProtocolError` before a byte is produced, through `wire()` and through a
`ClientConnection`, which stays usable afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol.client import ClientConnection, State
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
    _quoted_wire_address,
    quote_address,
    xtext_decode,
    xtext_encode,
)
from mailcarrier.protocol.stages import Stage
from tests.protocol.helpers import connection_in, feed

WIRE: list[tuple[Command, bytes]] = [
    (Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    (Ehlo("[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n"),
    (Helo("client.example.org"), b"HELO client.example.org\r\n"),
    (Lhlo("client.example.org"), b"LHLO client.example.org\r\n"),
    (StartTls(), b"STARTTLS\r\n"),
    (Auth("PLAIN"), b"AUTH PLAIN\r\n"),
    (Auth("PLAIN", "AHVzZXIAcGFzcw=="), b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
    (Auth("EXTERNAL", "="), b"AUTH EXTERNAL =\r\n"),
    (AuthResponse("dXNlcg=="), b"dXNlcg==\r\n"),
    (AuthResponse("*"), b"*\r\n"),
    (MailFrom("a@example.org"), b"MAIL FROM:<a@example.org>\r\n"),
    (MailFrom(""), b"MAIL FROM:<>\r\n"),
    (MailFrom("", size=0), b"MAIL FROM:<> SIZE=0\r\n"),
    (MailFrom("a@example.org", size=1234), b"MAIL FROM:<a@example.org> SIZE=1234\r\n"),
    (MailFrom("a@x", body="8BITMIME"), b"MAIL FROM:<a@x> BODY=8BITMIME\r\n"),
    (MailFrom("a@x", body="7BIT"), b"MAIL FROM:<a@x> BODY=7BIT\r\n"),
    (MailFrom("a@x", smtputf8=True), b"MAIL FROM:<a@x> SMTPUTF8\r\n"),
    (MailFrom("a@x", auth=""), b"MAIL FROM:<a@x> AUTH=<>\r\n"),
    (
        Xforward((("NAME", "[UNAVAILABLE]"), ("ADDR", "2001:db8::1"), ("PORT", "4711"))),
        b"XFORWARD NAME=[UNAVAILABLE] ADDR=2001:db8::1 PORT=4711\r\n",
    ),
    (
        Xforward((("HELO", "a b+c=d"), ("IDENT", "4Zx9"), ("SOURCE", "REMOTE"))),
        b"XFORWARD HELO=a+20b+2Bc+3Dd IDENT=4Zx9 SOURCE=REMOTE\r\n",
    ),
    (Xforward((("HELO", "h\u00e9"),)), b"XFORWARD HELO=h+C3+A9\r\n"),
    (Bdat(262144), b"BDAT 262144\r\n"),
    (Bdat(0, last=True), b"BDAT 0 LAST\r\n"),
    (MailFrom("a@x", ret="FULL"), b"MAIL FROM:<a@x> RET=FULL\r\n"),
    (MailFrom("a@x", ret="HDRS"), b"MAIL FROM:<a@x> RET=HDRS\r\n"),
    (MailFrom("a@x", envid="QQ314159"), b"MAIL FROM:<a@x> ENVID=QQ314159\r\n"),
    (
        MailFrom("a@x", envid="id+1=2 x\u00e9"),
        b"MAIL FROM:<a@x> ENVID=id+2B1+3D2+20x+C3+A9\r\n",
    ),
    (MailFrom("a@x", auth=""), b"MAIL FROM:<a@x> AUTH=<>\r\n"),
    (MailFrom("a@x", auth="user@example.org"), b"MAIL FROM:<a@x> AUTH=<user@example.org>\r\n"),
    (MailFrom("a@x", auth="a+b=c"), b"MAIL FROM:<a@x> AUTH=<a+2Bb+3Dc>\r\n"),
    (
        MailFrom(
            "a@example.org",
            size=99,
            body="8BITMIME",
            smtputf8=True,
            ret="HDRS",
            envid="E1",
            auth="",
        ),
        b"MAIL FROM:<a@example.org> SIZE=99 BODY=8BITMIME ENVID=E1 RET=HDRS SMTPUTF8 AUTH=<>\r\n",
    ),
    (
        MailFrom("\u00fcser@b\u00fccher.example", smtputf8=True),
        "MAIL FROM:<\u00fcser@b\u00fccher.example> SMTPUTF8\r\n".encode(),
    ),
    (MailFrom("a b@x"), b'MAIL FROM:<"a b"@x>\r\n'),
    (RcptTo("b@example.net"), b"RCPT TO:<b@example.net>\r\n"),
    (RcptTo("postmaster"), b"RCPT TO:<postmaster>\r\n"),
    (RcptTo("b@x", notify="NEVER"), b"RCPT TO:<b@x> NOTIFY=NEVER\r\n"),
    (
        RcptTo("b@x", notify="SUCCESS,FAILURE,DELAY"),
        b"RCPT TO:<b@x> NOTIFY=SUCCESS,FAILURE,DELAY\r\n",
    ),
    (RcptTo("b@x", orcpt="rfc822;b@x"), b"RCPT TO:<b@x> ORCPT=rfc822;b@x\r\n"),
    (
        RcptTo("b@x", orcpt="rfc822;b+tag=1@x"),
        b"RCPT TO:<b@x> ORCPT=rfc822;b+2Btag+3D1@x\r\n",
    ),
    (
        RcptTo("b@x", notify="FAILURE", orcpt="rfc822;c d@x"),
        b"RCPT TO:<b@x> ORCPT=rfc822;c+20d@x NOTIFY=FAILURE\r\n",
    ),
    (RcptTo('a"b@x'), b'RCPT TO:<"a\\"b"@x>\r\n'),
    (Data(), b"DATA\r\n"),
    (DataEnd(), b".\r\n"),
    (Rset(), b"RSET\r\n"),
    (Noop(), b"NOOP\r\n"),
    (Quit(), b"QUIT\r\n"),
]


@pytest.mark.parametrize(("command", "wire"), WIRE, ids=[w.decode()[:40] for _, w in WIRE])
def test_wire_bytes(command: Command, wire: bytes) -> None:
    assert command.wire() == wire


@pytest.mark.parametrize(
    ("command", "stage"),
    [
        (Ehlo("h"), Stage.EHLO),
        (Helo("h"), Stage.HELO),
        (Lhlo("h"), Stage.LHLO),
        (StartTls(), Stage.STARTTLS),
        (Auth("PLAIN"), Stage.AUTH),
        (AuthResponse("x"), Stage.AUTH),
        (MailFrom("a@x"), Stage.MAIL),
        (RcptTo("b@x"), Stage.RCPT),
        (Data(), Stage.DATA),
        (DataEnd(), Stage.DOT),
        (Rset(), Stage.RSET),
        (Noop(), Stage.NOOP),
        (Quit(), Stage.QUIT),
    ],
)
def test_command_stages(command: Command, stage: Stage) -> None:
    assert command.stage is stage


def test_commands_are_values() -> None:
    assert RcptTo("b@x", index=1) == RcptTo("b@x", index=1)
    assert RcptTo("b@x", index=1) != RcptTo("b@x", index=2)
    assert hash(MailFrom("a@x", size=1)) == hash(MailFrom("a@x", size=1))
    with pytest.raises(AttributeError):
        MailFrom("a@x").sender = "evil@x"  # type: ignore[misc]


# --- xtext (RFC 3461 4) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "xtext"),
    [
        ("", ""),
        ("plain", "plain"),
        ("+", "+2B"),
        ("=", "+3D"),
        (" ", "+20"),
        ("!", "!"),  # 33: the first xchar
        ("~", "~"),  # 126: the last xchar
        ("\x7f", "+7F"),
        ("\x00", "+00"),
        ("\t", "+09"),
        ("\u00e9", "+C3+A9"),  # UTF-8 bytes, each escaped
        ("\u20ac", "+E2+82+AC"),
        ("\U0001f600", "+F0+9F+98+80"),
        ("rfc822;user+tag@example.org", "rfc822;user+2Btag@example.org"),
        ("a=b c", "a+3Db+20c"),
        ('<>()"\\;:,@[]', '<>()"\\;:,@[]'),
    ],
)
def test_xtext_examples(text: str, xtext: str) -> None:
    assert xtext_encode(text) == xtext
    assert xtext_decode(xtext) == text


@pytest.mark.parametrize(
    ("xtext", "text"),
    [
        ("+2b", "+"),  # lower-case hex is accepted
        ("+3d+3D", "=="),
        ("a+", "a+"),  # malformed escapes are kept literally
        ("+2", "+2"),
        ("+zz", "+zz"),
        ("+G0", "+G0"),
        ("+FF", "\u00ff"),  # not UTF-8: the bytes are shown as Latin-1
        ("\u00e9", "\u00e9"),
        ("\u20ac+41", "\u20acA"),  # text that was never xtext is left alone
    ],
)
def test_xtext_decode_is_lenient(xtext: str, text: str) -> None:
    assert xtext_decode(xtext) == text


_XTEXT_OUT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert _XTEXT_OUT.fullmatch(encoded), encoded
    assert xtext_decode(encoded) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_xtext_decode_never_raises(text: str) -> None:
    assert isinstance(xtext_decode(text), str)


# --- envelope quoting (smtp_quote_rfc821_envelope) ------------------------------------------
@pytest.mark.parametrize(
    ("address", "quoted"),
    [
        ("", ""),  # the null sender
        ("a@example.org", "a@example.org"),
        ("first.last@example.org", "first.last@example.org"),
        ("user+tag@example.org", "user+tag@example.org"),
        ("!#$%&'*+/=?^_`{|}~-@x", "!#$%&'*+/=?^_`{|}~-@x"),
        ("postmaster", "postmaster"),
        ("\u00fcser@b\u00fccher.example", "\u00fcser@b\u00fccher.example"),
        ("a b@x", '"a b"@x'),
        ('a"b@x', '"a\\"b"@x'),
        ("a\\b@x", '"a\\\\b"@x'),
        ('a\\"b@x', '"a\\\\\\"b"@x'),
        ("a..b@x", '"a..b"@x'),
        (".a@x", '".a"@x'),
        ("a.@x", '"a."@x'),
        ("a(b)@x", '"a(b)"@x'),
        ("a,b@x", '"a,b"@x'),
        ("a:b@x", '"a:b"@x'),
        ("a;b@x", '"a;b"@x'),
        ("a<b>@x", '"a<b>"@x'),
        ("a[b]@x", '"a[b]"@x'),
        ("a@b@x", '"a@b"@x'),  # only the last @ separates the domain
        ("a b", '"a b"'),  # no domain
        ('"a b"@x', '"a b"@x'),  # already quoted: left alone
    ],
)
def test_quote_address(address: str, quoted: str) -> None:
    assert quote_address(address) == quoted
    assert quote_address(address, quote=False) == address


def test_quoting_applies_to_mail_and_rcpt() -> None:
    assert MailFrom('a"b c@x').wire() == b'MAIL FROM:<"a\\"b c"@x>\r\n'
    assert RcptTo("a..b@x").wire() == b'RCPT TO:<"a..b"@x>\r\n'
    assert MailFrom("a..b@x", quote=False).wire() == b"MAIL FROM:<a..b@x>\r\n"
    assert RcptTo("a..b@x", quote=False).wire() == b"RCPT TO:<a..b@x>\r\n"


# --- no command injection -------------------------------------------------------------------
BAD_CHARS = ["\r", "\n", "\0", "\r\n"]

# Factories: a command carrying the given text in one of its values.
INJECTABLE: dict[str, Callable[[str], Command]] = {
    "EHLO name": lambda v: Ehlo(f"client{v}.example"),
    "HELO name": lambda v: Helo(f"client{v}.example"),
    "LHLO name": lambda v: Lhlo(f"client{v}.example"),
    "AUTH mechanism": lambda v: Auth(f"PLAIN{v}"),
    "AUTH initial response": lambda v: Auth("PLAIN", f"AGE{v}"),
    "AUTH response": lambda v: AuthResponse(f"dXNl{v}"),
    "MAIL sender": lambda v: MailFrom(f"a{v}@x"),
    "MAIL sender domain": lambda v: MailFrom(f"a@x{v}"),
    "MAIL BODY": lambda v: MailFrom("a@x", body=f"8BITMIME{v}"),
    "MAIL RET": lambda v: MailFrom("a@x", ret=f"FULL{v}"),
    "MAIL ENVID": lambda v: MailFrom("a@x", envid=f"id{v}"),
    "MAIL AUTH": lambda v: MailFrom("a@x", auth=f"u{v}@x"),
    "RCPT address": lambda v: RcptTo(f"b{v}@x"),
    "RCPT NOTIFY": lambda v: RcptTo("b@x", notify=f"NEVER{v}"),
    "RCPT ORCPT": lambda v: RcptTo("b@x", orcpt=f"rfc822;b{v}@x"),
}


@pytest.mark.parametrize("bad", BAD_CHARS, ids=repr)
@pytest.mark.parametrize("what", INJECTABLE)
def test_cr_lf_nul_are_refused(what: str, bad: str) -> None:
    command = INJECTABLE[what](bad + "RCPT TO:<evil@example.com>" + bad)
    with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
        command.wire()


@pytest.mark.parametrize("what", INJECTABLE)
def test_unencodable_text_is_refused(what: str) -> None:
    """A lone surrogate (e.g. from surrogateescape) is misuse, not a UnicodeEncodeError."""
    with pytest.raises(LocalProtocolError):
        INJECTABLE[what]("\udcff").wire()


def _connection_for(command: Command) -> ClientConnection:
    if isinstance(command, (Ehlo, Helo)):
        return connection_in(State.HELLO)
    if isinstance(command, Lhlo):
        return connection_in(State.HELLO, lmtp=True)
    if isinstance(command, AuthResponse):
        conn = connection_in(State.READY)
        conn.send(Auth("LOGIN"))
        feed(conn, b"334 VXNlcm5hbWU6\r\n")
        assert conn.state is State.AUTH
        return conn
    if isinstance(command, RcptTo):
        return connection_in(State.RCPT)
    return connection_in(State.READY)


@pytest.mark.parametrize("bad", BAD_CHARS, ids=repr)
@pytest.mark.parametrize("what", INJECTABLE)
def test_refused_command_leaves_the_connection_usable(what: str, bad: str) -> None:
    good = INJECTABLE[what]("")
    conn = _connection_for(good)
    state, in_flight = conn.state, conn.in_flight
    with pytest.raises(LocalProtocolError):
        conn.send(INJECTABLE[what](bad))
    # Nothing was recorded as sent, and the same move with a clean value still works.
    assert conn.state is state
    assert conn.in_flight == in_flight
    wire = conn.send(good)
    assert wire == good.wire()
    assert conn.in_flight == (*in_flight, good)


@settings(max_examples=300, deadline=None)
@given(
    sender=st.text(max_size=30),
    rcpt=st.text(max_size=30),
    envid=st.text(max_size=20),
    notify=st.text(max_size=20),
    orcpt=st.text(max_size=30),
)
def test_any_envelope_yields_one_line_or_local_protocol_error(
    sender: str, rcpt: str, envid: str, notify: str, orcpt: str
) -> None:
    """Whatever the envelope, each command is exactly one CRLF-terminated line, or refused."""
    for command in (
        MailFrom(sender, envid=envid, auth=sender),
        RcptTo(rcpt, notify=notify, orcpt=orcpt),
    ):
        try:
            wire = command.wire()
        except LocalProtocolError:
            continue
        assert wire.endswith(b"\r\n")
        assert wire.count(b"\r") == wire.count(b"\n") == 1
        assert b"\0" not in wire


@pytest.mark.parametrize(
    "command",
    [
        Xforward(()),
        Xforward((("name", "x"),)),
        Xforward((("NAME", "x y"), ("HELO=", "z"))),
        Xforward((("HELO", "a\r\nMAIL FROM:<x>"),)),
    ],
)
def test_bad_xforward_is_refused(command: Xforward) -> None:
    with pytest.raises(LocalProtocolError):
        command.wire()
    assert command.stage is Stage.XFORWARD


def test_negative_bdat_size_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Bdat(-1).wire()
    assert Bdat(1).stage is Stage.BDAT


# --- addresses already checked ------------------------------------------------------------
def test_a_refused_address_is_refused_every_time() -> None:
    """Checked addresses are remembered; refused ones are not, however often they come."""
    for _ in range(3):
        with pytest.raises(LocalProtocolError, match="recipient address has no domain part"):
            RcptTo("a b").wire()
        with pytest.raises(LocalProtocolError, match="sender address contains CR, LF or NUL"):
            MailFrom("a@x\n").wire()


def test_a_remembered_address_gives_the_same_bytes_whatever_the_command() -> None:
    address = "first last@example.org"
    assert RcptTo(address).wire() == b'RCPT TO:<"first last"@example.org>\r\n'
    assert MailFrom(address).wire() == b'MAIL FROM:<"first last"@example.org>\r\n'
    assert RcptTo(address).wire() == b'RCPT TO:<"first last"@example.org>\r\n'
    # Unquoted (smtp_quote_rfc821_envelope = no) the same address is refused, not remembered.
    with pytest.raises(LocalProtocolError, match="needs quoting"):
        RcptTo(address, quote=False).wire()
    assert MailFrom("", quote=True).wire() == b"MAIL FROM:<>\r\n"


def test_the_memory_of_addresses_is_bounded() -> None:
    for n in range(5000):
        RcptTo(f"user{n}@example.org").wire()
    info = _quoted_wire_address.cache_info()
    assert info.maxsize == 4096
    assert info.currsize <= 4096
