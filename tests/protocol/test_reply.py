"""Tests of mailcarrier.protocol.reply: the bounded, incremental SMTP/LMTP reply parser.

Every transcript is parsed whole, one byte at a time and (hypothesis) in random splits with
identical results; malformed, over-long and endless replies are `RemoteProtocolError` with
memory bounded by the configured limits; arbitrary bytes raise nothing else.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcarrier.errors import RemoteProtocolError
from mailcarrier.protocol.reply import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    Reply,
    ReplyParser,
)
from tests.protocol.helpers import CHUNKERS, Chunker, parse_all, random_splits, split_at

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (wire bytes, [(code, lines, enhanced), ...])
TRANSCRIPTS: dict[str, tuple[bytes, list[tuple[int, tuple[str, ...], str | None]]]] = {
    "single line": (b"250 Ok\r\n", [(250, ("250 Ok",), None)]),
    "single line, enhanced": (
        b"250 2.1.0 Sender ok\r\n",
        [(250, ("250 2.1.0 Sender ok",), "2.1.0")],
    ),
    "code only": (b"250\r\n", [(250, ("250",), None)]),
    "code and space": (b"250 \r\n", [(250, ("250 ",), None)]),
    "multi-line EHLO": (
        b"250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
        [
            (
                250,
                (
                    "250-mx.example.org Hello",
                    "250-PIPELINING",
                    "250-SIZE 10240000",
                    "250 8BITMIME",
                ),
                None,
            )
        ],
    ),
    "bare LF": (b"250-first\n250 second\n", [(250, ("250-first", "250 second"), None)]),
    "mixed CRLF and LF": (
        b"220-a\r\n220-b\n220 c\r\n",
        [(220, ("220-a", "220-b", "220 c"), None)],
    ),
    "multi-line with enhanced codes": (
        b"550-5.7.1 a\r\n550 5.7.1 b\r\n",
        [(550, ("550-5.7.1 a", "550 5.7.1 b"), "5.7.1")],
    ),
    "several replies in one segment": (
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n354 go ahead\r\n",
        [
            (250, ("250 2.1.0 Ok",), "2.1.0"),
            (250, ("250 2.1.5 Ok",), "2.1.5"),
            (550, ("550 5.1.1 unknown",), "5.1.1"),
            (354, ("354 go ahead",), None),
        ],
    ),
    "empty continuation lines": (
        b"250-\r\n250-\r\n250 x\r\n",
        [(250, ("250-", "250-", "250 x"), None)],
    ),
    "non-ASCII text kept visible": (
        b"550 5.1.1 \xc3\xbc \xff\r\n",
        [(550, ("550 5.1.1 \u00fc \\xff",), "5.1.1")],
    ),
    "tab and CR inside the text": (b"250 a\tb\rc\r\n", [(250, ("250 a\tb\rc",), None)]),
    # Postfix takes the code of the last line and the enhanced code of the first.
    "code of the last line": (b"250-x\r\n550 y\r\n", [(550, ("250-x", "550 y"), None)]),
}


def _as_tuples(replies: list[Reply]) -> list[tuple[int, tuple[str, ...], str | None]]:
    return [(r.code, r.lines, r.enhanced) for r in replies]


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcripts(name: str, chunker: Chunker) -> None:
    wire, expected = TRANSCRIPTS[name]
    parser = ReplyParser()
    assert _as_tuples(parse_all(chunker(wire), parser)) == expected
    assert not parser.in_reply
    assert parser.buffered == 0


@SETTINGS
@given(rng=st.randoms(use_true_random=False))
@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcripts_random_splits(name: str, rng: random.Random) -> None:
    wire, expected = TRANSCRIPTS[name]
    assert _as_tuples(parse_all(random_splits(rng)(wire))) == expected


def test_partial_reply_waits_for_the_rest() -> None:
    parser = ReplyParser()
    parser.feed(b"250-mx\r\n250 PIPEL")
    assert parser.next_reply() is None
    assert parser.in_reply
    assert parser.buffered == len(b"250-mx") + len(b"250 PIPEL")
    parser.feed(b"INING\r\n250 ")
    reply = parser.next_reply()
    assert reply is not None
    assert reply.lines == ("250-mx", "250 PIPELINING")
    assert parser.next_reply() is None
    assert parser.in_reply  # "250 " of the next reply
    parser.feed(b"Ok\n")
    assert parser.next_reply() == Reply(250, ("250 Ok",), None)
    assert not parser.in_reply


def test_line_end_split_between_cr_and_lf() -> None:
    assert _as_tuples(parse_all([b"250 Ok\r", b"\n"])) == [(250, ("250 Ok",), None)]


def test_a_bare_cr_is_not_a_line_end() -> None:
    parser = ReplyParser()
    parser.feed(b"250 Ok\r")
    assert parser.next_reply() is None
    assert parser.in_reply


# --- enhanced status codes (RFC 3463) -----------------------------------------------------
@pytest.mark.parametrize(
    ("line", "enhanced", "dsn"),
    [
        (b"250 2.0.0 Ok", "2.0.0", "2.0.0"),
        (b"250 2.1.5", "2.1.5", "2.1.5"),
        (b"451 4.3.0 Try again later", "4.3.0", "4.3.0"),
        (b"421 4.4.2 timeout", "4.4.2", "4.4.2"),
        (b"550 5.7.1 Relaying denied", "5.7.1", "5.7.1"),
        (b"552 5.123.456 big numbers", "5.123.456", "5.123.456"),
        (b"550 5.1.1\tafter a tab", "5.1.1", "5.1.1"),
        # absent: Postfix assumes X.0.0 from the reply class
        (b"250 Ok", None, "2.0.0"),
        (b"450 busy", None, "4.0.0"),
        (b"550 no such user", None, "5.0.0"),
        (b"550", None, "5.0.0"),
        # class disagrees with the reply code: ignored
        (b"550 2.1.0 x", None, "5.0.0"),
        (b"250 5.0.0 x", None, "2.0.0"),
        (b"451 5.7.1 x", None, "4.0.0"),
        # not an enhanced code
        (b"250 3.0.0 x", None, "2.0.0"),
        (b"250 2.1.0Ok", None, "2.0.0"),
        (b"250 2.1000.0 x", None, "2.0.0"),
        (b"250 2.1.1000 x", None, "2.0.0"),
        (b"250 20.1.0 x", None, "2.0.0"),
        (b"250 2.1 x", None, "2.0.0"),
        (b"250 2..0 x", None, "2.0.0"),
        (b"250  2.1.0 two spaces", None, "2.0.0"),
        (b"250 x 2.1.0", None, "2.0.0"),
        # non-ASCII digits are not digits on the wire
        ("250 2.\u0663.0 x".encode(), None, "2.0.0"),
        ("250 2.1.\u00b2 x".encode(), None, "2.0.0"),
        ("250 2.1.0\u00a0x".encode(), None, "2.0.0"),
    ],
)
def test_enhanced_status_codes(line: bytes, enhanced: str | None, dsn: str) -> None:
    (reply,) = parse_all([line + b"\r\n"])
    assert reply.enhanced == enhanced
    assert reply.dsn == dsn


def test_enhanced_code_is_taken_from_the_first_line_only() -> None:
    (reply,) = parse_all([b"550-no code here\r\n550 5.1.1 but here\r\n"])
    assert reply.enhanced is None
    assert reply.dsn == "5.0.0"


# --- the Reply value ----------------------------------------------------------------------
def test_text_joins_lines_as_postfix_prints_them() -> None:
    (reply,) = parse_all([b"550-5.7.1 a\r\n550 5.7.1 b\r\n"])
    assert reply.text == "550-5.7.1 a 550 5.7.1 b"
    assert reply.messages == ("5.7.1 a", "5.7.1 b")


@pytest.mark.parametrize(
    ("code", "positive", "transient", "permanent"),
    [
        (220, True, False, False),
        (250, True, False, False),
        (334, True, False, False),
        (354, True, False, False),
        (421, False, True, False),
        (452, False, True, False),
        (500, False, False, True),
        (554, False, False, True),
    ],
)
def test_reply_classes(code: int, positive: bool, transient: bool, permanent: bool) -> None:
    (reply,) = parse_all([f"{code} x\r\n".encode()])
    assert (reply.is_positive, reply.is_transient, reply.is_permanent) == (
        positive,
        transient,
        permanent,
    )


@pytest.mark.parametrize(
    ("code", "success"),
    [(200, True), (250, True), (299, True), (334, False), (354, False), (421, False), (550, False)],
)
def test_is_success_is_2xx_only(code: int, success: bool) -> None:
    """RFC 5321 4.2.1: only a 2xx completes; a 3xx asks for more."""
    (reply,) = parse_all([f"{code} x\r\n".encode()])
    assert reply.is_success is success


def test_make_builds_what_the_parser_would_produce() -> None:
    made = Reply.make(550, "5.7.1 a", "5.7.1 b")
    assert made == parse_all([b"550-5.7.1 a\r\n550 5.7.1 b\r\n"])[0]
    assert Reply.make(250) == Reply(250, ("250",), None)
    assert Reply.make(451, "4.3.0 later").enhanced == "4.3.0"
    assert Reply.make(550, "2.1.0 wrong class").enhanced is None


# --- malformed lines ----------------------------------------------------------------------
MALFORMED = [
    b"hello\r\n",
    b"\r\n",
    b"\n",
    b"25\r\n",
    b"2\r\n",
    b" 250 leading space\r\n",
    b"2500 four digits\r\n",
    b"25a x\r\n",
    b"250x\r\n",
    b"250_x\r\n",
    b"250\tx\r\n",
    b"250+x\r\n",
    b"150 preliminary\r\n",
    b"199 x\r\n",
    b"099 x\r\n",
    b"600 x\r\n",
    b"650 x\r\n",
    b"999 x\r\n",
    "\u0662\u0665\u0660 x\r\n".encode(),
    b"\x00\x00\x00 x\r\n",
    b"250-first ok\r\nthen garbage\r\n",
    b"250-first ok\r\n150 bad continuation\r\n",
]


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed_lines_raise(wire: bytes, chunker: Chunker) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed reply line"):
        parse_all(chunker(wire))


def test_malformed_line_after_good_replies() -> None:
    parser = ReplyParser()
    parser.feed(b"250 one\r\n250 two\r\nbogus\r\n")
    assert parser.next_reply() == Reply(250, ("250 one",), None)
    assert parser.next_reply() == Reply(250, ("250 two",), None)
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_malformed_line_is_shown_truncated_in_the_error() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_all([b"x" * 500 + b"\r\n"])
    assert len(str(info.value)) < 120


# --- bounds -------------------------------------------------------------------------------
@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_line_of_maximum_length_is_accepted(chunker: Chunker, ending: bytes) -> None:
    line = b"250 " + b"x" * 60
    (reply,) = parse_all(chunker(line + ending), ReplyParser(max_line_length=len(line)))
    assert reply.lines == (line.decode(),)


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_over_long_line_with_line_end_raises(chunker: Chunker, ending: bytes) -> None:
    line = b"250 " + b"x" * 61
    with pytest.raises(RemoteProtocolError, match="longer than 64"):
        parse_all(chunker(line + ending), ReplyParser(max_line_length=64))


def test_default_line_length_limit() -> None:
    ok = b"250 " + b"x" * (DEFAULT_MAX_LINE_LENGTH - 4)
    assert parse_all([ok + b"\r\n"])[0].lines == (ok.decode(),)
    with pytest.raises(RemoteProtocolError):
        parse_all([ok + b"x\r\n"])


@pytest.mark.parametrize("step", [1, 7, 100, 5000])
def test_over_long_line_without_line_end_raises_with_bounded_memory(step: int) -> None:
    """A peer that never sends a line end is caught once the limit is passed."""
    limit = 256
    parser = ReplyParser(max_line_length=limit)
    fed = 0
    with pytest.raises(RemoteProtocolError, match="longer than 256"):
        for _ in range(100_000):
            parser.feed(b"250 " if fed == 0 else b"y" * step)
            fed += 4 if fed == 0 else step
            assert parser.next_reply() is None
            # Never more than the limit, its line end and one chunk is held.
            assert parser.buffered <= limit + 2
    assert fed <= limit + 2 + step


def test_over_long_line_without_line_end_byte_by_byte_raises_at_the_limit() -> None:
    limit = 32
    parser = ReplyParser(max_line_length=limit)
    data = b"250 " + b"z" * 100
    for i, byte in enumerate(bytewise_of(data)):
        parser.feed(byte)
        if i + 1 <= limit + 2:  # the line might still end with CRLF right here
            assert parser.next_reply() is None
        else:
            with pytest.raises(RemoteProtocolError):
                parser.next_reply()
            assert i + 1 == limit + 3
            return
    pytest.fail("no error for an endless line")


def bytewise_of(data: bytes) -> list[bytes]:
    return CHUNKERS["bytewise"](data)


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
def test_reply_of_maximum_line_count_is_accepted(chunker: Chunker) -> None:
    wire = b"250-x\r\n" * 4 + b"250 y\r\n"
    (reply,) = parse_all(chunker(wire), ReplyParser(max_lines=5))
    assert len(reply.lines) == 5


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
def test_too_many_lines_raise_before_the_reply_ends(chunker: Chunker) -> None:
    # The fifth continuation line already makes a sixth line certain.
    wire = b"250-x\r\n" * 5
    with pytest.raises(RemoteProtocolError, match="longer than 5 lines"):
        parse_all(chunker(wire), ReplyParser(max_lines=5))


def test_default_line_count_limit() -> None:
    ok = b"250-x\r\n" * (DEFAULT_MAX_LINES - 1) + b"250 y\r\n"
    assert len(parse_all([ok])[0].lines) == DEFAULT_MAX_LINES
    with pytest.raises(RemoteProtocolError):
        parse_all([b"250-x\r\n" * DEFAULT_MAX_LINES + b"250 y\r\n"])


def test_endless_multi_line_reply_raises_with_bounded_memory() -> None:
    """An endless stream of continuation lines is stopped; memory stays below the limits."""
    max_lines, max_len = 50, 100
    parser = ReplyParser(max_line_length=max_len, max_lines=max_lines)
    line = b"250-" + b"c" * (max_len - 4) + b"\r\n"
    sent = 0
    with pytest.raises(RemoteProtocolError):
        for _ in range(1_000_000):
            parser.feed(line)
            sent += 1
            assert parser.next_reply() is None
            assert parser.buffered <= max_lines * (max_len + 2)
    assert sent == max_lines


def test_replies_after_a_bounded_reply_still_parse() -> None:
    """The limits are per line and per reply, not per connection."""
    parser = ReplyParser(max_line_length=20, max_lines=3)
    wire = (b"250-a\r\n250-b\r\n250 c\r\n" + b"250 " + b"d" * 16 + b"\r\n") * 200
    replies = parse_all(split_at(wire, range(0, len(wire), 13)), parser)
    assert len(replies) == 400


# --- hypothesis ---------------------------------------------------------------------------
def _outcome(chunks: list[bytes]) -> tuple[list[Reply], bool, bool]:
    """(replies before any error, whether an error was raised, partial data left)."""
    parser = ReplyParser(max_line_length=40, max_lines=4)
    replies: list[Reply] = []
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            try:
                reply = parser.next_reply()
            except RemoteProtocolError:
                return replies, True, False
            if reply is None:
                break
            replies.append(reply)
    return replies, False, parser.in_reply


_code = st.integers(200, 599).map(str)
_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
_line = st.builds(
    lambda c, s, t, e: f"{c}{s}{t}".encode() + e,
    _code,
    st.sampled_from(" -"),
    _text,
    st.sampled_from([b"\r\n", b"\n"]),
)
_wire = st.lists(
    st.one_of(_line, st.binary(max_size=60), st.sampled_from([b"\r\n", b"\n", b"\r", b"-"])),
    max_size=12,
).map(b"".join)


@SETTINGS
@given(data=_wire, cuts=st.lists(st.integers(0, 800), max_size=20))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes, cuts: list[int]) -> None:
    """Whatever arrives, in whatever pieces: replies or RemoteProtocolError, the same ones."""
    whole = _outcome([data])
    assert _outcome(split_at(data, cuts)) == whole
    assert _outcome(bytewise_of(data)) == whole
    replies = whole[0]
    assert len(replies) <= data.count(b"\n")
    assert all(200 <= r.code <= 599 and 1 <= len(r.lines) <= 4 for r in replies)


@SETTINGS
@given(data=st.binary(max_size=3000))
def test_random_binary_only_raises_remote_protocol_error(data: bytes) -> None:
    parser = ReplyParser()
    parser.feed(data)
    try:
        for _ in range(len(data) + 1):
            if parser.next_reply() is None:
                break
        else:
            pytest.fail("next_reply() kept returning replies")
    except RemoteProtocolError:
        pass
    assert parser.buffered <= len(data)


@st.composite
def _valid_replies(draw: st.DrawFn) -> tuple[bytes, int, tuple[str, ...], str | None]:
    code = draw(st.integers(200, 599))
    first = draw(st.integers(0, 2))  # 0 plain text, 1 a valid enhanced code, 2 wrong class
    enhanced = None
    rest = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
    if first == 0:
        head = draw(st.sampled_from("abcXYZ<(!"))  # not a digit: no accidental code
        first_text = head + rest
    else:
        cls = (
            code // 100
            if first == 1
            else draw(st.sampled_from([c for c in (2, 4, 5, 3, 9) if c != code // 100]))
        )
        subject, detail = draw(st.integers(0, 999)), draw(st.integers(0, 999))
        code_text = f"{cls}.{subject}.{detail}"
        separator = draw(st.sampled_from(["", " ", "\t"]))
        first_text = code_text + (separator + rest if separator else "")
        if cls == code // 100 and cls in (2, 4, 5):
            enhanced = code_text
    more = draw(
        st.lists(
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=5
        )
    )
    texts = [first_text, *more]
    lines = tuple(f"{code}{'-' if i < len(texts) - 1 else ' '}{t}" for i, t in enumerate(texts))
    ends = draw(st.lists(st.sampled_from(["\r\n", "\n"]), min_size=len(lines), max_size=len(lines)))
    wire = "".join(line + end for line, end in zip(lines, ends, strict=True)).encode()
    return wire, code, lines, enhanced


@SETTINGS
@given(
    replies=st.lists(_valid_replies(), min_size=1, max_size=4),
    rng=st.randoms(use_true_random=False),
)
def test_valid_replies_round_trip(
    replies: list[tuple[bytes, int, tuple[str, ...], str | None]], rng: random.Random
) -> None:
    wire = b"".join(r[0] for r in replies)
    expected = [(code, lines, enhanced) for _, code, lines, enhanced in replies]
    for chunks in ([wire], bytewise_of(wire), random_splits(rng)(wire)):
        parsed = parse_all(chunks)
        assert _as_tuples(parsed) == expected
        for reply, (_, code, lines, _) in zip(parsed, replies, strict=True):
            assert reply.messages == tuple(line[4:] for line in lines)
            assert reply.text == " ".join(lines)
            if code // 100 != 3:  # 3xx replies are not final: no DSN of their own
                assert reply.dsn == (reply.enhanced or f"{code // 100}.0.0")


def test_line_filter_rewrites_each_line_before_parsing() -> None:
    # postconf(5) smtp_reply_filter example: garbage becomes "250-filler", one line of a
    # multi-line reply; the final line's code decides.
    seen: list[str] = []

    def fix(line: str) -> str:
        seen.append(line)
        return line if line[:3].isdigit() else "250-filler"

    parser = ReplyParser(line_filter=fix)
    parser.feed(b"250-mx.example\r\nGARBAGE \xff\r\n250 8BITMIME\r\n")
    reply = parser.next_reply()
    assert reply is not None
    assert reply.lines == ("250-mx.example", "250-filler", "250 8BITMIME")
    assert seen == ["250-mx.example", "GARBAGE \\xff", "250 8BITMIME"]
    assert parser.next_reply() is None


def test_line_filter_output_is_still_checked() -> None:
    parser = ReplyParser(line_filter=lambda line: "not a reply")
    parser.feed(b"250 ok\r\n")
    with pytest.raises(RemoteProtocolError, match="malformed reply line"):
        parser.next_reply()


# --- one-line replies already seen ------------------------------------------------------------
def test_a_one_line_reply_seen_before_is_the_same_value() -> None:
    """Servers repeat "250 2.1.5 Ok" for every message: parsed once per connection."""
    parser = ReplyParser()
    line = b"250 2.1.5 Ok, remembered\r\n"
    a, b = parse_all([line, line], parser)
    assert a is b
    assert (a.code, a.lines, a.enhanced) == (250, ("250 2.1.5 Ok, remembered",), "2.1.5")


def test_a_reply_seen_with_either_line_end_is_the_same_reply() -> None:
    """A remembered reply is found by its bytes up to the LF: CRLF and a bare LF are two
    keys for equal replies, and a CR before the CRLF stays part of the line."""
    parser = ReplyParser()
    ends = [b"\r\n", b"\n", b"\n", b"\r\n", b"\r\r\n"]
    crlf, lf, lf_again, crlf_again, extra_cr = parse_all(
        [b"250 2.1.5 Ok" + end for end in ends], parser
    )
    assert crlf == lf == Reply(250, ("250 2.1.5 Ok",), "2.1.5")
    assert lf_again is lf and crlf_again is crlf
    assert extra_cr.lines == ("250 2.1.5 Ok\r",)


def test_parsers_share_nothing() -> None:
    """Each connection has its own parser, and remembers only what it parsed itself."""
    line = b"250 2.1.5 Ok\r\n"
    (a,), (b,) = parse_all([line]), parse_all([line])
    assert a == b
    assert a is not b


def test_multi_line_long_and_filtered_replies_are_parsed_each_time() -> None:
    long_line = b"250 " + b"x" * 600 + b"\r\n"
    multi = b"250-mx\r\n250 PIPELINING\r\n"
    for data in (long_line, multi):
        a, b = parse_all([data, data])
        assert a == b
        assert a is not b
    filtered = ReplyParser(line_filter=lambda line: line)
    a, b = parse_all([b"250 Ok\r\n", b"250 Ok\r\n"], filtered)
    assert a == b
    assert a is not b


def test_a_malformed_line_is_refused_every_time() -> None:
    parser = ReplyParser()
    for _ in range(3):
        with pytest.raises(RemoteProtocolError, match='malformed reply line: "25x Ok"'):
            parse_all([b"25x Ok\r\n"], parser)


def test_the_memory_of_replies_is_bounded_and_keeps_the_first() -> None:
    parser = ReplyParser()
    (first,) = parse_all([b"250 2.1.0 Ok\r\n"], parser)
    for n in range(1200):
        parse_all([f"250 2.0.0 Ok: queued as {n:05d}\r\n".encode()], parser)
    assert len(parser._seen) == 32
    (again,) = parse_all([b"250 2.1.0 Ok\r\n"], parser)
    assert again is first
