"""The queue file format: envelope round trip, state records, torn writes."""

from __future__ import annotations

import dataclasses
import string
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.notify import Notify
from mailcarrier.queue import qfile
from mailcarrier.queue.qfile import (
    Envelope,
    MessageClass,
    ParseError,
    QueueRecipient,
    notified_record,
    parse_envelope,
    parse_records,
    render_envelope,
    status_record,
    warned_record,
)
from mailcarrier.status import DeliveryStatus


def _env() -> Envelope:
    return Envelope(
        queue_id="ID1",
        sender="a b@example.org",
        recipients=(
            QueueRecipient(
                "x@example.net",
                "orig@example.net",
                "rfc822;x@example.net",
                Notify.SUCCESS | Notify.DELAY,
            ),
            QueueRecipient("üser@exämple.net"),
        ),
        arrival_time=1700000000.25,
        dsn_envid="ENV 1",
        dsn_ret="HDRS",
        encoding="8bit",
        smtputf8=True,
        message_class=MessageClass.BOUNCE,
    )


def test_envelope_round_trip() -> None:
    data = render_envelope(_env()) + b"content bytes"
    parsed = parse_envelope(data)
    assert parsed.recipients == _env().recipients
    assert parsed.sender == "a b@example.org"
    assert parsed.dsn_envid == "ENV 1"
    assert parsed.message_class is MessageClass.BOUNCE
    assert parsed.smtputf8 and parsed.encoding == "8bit"
    assert data[parsed.content_offset :] == b"content bytes"


@pytest.mark.parametrize("data", [b"", b"garbage\n", render_envelope(_env())[:-9]])
def test_damaged_envelope_is_refused(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_envelope(data)


def test_records_fold_to_last_verdict_and_ignore_a_torn_tail() -> None:
    data = (
        status_record(0, DeliveryStatus.DEFERRED, "4.4.1", "none", "refused", 1.0)
        + status_record(0, DeliveryStatus.SENT, "2.0.0", "h[1.2.3.4]:25", "250 ok", 2.0, "relayed")
        + notified_record(0)
        + warned_record()
        + b"status 1 sent 2.0.0"  # torn: no newline
    )
    log = parse_records(data)
    assert log.states[0].status is DeliveryStatus.SENT
    assert log.states[0].relay == "h[1.2.3.4]:25"
    assert log.is_final(0) and not log.is_final(1)
    assert log.notified == {0} and log.warned
    assert log.valid_length == data.index(b"status 1")


def test_bad_record_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_records(b"bogus 1\n")


def test_a_file_from_before_original_recipients_were_recorded_loads() -> None:
    """Until submission recorded them, every rcpt line had empty ORCPT and original fields;
    such files load as they are (the delivery then sends no ORCPT)."""
    data = (
        b"MAILCARRIER-QUEUE 1\n"
        b"id 0ty9Old\ntime 1700000000.0\nclass mail\nsender =s@example.org\nenvid =\nret =\n"
        b"body 7bit 0\nrcpt 0 = = =a@example.net\nrcpt 4 = = =b@example.net\n"
        b"size 00000000000000000004\ncontent\nbody"
    )
    env = parse_envelope(data)
    assert env.recipients == (
        QueueRecipient("a@example.net", "", "", Notify.NONE),
        QueueRecipient("b@example.net", "", "", Notify.FAILURE),
    )
    assert data[env.content_offset :] == b"body"


@pytest.mark.parametrize(
    ("requiretls", "tls_required_no", "line"),
    [
        (True, False, b"\nsendopts 32\n"),
        (False, True, b"\nsendopts 16\n"),
        (True, True, b"\nsendopts 48\n"),
    ],
)
def test_requiretls_flags_round_trip(requiretls: bool, tls_required_no: bool, line: bytes) -> None:
    """RFC 8689's flags as a "sendopts" line with Postfix's bits (sendopts.h)."""
    env = dataclasses.replace(_env(), requiretls=requiretls, tls_required_no=tls_required_no)
    data = render_envelope(env) + b"content bytes"
    assert line in data
    parsed = parse_envelope(data)
    assert (parsed.requiretls, parsed.tls_required_no) == (requiretls, tls_required_no)
    assert data[parsed.content_offset :] == b"content bytes"


def test_without_requiretls_flags_the_envelope_is_unchanged() -> None:
    """No "sendopts" line when neither flag is set: files stay as earlier versions wrote
    them, and such files (every file of an earlier version) read as without the flags."""
    data = render_envelope(_env())
    assert b"sendopts" not in data
    parsed = parse_envelope(data + b"x")
    assert not parsed.requiretls and not parsed.tls_required_no


# Field text: plain ASCII with spaces (the common cases, written without quote()), the
# characters quote() treats specially, and anything else.
_FIELD_TEXT = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + " @+.-_!#$&'*/?^`{|}~;:[]<>,()"),
    st.text(alphabet=string.printable + "%=é\u2028\x00"),
    st.text(),
)


@given(_FIELD_TEXT)
def test_field_encoding_is_quotes_and_decoding_is_unquotes(text: str) -> None:
    # The fast paths of _enc/_dec give exactly what quote()/unquote() give (and round-trip).
    encoded = qfile._enc(text)
    assert encoded == "=" + quote(text, safe=qfile._SAFE)
    assert qfile._dec(encoded) == unquote(encoded[1:], errors="strict") == text


# Envelopes as render_envelope writes them, then texts near them: lines dropped, repeated,
# swapped or replaced by others made of the keywords and of tokens that the fast reader
# treats specially (escapes, digits of other scripts, empty fields, line breaks).
_TOKEN = st.text(alphabet="=%0123456789aé٣\r.-+e", max_size=6)
_KEYWORDS = ("id", "time", "class", "sender", "envid", "ret", "body", "sendopts", "trace")


@st.composite
def _envelopes(draw: st.DrawFn) -> Envelope:
    rcpt = st.builds(
        QueueRecipient,
        _FIELD_TEXT,
        _FIELD_TEXT,
        _FIELD_TEXT,
        st.integers(0, 15).map(Notify),
    )
    return Envelope(
        queue_id=draw(st.text(alphabet=string.ascii_letters + string.digits, max_size=12)),
        sender=draw(_FIELD_TEXT),
        recipients=tuple(draw(st.lists(rcpt, min_size=1, max_size=3))),
        arrival_time=draw(st.floats(allow_nan=False)),
        size=draw(st.integers(0, 10**12)),
        dsn_envid=draw(_FIELD_TEXT),
        dsn_ret=draw(st.sampled_from(["", "FULL", "HDRS"])),
        encoding=draw(st.sampled_from(["7bit", "8bit", ""])),
        smtputf8=draw(st.booleans()),
        message_class=draw(st.sampled_from(MessageClass)),
        requiretls=draw(st.booleans()),
        tls_required_no=draw(st.booleans()),
        probe=draw(st.booleans()),
    )


@st.composite
def _envelope_texts(draw: st.DrawFn) -> str:
    text = render_envelope(draw(_envelopes()))[len(qfile.MAGIC) :].decode()
    lines = text.split("\n")[:-2]  # without "content" and the empty end
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "repeat", "swap", "replace", "token"]))
        if how == "drop" and len(lines) > 1:
            del lines[at]
        elif how == "repeat":
            lines.insert(at, lines[at])
        elif how == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif how == "replace":
            key = draw(st.sampled_from([*_KEYWORDS, "rcpt", "size", "other"]))
            lines[at] = " ".join([key, *draw(st.lists(_TOKEN, max_size=5))])
        else:
            words = lines[at].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(_TOKEN)
            lines[at] = " ".join(words)
    return "\n".join(lines)


@given(_envelope_texts())
def test_the_rendered_envelope_reader_is_the_general_one(text: str) -> None:
    """`_parse_rendered` (one regular-expression match) reads a text only as `_parse_fields`
    reads it, and leaves every other text (those the general reader refuses included) to it."""
    fast = qfile._parse_rendered(text, 99)
    try:
        general = qfile._parse_fields(text, 99)
    except ParseError:
        assert fast is None
        return
    assert fast is None or repr(fast) == repr(general)


@given(_envelopes())
def test_a_rendered_envelope_without_escapes_is_read_in_one_match(env: Envelope) -> None:
    data = render_envelope(env) + b"x"
    text = data[len(qfile.MAGIC) : -len(b"\ncontent\nx")].decode()
    fast = qfile._parse_rendered(text, len(data) - 1)
    assert (fast is None) == ("%" in text)
    assert parse_envelope(data) == dataclasses.replace(env, content_offset=len(data) - 1)
