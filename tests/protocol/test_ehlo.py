"""Tests of mailcarrier.protocol.ehlo: EHLO/LHLO keyword parsing into `Capabilities`.

Keywords are case-insensitive; SIZE with and without a limit (absurd or non-ASCII numbers mean
"no limit", never a crash); AUTH with mechanisms, the old ``AUTH=`` form and duplicate lines;
operator-discarded keywords; the greeting name; a bounded keyword count.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.protocol.ehlo import Capabilities, discard_notice
from mailcarrier.protocol.reply import Reply, ReplyParser
from tests.protocol.helpers import parse_all


def ehlo(*keyword_lines: str, name: str = "mx.example.org Hello client.example") -> Reply:
    """The parsed 250 reply to EHLO with these keyword lines (through the real parser)."""
    texts = [name, *keyword_lines]
    wire = "".join(
        f"250{'-' if i < len(texts) - 1 else ' '}{t}\r\n" for i, t in enumerate(texts)
    ).encode()
    (reply,) = parse_all([wire])
    return reply


def test_typical_postfix_reply() -> None:
    caps = Capabilities.parse(
        ehlo(
            "PIPELINING",
            "SIZE 10240000",
            "VRFY",
            "ETRN",
            "STARTTLS",
            "AUTH PLAIN LOGIN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
            "XFORWARD NAME ADDR PROTO HELO",
        )
    )
    assert caps.greeting_name == "mx.example.org"
    assert caps.pipelining
    assert caps.size
    assert caps.size_limit == 10240000
    assert caps.starttls
    assert caps.auth_mechanisms == ("PLAIN", "LOGIN")
    assert caps.enhancedstatuscodes
    assert caps.eightbitmime
    assert caps.dsn
    assert caps.smtputf8
    assert caps.chunking
    assert caps.xforward == ("NAME", "ADDR", "PROTO", "HELO")
    assert caps.has("VRFY")
    assert caps.has("etrn")
    assert not caps.has("XCLIENT")
    assert set(caps.keywords) == {
        "PIPELINING",
        "SIZE",
        "VRFY",
        "ETRN",
        "STARTTLS",
        "AUTH",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
        "XFORWARD",
    }


def test_nothing_announced() -> None:
    for caps in (Capabilities(), Capabilities.parse(ehlo(name="mx.example.org"))):
        assert not caps.keywords
        assert not caps.pipelining
        assert not caps.size
        assert caps.size_limit is None
        assert not caps.starttls
        assert not caps.dsn
        assert caps.auth_mechanisms == ()
        assert caps.xforward == ()
    assert Capabilities.parse(ehlo(name="mx.example.org")).greeting_name == "mx.example.org"


@pytest.mark.parametrize(
    "line",
    ["pipelining", "Pipelining", "PIPELINING", "pIpElInInG", "pipelining   "],
)
def test_keywords_are_case_insensitive(line: str) -> None:
    caps = Capabilities.parse(ehlo(line))
    assert caps.pipelining
    assert caps.has("PIPELINING")
    assert caps.has("pipelining")
    assert list(caps.keywords) == ["PIPELINING"]


def test_all_known_keywords_in_lower_case() -> None:
    caps = Capabilities.parse(
        ehlo(
            "size 100",
            "8bitmime",
            "dsn",
            "enhancedstatuscodes",
            "starttls",
            "auth plain",
            "xforward name addr",
            "smtputf8",
            "chunking",
        )
    )
    assert caps.size_limit == 100
    assert caps.eightbitmime
    assert caps.dsn
    assert caps.enhancedstatuscodes
    assert caps.starttls
    assert caps.auth_mechanisms == ("PLAIN",)
    assert caps.xforward == ("NAME", "ADDR")
    assert caps.smtputf8
    assert caps.chunking


@pytest.mark.parametrize(
    ("line", "limit"),
    [
        ("SIZE 10240000", 10240000),
        ("SIZE 0", 0),
        ("SIZE", 0),  # announced, no limit given
        ("SIZE   52428800   ", 52428800),
        ("size 1", 1),
        ("SIZE 9223372036854775807", 9223372036854775807),  # 19 digits: kept
        ("SIZE 99999999999999999999", 0),  # 20 digits: absurd, treated as no limit
        ("SIZE " + "9" * 500, 0),
        ("SIZE abc", 0),
        ("SIZE -5", 0),
        ("SIZE +5", 0),
        ("SIZE 1e6", 0),
        ("SIZE 10 20", 10),
        ("SIZE \u00b2", 0),  # superscript two: str.isdigit() but not a number
        ("SIZE \u0661\u0662\u0663", 0),  # Arabic-Indic digits: not ASCII digits
        ("SIZE \uff11\uff10", 0),  # full-width digits
    ],
)
def test_size(line: str, limit: int) -> None:
    caps = Capabilities.parse(ehlo("PIPELINING", line))
    assert caps.size
    assert caps.size_limit == limit


def test_size_from_the_wire_with_non_ascii_digits_does_not_crash() -> None:
    (reply,) = parse_all([b"250-mx\r\n250-SIZE \xc2\xb2\r\n250 SIZE \xd9\xa1\r\n"])
    assert Capabilities.parse(reply).size_limit == 0


def test_last_size_line_wins() -> None:
    assert Capabilities.parse(ehlo("SIZE 100", "SIZE 200")).size_limit == 200


@pytest.mark.parametrize(
    ("lines", "mechanisms"),
    [
        (["AUTH PLAIN LOGIN"], ("PLAIN", "LOGIN")),
        (["auth plain login cram-md5"], ("PLAIN", "LOGIN", "CRAM-MD5")),
        (["AUTH"], ()),
        (["AUTH=LOGIN"], ("LOGIN",)),
        (["AUTH=LOGIN PLAIN"], ("LOGIN", "PLAIN")),
        (["auth=login"], ("LOGIN",)),
        (["AUTH="], ()),
        # duplicate lines (old and new form, as e.g. Exchange sends them) are merged
        (["AUTH PLAIN LOGIN", "AUTH=LOGIN"], ("PLAIN", "LOGIN")),
        (["AUTH=LOGIN", "AUTH PLAIN LOGIN"], ("LOGIN", "PLAIN")),
        (
            ["AUTH GSSAPI", "AUTH NTLM", "AUTH=LOGIN CRAM-MD5"],
            ("GSSAPI", "NTLM", "LOGIN", "CRAM-MD5"),
        ),
        (["AUTH PLAIN PLAIN"], ("PLAIN", "PLAIN")),
    ],
)
def test_auth(lines: list[str], mechanisms: tuple[str, ...]) -> None:
    caps = Capabilities.parse(ehlo(*lines))
    assert caps.has("AUTH")
    assert caps.auth_mechanisms == mechanisms
    assert not any(k.startswith("AUTH=") for k in caps.keywords)


def test_other_keywords_and_parameters_are_kept_upper_case() -> None:
    caps = Capabilities.parse(ehlo("X-EXPS gssapi ntlm", "DELIVERBY 300", "ETRN"))
    assert caps.keywords["X-EXPS"] == ("GSSAPI", "NTLM")
    assert caps.keywords["DELIVERBY"] == ("300",)
    assert caps.keywords["ETRN"] == ()


def test_blank_keyword_lines_are_skipped() -> None:
    caps = Capabilities.parse(ehlo("", "   ", "PIPELINING", "\t"))
    assert list(caps.keywords) == ["PIPELINING"]


@pytest.mark.parametrize(
    ("discard", "gone"),
    [
        (["pipelining"], "PIPELINING"),
        (["PIPELINING"], "PIPELINING"),
        (["starttls"], "STARTTLS"),
        (["dsn"], "DSN"),
        (["auth"], "AUTH"),
        (["xforward"], "XFORWARD"),
    ],
)
def test_discarded_keywords(discard: list[str], gone: str) -> None:
    reply = ehlo("PIPELINING", "STARTTLS", "AUTH PLAIN", "AUTH=LOGIN", "DSN", "XFORWARD NAME")
    caps = Capabilities.parse(reply, discard)
    assert not caps.has(gone)
    assert len(caps.keywords) == 4
    assert caps == Capabilities.parse(reply).without(discard)


def test_discarding_auth_also_drops_the_old_form() -> None:
    caps = Capabilities.parse(ehlo("AUTH=LOGIN", "8BITMIME"), ["AUTH"])
    assert caps.auth_mechanisms == ()
    assert not caps.has("AUTH")
    assert caps.eightbitmime


def test_discarding_size_forgets_the_limit() -> None:
    reply = ehlo("SIZE 1000", "PIPELINING")
    for caps in (Capabilities.parse(reply, ["size"]), Capabilities.parse(reply).without(["SIZE"])):
        assert not caps.size
        assert caps.size_limit is None
        assert caps.pipelining
    kept = Capabilities.parse(reply).without(["pipelining"])
    assert kept.size_limit == 1000
    assert kept.greeting_name == "mx.example.org"


def test_discarding_unknown_keywords_is_harmless() -> None:
    reply = ehlo("PIPELINING")
    assert Capabilities.parse(reply, ["NOSUCHTHING", ""]) == Capabilities.parse(reply)


@pytest.mark.parametrize(
    ("name", "greeting_name"),
    [
        ("mx.example.org Hello client.example [192.0.2.1]", "mx.example.org"),
        ("mx.example.org", "mx.example.org"),
        ("[192.0.2.7]", "[192.0.2.7]"),
        ("", ""),
    ],
)
def test_greeting_name(name: str, greeting_name: str) -> None:
    assert Capabilities.parse(ehlo("PIPELINING", name=name)).greeting_name == greeting_name


def test_the_first_line_is_never_a_keyword() -> None:
    caps = Capabilities.parse(ehlo("8BITMIME", name="PIPELINING"))
    assert caps.greeting_name == "PIPELINING"
    assert not caps.pipelining
    assert caps.eightbitmime


def test_keyword_count_is_bounded() -> None:
    reply = Reply.make(250, "mx", *(f"X-KEYWORD-{i}" for i in range(150)), "PIPELINING")
    caps = Capabilities.parse(reply)
    assert len(caps.keywords) == 100
    assert "X-KEYWORD-0" in caps.keywords
    assert not caps.pipelining  # past the bound


def test_known_keyword_repeated_past_the_bound_is_still_updated() -> None:
    lines = ["AUTH PLAIN", *(f"X-{i}" for i in range(120)), "AUTH=LOGIN"]
    caps = Capabilities.parse(Reply.make(250, "mx", *lines))
    assert caps.auth_mechanisms == ("PLAIN",)
    assert len(caps.keywords) == 100


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_any_reply_text_parses(data: bytes) -> None:
    """Whatever text a 250 reply carries, parsing it never raises."""
    lines = [line for line in data.replace(b"\r", b"").split(b"\n") if len(line) < 200]
    wire = b"250-mx\r\n" + b"".join(b"250-" + line + b"\r\n" for line in lines) + b"250 OK\r\n"
    parser = ReplyParser()
    parser.feed(wire)
    reply = parser.next_reply()
    assert reply is not None
    caps = Capabilities.parse(reply, ["pipelining"])
    assert not caps.pipelining
    assert caps.size_limit is None or caps.size_limit >= 0
    assert all(k == k.upper() and k for k in caps.keywords)


def test_discard_notice_names_known_keywords_in_postfix_order() -> None:
    assert discard_notice(["chunking", "x-foo", "Pipelining", "8bitmime"]) == (
        "discarding EHLO keywords: 8BITMIME PIPELINING CHUNKING"
    )
    assert discard_notice([]) == ""
    assert discard_notice(["x-foo"]) == ""
    assert discard_notice(["silent-discard", "dsn"]) == ""
