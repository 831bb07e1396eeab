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
