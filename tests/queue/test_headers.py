"""queue/headers.py: values for headers cannot break a header; full names as cleanup(8)
writes them, parsed back with the standard library."""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.queue.headers import boundary_text, field_text, from_value, full_name

ADDR = "s@example.org"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Sam Sender", "Sam Sender <s@example.org>"),
        ("", "<s@example.org>"),
        (" \t\r\n ", "<s@example.org>"),
        # Control characters become spaces; runs of spaces one; ends trimmed (Postfix).
        ("Sam\r\nBcc: victim@example.net", '"Sam Bcc: victim@example.net" <s@example.org>'),
        ("  Sam \x1b[31m  Red\x00\x7f ", '"Sam [31m Red" <s@example.org>'),
        ("Sam\tThe\x0bMan", "Sam The Man <s@example.org>"),
        # Specials: a quoted string, with \ and " escaped.
        ('Sam "The Man" Sender', '"Sam \\"The Man\\" Sender" <s@example.org>'),
        ("Sender, Sam", '"Sender, Sam" <s@example.org>'),
        ("<evil@example.net>", '"<evil@example.net>" <s@example.org>'),
        ("Sam (Boss)", '"Sam (Boss)" <s@example.org>'),
        ("back\\slash", '"back\\\\slash" <s@example.org>'),
        ("Dr. Who", '"Dr. Who" <s@example.org>'),
        ("50% off!", '"50% off!" <s@example.org>'),  # Postfix also quotes % and !
        # Non-ASCII: RFC 2047 in UTF-8.
        ("Jörg Müller", "=?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <s@example.org>"),
        ("中文", "=?utf-8?b?5Lit5paH?= <s@example.org>"),
        ("bad \udcff byte", "=?utf-8?b?YmFkIO+/vSBieXRl?= <s@example.org>"),
        ("line\u2028sep \x85", "line sep <s@example.org>"),
        # Looks like an encoded word: encoded, so that readers show it as typed.
        ("=?utf-8?q?Boss?=", "=?utf-8?b?PT91dGYtOD9xP0Jvc3M/PQ==?= <s@example.org>"),
    ],
)
def test_from_value(name: str, value: str) -> None:
    assert from_value(ADDR, name) == value


def test_long_non_ascii_name_is_folded_into_short_encoded_words() -> None:
    value = from_value(ADDR, "é" * 80)
    lines = f"From: {value}".split("\n")
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert all(line.startswith(" =?utf-8?") for line in lines[1:])
    assert _name_read_back(f"From: {value}\n") == "é" * 80


def test_field_text() -> None:
    assert field_text("550 5.1.1 ok") == "550 5.1.1 ok"
    assert field_text("a\r\nBcc: x@y\x1b\x00é\x85") == "a??Bcc: x@y??é?"


def test_boundary_text() -> None:
    assert boundary_text("mc.example") == "mc.example"
    assert boundary_text('h"x y;z\\é') == "h?x?y?z??"


def _name_read_back(header: str) -> str:
    msg = email.message_from_string(header + "\n", policy=email.policy.compat32)
    assert msg.keys() == ["From"]
    name, addr = email.utils.parseaddr(msg["From"])
    assert addr == ADDR
    return str(email.header.make_header(email.header.decode_header(name)))


NAMES = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list('"\\()<>@,;:.[]%!=?_ \t\r\n\x00\x1b\x7f\x85\u2028\udcff')),
    ),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(name=NAMES)
def test_any_full_name_gives_one_from_header_that_parses_back(name: str) -> None:
    header = f"From: {from_value(ADDR, name)}\n"
    assert header.count("\n") == 1 or all(line.startswith(" ") for line in header.split("\n")[1:-1])
    header.encode("utf-8")  # strict: no lone surrogate
    assert header.isascii()  # RFC 2047: nothing 8-bit in the header
    read = _name_read_back(header)
    # Read back, the name is the cleaned name (or nothing, when nothing was left).
    assert read == full_name(name)
