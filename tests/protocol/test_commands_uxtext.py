"""RFC 6533 utf-8-addr-xtext for a ``utf-8`` ORCPT (protocol/commands.py), as Postfix's
uxtext_quote() writes it; the ``rfc822`` type keeps RFC 3461 xtext."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.protocol.commands import RcptTo, uxtext_encode


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("utf-8;a@example.org", "utf-8;a@example.org"),
        ("utf-8;zoë@bücher.example", "utf-8;zo\\x{EB}@b\\x{FC}cher.example"),
        ("utf-8;a+b=c@x", "utf-8;a\\x{2B}b\\x{3D}c@x"),
        ("utf-8;a\\b@x", "utf-8;a\\x{5C}b@x"),  # "\" is always quoted
        ('utf-8;"a b"@x', 'utf-8;"a\\x{20}b"@x'),
        ("utf-8;\u00e9\u4e2d\U0001f600@x", "utf-8;\\x{E9}\\x{4E2D}\\x{1F600}@x"),  # code points
    ],
)
def test_uxtext(text: str, encoded: str) -> None:
    assert uxtext_encode(text) == encoded


@given(st.text())
def test_uxtext_is_printable_ascii_without_plus_or_equals(text: str) -> None:
    encoded = uxtext_encode(text)
    assert all(33 <= ord(c) <= 126 for c in encoded)
    assert "+" not in encoded and "=" not in encoded
    # Every "\" starts an escape: the text can be read back.
    back = re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: chr(int(m.group(1), 16)), encoded)
    assert back == text


@pytest.mark.parametrize(
    ("orcpt", "wire"),
    [
        ("utf-8;zoë@example.net", b"RCPT TO:<z@x> ORCPT=utf-8;zo\\x{EB}@example.net\r\n"),
        ("UTF-8;zoë@example.net", b"RCPT TO:<z@x> ORCPT=UTF-8;zo\\x{EB}@example.net\r\n"),
        ("rfc822;zoë@example.net", b"RCPT TO:<z@x> ORCPT=rfc822;zo+C3+AB@example.net\r\n"),
    ],
)
def test_rcpt_encodes_orcpt_by_its_type(orcpt: str, wire: bytes) -> None:
    assert RcptTo("z@x", orcpt=orcpt).wire() == wire
