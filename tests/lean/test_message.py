"""lean/message.py and the queue ID of lean/spool.py against the general path's functions
(queue/addresses.py, queue/submit.py, queue/qfile.py, queue/ids.py, email.utils): where the
lean one gives an answer, it is the general one's."""

from __future__ import annotations

import email.utils
import io
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcarrier.errors import DataError
from mailcarrier.lean import message
from mailcarrier.lean.spool import new_queue_id
from mailcarrier.notify import Notify
from mailcarrier.queue import ids, submit
from mailcarrier.queue.addresses import parse_address
from mailcarrier.queue.qfile import Envelope, QueueRecipient, render_envelope

ADDRESS_TEXT = st.text(alphabet='ab.+-_@<> "é\x1b[]1', max_size=14)


@given(text=ADDRESS_TEXT, allow_null=st.booleans())
def test_address_is_parse_address(text: str, allow_null: bool) -> None:
    lean = message.address(text, "origin.example", allow_null=allow_null)
    if lean is None:
        return
    assert lean == parse_address(text, what="x", myorigin="origin.example", allow_null=allow_null)


def test_plain_addresses_are_taken() -> None:
    assert message.address(" <a.b+c@x-y.example> ", "o.example") == ("a.b+c@x-y.example",) * 2
    assert message.address("root", "o.example") == ("root", "root@o.example")
    assert message.address("", "o.example", allow_null=True) == ("", "")
    assert message.address('"q"@x.example', "o.example") is None


@pytest.fixture(params=["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kolkata"])
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(when=st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_format_date_is_formatdate(zone: str, when: float) -> None:
    assert message.format_date(when) == email.utils.formatdate(when, localtime=True)


def test_format_date_at_a_rounding_edge(zone: str) -> None:
    for when in (1700000000.9999996, 1700000000.4999995, 86399.9999999):
        assert message.format_date(when) == email.utils.formatdate(when, localtime=True)


LINES = [
    b"To: a@example.net\n",
    b"Subject: x\r\n",
    b" folded\n",
    b"\tfolded\n",
    b"\n",
    b"\r\n",
    b"not a header\n",
    b"X Y: z\n",
    b": empty name\n",
    b"Name \t: v\n",
    b"caf\xc3\xa9: x\n",
    b"Subject: caf\xc3\xa9\n",
    b"x" * 50 + b"\n",
    b"Last: no newline",
]


@given(lines=st.lists(st.sampled_from(LINES), max_size=6), limit=st.sampled_from([40, 1000]))
def test_read_header_is_read_headers(lines: list[bytes], limit: int) -> None:
    data = b"".join(lines) + b"rest of the body\n"
    src = io.BytesIO(data)
    header, taken = message.read_header(src, limit)
    assert data.startswith(header.read) and src.tell() == len(header.read)
    if not taken:
        return
    general = submit._read_headers(io.BytesIO(data), limit)
    assert (header.lines, header.first_body_line) == (general.lines, general.first_body_line)
    assert message.fields(header.lines) == submit._fields(general.lines)
    for line in header.lines:
        assert message.is_field(line) == bool(submit._FIELD.match(line))


VALUES = [
    "a@example.net",
    "Name <n@example.net>",
    "<b@example.net>",
    "x@example.net, y@ex.org",
    "Two Words <w@example.org>",
    "Name<n@example.net>",
    '"Q" <q@example.net>',
    "root",
    "group: a@b.example;",
    "a@b.example (comment)",
    "",
    " ",
    "a@b.example,",
    "x <y>",
    "Name  Two <t@example.org>",
]
NAMES = ["to", "cc", "bcc", "resent-to", "subject", "resent-date"]


@given(found=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=4))
def test_header_recipients_is_the_general_one(found: list[tuple[str, str]]) -> None:
    fields = [(name, " " + value, i, 1) for i, (name, value) in enumerate(found)]
    lean = message.header_recipients(fields)
    if lean is None:
        return
    assert lean == submit._header_recipients(fields)


@given(
    sender=st.sampled_from(["", "s@example.org"]),
    recipients=st.lists(st.sampled_from(["r@example.net", "root@o.example"]), max_size=3),
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_envelope_is_render_envelope(sender: str, recipients: list[str], now: float) -> None:
    pairs = [(r, r) for r in recipients]
    general = Envelope(
        queue_id="QID",
        sender=sender,
        recipients=tuple(QueueRecipient(r, r, f"rfc822;{r}", Notify.NONE) for r in recipients),
        arrival_time=now,
    )
    assert message.envelope("QID", now, sender, pairs) == render_envelope(general)


@given(
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    random=st.binary(min_size=5, max_size=5),
)
def test_new_queue_id_is_the_queue_s(now: float, random: bytes) -> None:
    original = os.urandom
    try:
        os.urandom = lambda n: random
        expected = ids.new_queue_id(now)
    finally:
        os.urandom = original
    assert new_queue_id(now, random) == expected


def test_a_bad_list_is_left_to_the_general_path() -> None:
    fields = [("to", " a@b.example, x <y", 0, 1)]
    assert message.header_recipients(fields) is None
    with pytest.raises(DataError):
        submit._header_recipients(fields)
