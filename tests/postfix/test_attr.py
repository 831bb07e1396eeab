"""postfix/attr.py: the attr0 codec, against exact bytes and a request qmgr(8) really sent.

The parser is fed whole, a byte at a time and in random pieces; hypothesis round-trips
random lists through `encode` and `AttrParser`; the limits and `expect()` speak Postfix's
words (attr_scan0.c: "missing attribute X", "unexpected attribute X (expecting: Y)").
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.postfix.attr import (
    AttrError,
    AttrList,
    AttrParser,
    Long,
    as_int,
    as_long,
    encode,
    expect,
    expect_strings,
)

DATA: Final = Path(__file__).parent / "data"
REQUEST: Final = (DATA / "deliver-request-2rcpt.bin").read_bytes()

COMMON_NAMES: Final = [
    "flags",
    "queue_name",
    "queue_id",
    "offset",
    "size",
    "nexthop",
    "encoding",
    "smtputf8",
    "sender",
    "envelope_id",
    "ret_flags",
    "time",
    "log_client_name",
    "log_client_address",
    "log_client_port",
    "log_protocol_name",
    "log_helo_name",
    "sasl_method",
    "sasl_username",
    "sasl_sender",
    "log_ident",
    "rewrite_context",
    "recipient_count",
]
RECIPIENT_NAMES: Final = [
    "original_recipient",
    "recipient",
    "offset",
    "dsn_orig_rcpt",
    "notify_flags",
]


def _all_lists(parser: AttrParser) -> list[AttrList]:
    out = []
    while (found := parser.next_list()) is not None:
        out.append(found)
    return out


def _parse(data: bytes, pieces: list[int] | None = None) -> list[AttrList]:
    """Feed `data` cut at `pieces` (sorted offsets), collecting lists as they complete."""
    parser = AttrParser()
    lists: list[AttrList] = []
    cuts = [0, *(pieces or []), len(data)]
    for start, end in itertools.pairwise(cuts):
        if end > start:
            parser.feed(data[start:end])
        lists += _all_lists(parser)
    parser.feed(b"")
    lists += _all_lists(parser)
    assert parser.idle
    return lists


# --- encoding: exact bytes --------------------------------------------------------------


def test_hello_bytes() -> None:
    hello = encode([("protocol", "delivery_request_protocol")])
    assert hello == b"protocol\0delivery_request_protocol\0\0"
    assert len(hello) == 36


def test_numbers_travel_unsigned() -> None:
    assert encode([("status", -1)]) == b"status\x004294967295\0\0"
    assert encode([("offset", Long(-1))]) == b"offset\x0018446744073709551615\0\0"
    assert encode([("a", 0), ("b", 2**31 - 1), ("c", -(2**31))]) == (
        b"a\x000\0b\x002147483647\0c\x002147483648\0\0"
    )
    assert encode([("size", Long(3390))]) == b"size\x003390\0\0"


def test_strings_bytes_and_sub_lists() -> None:
    assert encode([("sender", ""), ("x", b"\xff\xfe")]) == b"sender\0\0x\0\xff\xfe\0\0"
    assert encode([("recipient", "zoë@example")], terminate=False) == (
        b"recipient\0zo\xc3\xab@example\0"
    )
    # A value that came in as undecodable bytes goes out as the same bytes.
    assert encode([("x", b"\xff".decode("utf-8", "surrogateescape"))]) == b"x\0\xff\0\0"
    assert encode([]) == b"\0"
    assert encode([], terminate=False) == b""


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("", "x")], "bad attribute name ''"),
        ([("a\0b", "x")], "bad attribute name 'a\\x00b'"),
        ([("naïve", "x")], "bad attribute name 'naïve'"),
        ([("a", "x\0y")], "attribute value contains a null byte"),
        ([("a", b"\0")], "attribute value contains a null byte"),
        ([("a", 2**32)], "number out of range: 4294967296"),
        ([("a", -(2**31) - 1)], "number out of range: -2147483649"),
        ([("a", Long(2**64))], "number out of range: 18446744073709551616"),
        ([("a", "\ud800")], "attribute value cannot be encoded: '\\ud800'"),
    ],
)
def test_encode_refuses(pairs: list[tuple[str, str | int | bytes]], message: str) -> None:
    with pytest.raises(AttrError) as info:
        encode(pairs)
    assert str(info.value) == message


def test_encode_refuses_booleans() -> None:
    with pytest.raises(TypeError, match="no boolean type"):
        encode([("a", True)])


# --- numbers ------------------------------------------------------------------------------


def test_as_int_and_as_long() -> None:
    assert as_int(b"0") == 0
    assert as_int(b"4294967295") == -1
    assert as_int(b"2147483647") == 2**31 - 1
    assert as_int(b"2147483648") == -(2**31)
    assert as_long(b"18446744073709551615") == -1
    assert as_long(b"4294967295") == 4294967295
    assert as_int(b"007") == 7  # sscanf("%u") reads leading zeros too


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "flags: bad numerical value: b''"),
        (b"-1", "flags: bad numerical value: b'-1'"),
        (b"+1", "flags: bad numerical value: b'+1'"),
        (b" 1", "flags: bad numerical value: b' 1'"),
        (b"1x", "flags: bad numerical value: b'1x'"),
        (b"\xd9\xa1", "flags: bad numerical value: b'\\xd9\\xa1'"),  # Arabic-Indic one
        (b"4294967296", "flags: number out of range: b'4294967296'"),
        (b"1" * 21, "flags: bad numerical value: b'" + "1" * 21 + "'"),
    ],
)
def test_as_int_refuses(value: bytes, message: str) -> None:
    with pytest.raises(AttrError) as info:
        as_int(value, "flags")
    assert str(info.value) == message


def test_as_long_refuses_beyond_64_bits() -> None:
    with pytest.raises(AttrError, match=r"^offset: number out of range: b'18446744073709551616'$"):
        as_long(b"18446744073709551616", "offset")


# --- the captured request -----------------------------------------------------------------


def _check_captured(lists: list[AttrList]) -> None:
    assert len(lists) == 3
    common, first, second = lists
    assert [n.decode() for n, _ in common] == COMMON_NAMES
    values = dict(common)
    assert values[b"queue_id"] == b"2B84B2204F3"
    assert values[b"nexthop"] == b"[127.0.0.1]:2525"
    assert values[b"encoding"] == b""
    assert values[b"recipient_count"] == b"2"
    assert expect(first, RECIPIENT_NAMES) == [
        b"alice@remote.test",
        b"alice@remote.test",
        b"660",
        b"rfc822;alice@remote.test",
        b"0",
    ]
    assert expect(second, RECIPIENT_NAMES)[1:3] == [b"bob@remote.test", b"734"]


def test_captured_request_whole() -> None:
    _check_captured(_parse(REQUEST))


def test_captured_request_byte_at_a_time() -> None:
    parser = AttrParser()
    lists: list[AttrList] = []
    for i in range(len(REQUEST)):
        parser.feed(REQUEST[i : i + 1])
        found = parser.next_list()
        if found is not None:
            lists.append(found)
            # A list completes exactly at its terminating NUL.
            assert REQUEST[i - 1 : i + 1] == b"\0\0"
        assert parser.next_list() is None
    _check_captured(lists)
    assert parser.idle


@given(st.lists(st.integers(0, len(REQUEST)), max_size=30))
def test_captured_request_in_random_pieces(cuts: list[int]) -> None:
    _check_captured(_parse(REQUEST, sorted(cuts)))


def test_idle_only_between_lists() -> None:
    parser = AttrParser()
    assert parser.idle
    parser.feed(b"name\0val")
    assert parser.next_list() is None
    assert not parser.idle
    parser.feed(b"ue\0\0")
    assert parser.next_list() == [(b"name", b"value")]
    assert parser.idle


def test_empty_list() -> None:
    assert _parse(b"\0\0") == [[], []]


# --- limits and truncation ----------------------------------------------------------------


def test_string_at_the_limit_is_accepted() -> None:
    parser = AttrParser(max_string=8)
    parser.feed(b"12345678\0" + b"x" * 8 + b"\0\0")
    assert parser.next_list() == [(b"12345678", b"x" * 8)]


def test_string_too_long_with_its_terminator() -> None:
    parser = AttrParser(max_string=8)
    parser.feed(b"name\0" + b"x" * 9 + b"\0\0")
    with pytest.raises(AttrError, match=r"^string length > 8$"):
        parser.next_list()


def test_string_too_long_before_its_terminator_arrives() -> None:
    # An endless string is refused as soon as it passes the limit, not buffered forever.
    parser = AttrParser(max_string=8)
    parser.feed(b"x" * 9)
    with pytest.raises(AttrError, match=r"^string length > 8$"):
        parser.next_list()


def test_default_limit_is_four_line_length_limits() -> None:
    parser = AttrParser()
    parser.feed(b"name\0" + b"x" * 8192 + b"\0\0")
    assert parser.next_list() == [(b"name", b"x" * 8192)]
    parser.feed(b"name\0" + b"x" * 8193)
    with pytest.raises(AttrError, match=r"^string length > 8192$"):
        parser.next_list()


def test_too_many_pairs() -> None:
    parser = AttrParser(max_pairs=3)
    parser.feed(b"a\0" * 6 + b"\0")
    assert parser.next_list() == [(b"a", b"a")] * 3
    parser = AttrParser(max_pairs=3)
    parser.feed(b"a\0" * 8 + b"\0")
    with pytest.raises(AttrError, match=r"^more than 3 attributes in a list$"):
        parser.next_list()


def test_a_pair_counts_once_its_value_is_complete() -> None:
    parser = AttrParser(max_pairs=1)
    parser.feed(b"a\0b\0c\0d")  # the second value still arriving
    assert parser.next_list() is None
    parser.feed(b"\0")
    with pytest.raises(AttrError, match=r"^more than 1 attributes in a list$"):
        parser.next_list()


def test_the_first_limit_broken_is_reported() -> None:
    parser = AttrParser(max_pairs=1, max_string=3)
    parser.feed(b"a\0b\0c\0dddd\0\0")  # too many pairs, and a string too long in the 2nd
    with pytest.raises(AttrError, match=r"^string length > 3$"):
        parser.next_list()
    parser = AttrParser(max_pairs=1, max_string=3)
    parser.feed(b"a\0b\0c\0d\0eeee\0")
    with pytest.raises(AttrError, match=r"^more than 1 attributes in a list$"):
        parser.next_list()


def test_many_lists_in_one_piece() -> None:
    lists = [[(b"n%d" % i, b"v%d" % i)] for i in range(200)]
    data = b"".join(encode([(name.decode(), value) for name, value in pairs]) for pairs in lists)
    assert _parse(data) == lists


@pytest.mark.parametrize(
    "data",
    [b"na", b"name\0", b"name\0val", b"name\0value\0", b"a\0b\0c\0d\0"],
    ids=["in-name", "after-name", "in-value", "no-terminator", "two-pairs"],
)
def test_premature_end_of_file(data: bytes) -> None:
    parser = AttrParser()
    parser.feed(data)
    assert parser.next_list() is None
    parser.feed(b"")
    with pytest.raises(AttrError, match=r"^premature end of file in attribute list$"):
        parser.next_list()


def test_end_of_file_between_lists_is_clean() -> None:
    parser = AttrParser()
    parser.feed(b"a\0b\0\0")
    parser.feed(b"")
    assert parser.next_list() == [(b"a", b"b")]
    assert parser.next_list() is None
    assert parser.next_list() is None


def test_data_after_end_of_file() -> None:
    parser = AttrParser()
    parser.feed(b"")
    with pytest.raises(AttrError, match=r"^data after end of file$"):
        parser.feed(b"x")


# --- strict scanning ----------------------------------------------------------------------


def test_expect_returns_the_values_in_order() -> None:
    pairs = [(b"a", b"1"), (b"b", b"")]
    assert expect(pairs, ["a", "b"]) == [b"1", b""]
    assert expect([], []) == []


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(b"a", b"1")], "missing attribute b"),
        ([], "missing attribute a"),
        ([(b"b", b"1"), (b"a", b"1")], "unexpected attribute b (expecting: a)"),
        ([(b"a", b"1"), (b"c", b"1")], "unexpected attribute c (expecting: b)"),
        (
            [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")],
            "unexpected attribute a (expecting: (list terminator))",
        ),
        ([(b"\xff", b"1")], "unexpected attribute \\xff (expecting: a)"),
    ],
)
def test_expect_refuses_with_postfix_wording(pairs: AttrList, message: str) -> None:
    with pytest.raises(AttrError) as info:
        expect(pairs, ["a", "b"])
    assert str(info.value) == message


def test_expect_strings_is_expect_of_the_flat_list() -> None:
    parser = AttrParser()
    parser.feed(b"a\x001\x00b\x00\x00\x00")
    strings = parser.next_strings()
    assert strings == [b"a", b"1", b"b", b""]
    assert expect_strings(strings, ["a", "b"]) == [b"1", b""]
    assert parser.next_strings() is None


@pytest.mark.parametrize(
    "pairs",
    [
        [(b"a", b"1")],
        [],
        [(b"b", b"1"), (b"a", b"1")],
        [(b"a", b"1"), (b"c", b"1")],
        [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")],
        [(b"\xff", b"1")],
    ],
)
def test_expect_strings_refuses_as_expect_does(pairs: AttrList) -> None:
    with pytest.raises(AttrError) as want:
        expect(pairs, ["a", "b"])
    with pytest.raises(AttrError) as got:
        expect_strings([s for pair in pairs for s in pair], ["a", "b"])
    assert str(got.value) == str(want.value)


# --- round trips ----------------------------------------------------------------------------

_NAMES = st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=12)
_VALUES = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\0" not in b),
    st.text(max_size=20).filter(lambda t: "\0" not in t),
    st.integers(-(2**31), 2**32 - 1),
    st.integers(-(2**63), 2**64 - 1).map(Long),
    st.sampled_from([-1, Long(-1), 0, Long(0)]),
)


def _wire(value: str | int | bytes) -> bytes:
    if isinstance(value, Long):
        return str(value % 2**64).encode()
    if isinstance(value, int):
        return str(value % 2**32).encode()
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


@given(
    st.lists(st.lists(st.tuples(_NAMES, _VALUES), max_size=8), min_size=1, max_size=4),
    st.lists(st.integers(0, 2000), max_size=10),
)
def test_round_trip(lists: list[list[tuple[str, str | int | bytes]]], cuts: list[int]) -> None:
    data = b"".join(encode(pairs) for pairs in lists)
    got = _parse(data, sorted(c for c in cuts if c <= len(data)))
    assert len(got) == len(lists)
    for sent, received in zip(lists, got, strict=True):
        assert [n.decode() for n, _ in received] == [n for n, _ in sent]
        for (_, value), (_, raw) in zip(sent, received, strict=True):
            assert raw == _wire(value)
            if isinstance(value, Long):
                assert as_long(raw) == (value if value < 2**63 else value - 2**64)
            elif isinstance(value, int):
                assert as_int(raw) == (value if value < 2**31 else value - 2**32)


@given(st.lists(st.tuples(_NAMES, _VALUES), min_size=1, max_size=6))
def test_inlined_sub_lists_join_their_parent(pairs: list[tuple[str, str | int | bytes]]) -> None:
    # Postfix inlines recipient and DSN sub-lists without their own terminator.
    data = encode(pairs[:1], terminate=False) + encode(pairs[1:])
    (got,) = _parse(data)
    assert [n.decode() for n, _ in got] == [n for n, _ in pairs]
