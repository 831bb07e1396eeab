"""Tests of mailcarrier.protocol.address: what an envelope address is, how Postfix quotes it,
and that no string whatever can put anything but one address into a MAIL or RCPT line.

The last tests take random text (hypothesis) as the address of MAIL and RCPT commands with
known parameters: either the command refuses it, or the line on the wire parses with RFC
5321's grammar into exactly one path (which unquotes back to the address) and exactly the
parameters the client chose.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol.address import (
    address_problem,
    is_quoted_string,
    quote_address,
    wire_address,
)
from mailcarrier.protocol.commands import MailFrom, RcptTo

# Malformed or malicious: each must be refused, whatever the quoting.
BAD: list[tuple[str, str]] = [
    ("b@example.net> NOTIFY=NEVER", "bad domain"),
    ("b@example.net>\r\nRCPT TO:<evil@example.com", "CR, LF or NUL"),
    ("b@example.net ORCPT=rfc822;x", "bad domain"),
    ("b@example.net SIZE=1", "bad domain"),
    ("<b@example.net>", "bad domain"),
    ("b@exa mple.net", "bad domain"),
    ("b@example.net\t", "control character"),
    ("b@[127.0.0.1] SIZE=1", "bad domain"),
    ("b@[127.0.0.1]>", "bad domain"),
    ("b@[127.0.0.1", "bad domain"),
    ("b@[not a literal]", "bad domain"),
    ("b@[IPv6:::1] x", "bad domain"),
    ("b@example..net", "bad domain"),
    ("b@.example.net", "bad domain"),
    ("b@-example.net", "bad domain"),
    ("b@example-.net", "bad domain"),
    ("b@", "bad domain"),
    ("@example.net", "empty local part"),
    ("", "is empty"),
    ("b\x00@example.net", "CR, LF or NUL"),
    ("b\r@example.net", "CR, LF or NUL"),
    ("b@example.net\n", "CR, LF or NUL"),
    ("b\x1b[31m@example.net", "control character"),
    ("b\x7f@example.net", "control character"),
    ("b\x85@example.net", "control character"),
    ("b@example.net=x", "bad domain"),
    ("b@exam<ple.net", "bad domain"),
    ("b@example.net\x0c", "control character"),
    ("\udcffb@example.net", "not valid Unicode"),
    ("x" * 1000 + "@example.net", "longer than"),
    ('b@exa"mple.net', "bad domain"),
    ("b@example.net;c@example.org>", "bad domain"),
]

# Odd but valid internal forms, and their quoting by smtp_quote_rfc821_envelope.
GOOD: list[tuple[str, str]] = [
    ("b@example.net", "b@example.net"),
    ("b=NOTIFY@example.net", "b=NOTIFY@example.net"),  # '=' is atext: no parameter
    ("b c@example.net", '"b c"@example.net'),
    ("b<c>@example.net", '"b<c>"@example.net'),
    ('b"c@example.net', '"b\\"c"@example.net'),
    ("b\\c@example.net", '"b\\\\c"@example.net'),
    ('"b c"@example.net', '"b c"@example.net'),  # already RFC 5321 form
    ("a..b@x", '"a..b"@x'),
    ("b@[127.0.0.1]", "b@[127.0.0.1]"),
    ("b@[IPv6:2001:db8::1]", "b@[IPv6:2001:db8::1]"),
    ("b@example.net.", "b@example.net."),
    ("postmaster", "postmaster"),
    ("\u00fcser@b\u00fccher.example", "\u00fcser@b\u00fccher.example"),
    ("a@b@x", '"a@b"@x'),
    # The last @ starts the domain: the rest is a (strange) local part, quoted whole.
    ("b@example.net ORCPT=rfc822;x@y", '"b@example.net ORCPT=rfc822;x"@y'),
    ("b\u2028c@example.net", "b\u2028c@example.net"),  # UTF-8 text (RFC 6531), not a control
]


@pytest.mark.parametrize(("address", "problem"), BAD, ids=[repr(a)[:40] for a, _ in BAD])
def test_bad_addresses_are_refused(address: str, problem: str) -> None:
    found = address_problem(address)
    assert found is not None and problem in found
    for quote in (True, False):
        with pytest.raises(ValueError, match=re.escape(found)):
            wire_address(address, quote=quote, null_ok=False)
        with pytest.raises(LocalProtocolError):
            RcptTo(address, quote=quote).wire()
    if address:
        with pytest.raises(LocalProtocolError):
            MailFrom(address).wire()


@pytest.mark.parametrize(("address", "wired"), GOOD)
def test_good_addresses_are_quoted_as_postfix_does(address: str, wired: str) -> None:
    assert address_problem(address) is None
    assert wire_address(address) == wired
    assert RcptTo(address).wire() == f"RCPT TO:<{wired}>\r\n".encode()


def test_null_sender_only_where_allowed() -> None:
    assert address_problem("", null_ok=True) is None
    assert MailFrom("").wire() == b"MAIL FROM:<>\r\n"
    with pytest.raises(LocalProtocolError, match="recipient address is empty"):
        RcptTo("").wire()


@pytest.mark.parametrize(
    "address", ["b c@example.net", "b<c@example.net", 'b"c@example.net', "b\u3000c@x"]
)
def test_unquoted_envelope_refuses_what_would_split_the_path(address: str) -> None:
    """smtp_quote_rfc821_envelope = no: an address that needs quoting cannot go out."""
    with pytest.raises(LocalProtocolError, match="smtp_quote_rfc821_envelope is off"):
        RcptTo(address, quote=False).wire()
    assert RcptTo("a..b@x", quote=False).wire() == b"RCPT TO:<a..b@x>\r\n"


def test_quoted_string_recognition() -> None:
    assert is_quoted_string('"a b"')
    assert is_quoted_string('"a\\"b"')
    assert not is_quoted_string('"a"b"')
    assert not is_quoted_string('"a')
    assert not is_quoted_string('"a\\"')
    assert quote_address('"a"b@x') == '"\\"a\\"b"@x'


# --- whatever the text, one address and the chosen parameters ------------------------------

_QTEXT = r"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f]|\\[\x20-\x7e])"
_ATOM = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])+"
_LOCAL = rf'(?:{_ATOM}(?:\.{_ATOM})*|"{_QTEXT}*")'
_LET_DIG = r"(?:[A-Za-z0-9_]|[^\x00-\x7f])"
_LABEL = rf"{_LET_DIG}(?:(?:{_LET_DIG}|-)*{_LET_DIG})?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[\x21-\x5a\x5e-\x7e]+\])"
_PATH = rf"(?:{_LOCAL}(?:@{_DOMAIN})?)?"
RCPT_LINE = re.compile(rf"RCPT TO:<({_PATH})> ORCPT=rfc822;x\+2By@z NOTIFY=SUCCESS\r\n")
MAIL_LINE = re.compile(rf"MAIL FROM:<({_PATH})> SIZE=42 BODY=8BITMIME\r\n")

_hostile = st.text(
    alphabet=st.sampled_from(list('ab.@<>" \t\r\n\0=\\;:,[]()-_+\x1b\x7f\u00fc\u2028\x85')),
    max_size=30,
) | st.text(max_size=30)


def _unquoted(path: str) -> str:
    """The internal form of an address whose local part may be a Quoted-string."""
    local, at, domain = path.rpartition("@")
    if not at:
        local, domain = path, ""
    if is_quoted_string(local):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local + at + domain


@settings(max_examples=600)
@given(_hostile)
def test_random_text_is_one_address_or_refused(address: str) -> None:
    for line_re, command in (
        (RCPT_LINE, RcptTo(address, notify="SUCCESS", orcpt="rfc822;x+y@z")),
        (MAIL_LINE, MailFrom(address, size=42, body="8BITMIME")),
    ):
        try:
            wire = command.wire()
        except LocalProtocolError:
            continue
        match = line_re.fullmatch(wire.decode("utf-8"))
        assert match is not None, wire
        path = match.group(1)
        assert path == address or _unquoted(path) == _unquoted(address)
