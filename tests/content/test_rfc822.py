"""Tests of mailcarrier.content.rfc822: tok822-like tokens, address nodes, the text Postfix
writes back (spacing and folding), and internal/external address forms."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.content.rfc822 import (
    Address,
    Token,
    externalize,
    fold_header,
    parse_address_list,
    quote_local,
    split_address,
    tokenize,
    unquote_local,
)


def addrs(text: str) -> list[str]:
    return [n.text for n in parse_address_list(text) if isinstance(n, Address)]


def test_tokens() -> None:
    assert tokenize('"J. Doe" (work) <j@[10.0.0.1]>, x') == [
        Token("qstring", '"J. Doe"'),
        Token("comment", "(work)"),
        Token("<", "<"),
        Token("atom", "j"),
        Token("@", "@"),
        Token("domlit", "[10.0.0.1]"),
        Token(">", ">"),
        Token(",", ","),
        Token("atom", "x"),
    ]


def test_nested_comment_and_escapes() -> None:
    assert tokenize(r'(a (b) \) c) "q\"x"') == [
        Token("comment", r"(a (b) \) c)"),
        Token("qstring", r'"q\"x"'),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@example.org", ["a@example.org"]),
        ("Joe Bloggs <joe@example.org>", ["joe@example.org"]),
        ('"Bloggs, Joe" <joe@example.org>, b@x.example', ["joe@example.org", "b@x.example"]),
        ("joe@example.org (Joe Bloggs)", ["joe@example.org"]),
        ("(Joe) joe@example.org", ["joe@example.org"]),
        ('"j doe"@example.org', ['"j doe"@example.org']),
        ("<@relay.example,@r2.example:joe@example.org>", ["joe@example.org"]),
        (
            "team: a@x.example, B <b@y.example>;, c@z.example",
            ["a@x.example", "b@y.example", "c@z.example"],
        ),
        ("undisclosed-recipients:;", []),
        ("<>", []),
        ("", []),
    ],
)
def test_addresses_found(value: str, expected: list[str]) -> None:
    assert addrs(value) == expected


@pytest.mark.parametrize(
    "value",
    ['"unterminated <a@b>', "(open comment a@b", "<a@b", "a@[1.2.3", "a@b>,,;:", ">)]"],
)
def test_malformed_input_never_raises(value: str) -> None:
    nodes = parse_address_list(value)
    externalize(nodes)


def test_externalize_spacing_is_tok822s() -> None:
    nodes = parse_address_list('  "Joe"   <joe@x.example>,b@y.example  (Bee),team:c@z.example;')
    assert externalize(nodes) == '"Joe" <joe@x.example>, b@y.example (Bee), team: c@z.example;'
    assert externalize(nodes, one_per_line=True) == (
        '"Joe" <joe@x.example>,\nb@y.example (Bee),\nteam: c@z.example;'
    )


def test_fold_header_joins_short_lines_and_tabs_the_rest() -> None:
    nodes = parse_address_list(", ".join(f"user{i}@example.org" for i in range(8)))
    lines = fold_header("To", nodes)
    assert lines[0].startswith("To: user0@example.org, user1@example.org,")
    assert all(len(line) < 70 for line in lines)
    assert all(line.startswith("\t") for line in lines[1:])
    joined = " ".join(line.strip() for line in lines)
    assert joined == "To: " + ", ".join(f"user{i}@example.org" for i in range(8))


def test_fold_header_single_address() -> None:
    assert fold_header("From", [Address("a@example.org")]) == ["From: a@example.org"]


@pytest.mark.parametrize(
    ("internal", "external"),
    [
        ("joe@example.org", "joe@example.org"),
        ("j.doe@example.org", "j.doe@example.org"),
        ("j doe@example.org", '"j doe"@example.org'),
        ("j..doe@example.org", '"j..doe"@example.org'),
        (".joe@example.org", '".joe"@example.org'),
        ('a"b@example.org', '"a\\"b"@example.org'),
        ("a@b@example.org", '"a@b"@example.org'),
        ("joe", "joe"),
        ("", ""),
        ("jörg@example.org", "jörg@example.org"),
    ],
)
def test_quote_and_unquote_local(internal: str, external: str) -> None:
    assert quote_local(internal) == external
    assert unquote_local(external) == internal


def test_split_address_ignores_quoted_at() -> None:
    assert split_address('"a@b"@example.org') == ('"a@b"', "@example.org")
    assert split_address("local") == ("local", "")


# Annotated: mypy infers a bare ("Cs",) as tuple[str], not a collection of category names.
NO_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)


@given(st.text(alphabet=st.characters(blacklist_categories=NO_SURROGATES), max_size=40))
def test_quote_round_trip(local: str) -> None:
    address = f"{local}@example.org"
    assert unquote_local(quote_local(address)) == address


@given(st.text(max_size=80))
def test_any_text_parses(text: str) -> None:
    nodes = parse_address_list(text)
    externalize(nodes, one_per_line=True)
