"""postfix/request.py: the requests a real qmgr(8) sent, parsed field by field and encoded
back to the same bytes; Postfix 3.10's `sendopts`; every strict-scan refusal with its words;
hypothesis round trips; and the `DeliveryRequest` made of a request."""

from __future__ import annotations

import dataclasses
import io
import struct
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.notify import Notify
from mailcarrier.postfix.attr import AttrError, AttrParser, encode
from mailcarrier.postfix.msgstats import MsgStats
from mailcarrier.postfix.request import (
    COMMON_ATTRIBUTES,
    DEL_REQ_FLAG_CONN_LOAD,
    DEL_REQ_FLAG_DEFLT,
    DEL_REQ_FLAG_MTA_VRFY,
    DEL_REQ_FLAG_REC_DLY_SENT,
    DEL_REQ_FLAG_RECORD,
    DEL_REQ_FLAG_SUCCESS,
    DEL_REQ_FLAG_USR_VRFY,
    NativeRecipient,
    NativeRequest,
    RequestReader,
    RequestRefused,
    parse_common,
    parse_recipient,
    parse_request,
    to_delivery_request,
    trace_flags,
    trace_only,
)

DATA: Final = Path(__file__).parent / "data"
TWO: Final = (DATA / "deliver-request-2rcpt.bin").read_bytes()
DSN3: Final = (DATA / "deliver-request-dsn-3rcpt.bin").read_bytes()


def _lists(data: bytes) -> list[list[tuple[bytes, bytes]]]:
    parser = AttrParser()
    parser.feed(data)
    out = []
    while (found := parser.next_list()) is not None:
        out.append(found)
    return out


def _with(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


# --- the captured requests ----------------------------------------------------------------


def test_two_recipients_every_field() -> None:
    request = parse_request(TWO)
    assert dataclasses.replace(request, recipients=()) == NativeRequest(
        flags=3,
        queue_name="active",
        queue_id="2B84B2204F3",
        data_offset=753,
        data_size=3390,
        nexthop="[127.0.0.1]:2525",
        encoding="",
        sendopts=0,
        sender="sender@test.local",
        dsn_envid="",
        dsn_ret=0,
        msg_stats=MsgStats(incoming_arrival=1796224095.174043, active_arrival=1796224105.365566),
        client_name="localhost",
        client_addr="127.0.0.1",
        client_port="39340",
        client_proto="ESMTP",
        client_helo="client.test.local",
        sasl_method="",
        sasl_username="",
        sasl_sender="",
        log_ident="2B84B2204F3",
        rewrite_context="local",
        sendopts_name="smtputf8",
    )
    assert request.recipients == (
        NativeRecipient(
            "alice@remote.test", "alice@remote.test", 660, "rfc822;alice@remote.test", 0
        ),
        NativeRecipient("bob@remote.test", "bob@remote.test", 734, "rfc822;bob@remote.test", 0),
    )


def test_dsn_request_every_field() -> None:
    request = parse_request(DSN3)
    assert (request.queue_id, request.data_offset, request.data_size) == ("78D81220331", 921, 3419)
    assert (request.dsn_envid, request.dsn_ret, request.log_ident) == (
        "env-test-two",
        2,
        "78D81220331",
    )
    assert request.msg_stats == MsgStats(
        incoming_arrival=1796224210.486827, active_arrival=1796224210.496703
    )
    assert request.client_port == "47346"
    # In qmgr's order, not the order of submission (or of the queue file).
    assert request.recipients == tuple(
        NativeRecipient(
            f"{name}@remote.test", f"{name}@remote.test", offset, "rfc822;orig@x.test", 14
        )
        for name, offset in (("alice2", 711), ("bounceme", 897), ("deferme", 803))
    )


@pytest.mark.parametrize("data", [TWO, DSN3], ids=["2rcpt", "dsn-3rcpt"])
def test_encodes_back_to_the_captured_bytes(data: bytes) -> None:
    assert parse_request(data).encode() == data


def test_postfix_3_10_sendopts() -> None:
    data = _with(TWO, b"smtputf8\x000\0", b"sendopts\x0033\0")
    request = parse_request(data)
    assert (request.sendopts_name, request.sendopts) == ("sendopts", 33)
    assert request.encode() == data


@pytest.mark.parametrize("data", [TWO, DSN3], ids=["2rcpt", "dsn-3rcpt"])
def test_reader_byte_at_a_time(data: bytes) -> None:
    reader = RequestReader()
    common_end = data.index(b"\0\0", data.index(b"recipient_count")) + 2
    for i in range(len(data)):
        assert reader.request() is None
        assert (reader.header is not None) == (i >= common_end)
        reader.feed(data[i : i + 1])
    assert reader.header is not None
    assert reader.request() == parse_request(data)
    assert reader.request() == parse_request(data)  # it stays


def test_reader_header_has_no_recipients_yet() -> None:
    common, count = parse_common(_lists(TWO)[0])
    assert (common.recipients, count) == ((), 2)
    assert common.with_recipients([parse_recipient(_lists(TWO)[1])]).recipients[0].offset == 660


# --- strict scanning ------------------------------------------------------------------------

_COMMON = "error receiving common attributes: "
_RCPT = "error receiving recipient attributes: "


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # missing
        (b"queue_name\0active\0", b"", "unexpected attribute queue_id (expecting: queue_name)"),
        (b"recipient_count\x002\0", b"", "missing attribute recipient_count"),
        # extra, in the middle and at the end
        (b"\0sender\0", b"\0extra\0x\0sender\0", "unexpected attribute extra (expecting: sender)"),
        (
            b"recipient_count\x002\0",
            b"recipient_count\x002\0x\0y\0",
            "unexpected attribute x (expecting: (list terminator))",
        ),
        # misplaced
        (
            b"queue_name\0active\0queue_id\x002B84B2204F3\0",
            b"queue_id\x002B84B2204F3\0queue_name\0active\0",
            "unexpected attribute queue_id (expecting: queue_name)",
        ),
        # attribute 8 under another name
        (b"smtputf8\x000\0", b"utf8\x000\0", "unexpected attribute utf8 (expecting: smtputf8)"),
        # bad numbers
        (b"flags\x003\0", b"flags\0three\0", "flags: bad numerical value: b'three'"),
        (b"offset\x00753\0", b"offset\0-753\0", "offset: bad numerical value: b'-753'"),
        (b"smtputf8\x000\0", b"smtputf8\x004294967296\0", "smtputf8: number out of range"),
        # the time attribute
        (b"time\0XzQQ", b"time\0!zQQ", "malformed base64 data in attribute time"),
        (b"AAAAAAA==\0", b"AAAAAAA\0", "malformed base64 data in attribute time"),
        (b"AAAAAAAA==\0", b"AAAAAA==\0", "msg_stats_scan: size mis-match: 87 != 88"),
    ],
)
def test_common_attributes_refused(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(AttrError) as info:
        parse_request(_with(TWO, old, new))
    assert str(info.value).startswith(_COMMON + message)


@pytest.mark.parametrize("count", [b"0", b"4294967295"])
def test_no_recipients(count: bytes) -> None:
    with pytest.raises(AttrError) as info:
        parse_request(_with(TWO, b"recipient_count\x002\0", b"recipient_count\0" + count + b"\0"))
    assert str(info.value) == (
        _COMMON + "2B84B2204F3: no recipients in delivery request for destination [127.0.0.1]:2525"
    )
    with pytest.raises(AttrError, match="no recipients"):
        parse_request(TWO).with_recipients([])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"notify_flags\x000\0\0original", b"\0original", "missing attribute notify_flags"),
        (
            b"offset\x00734\0",
            b"offset\x00734\0offset\x00734\0",
            "unexpected attribute offset (expecting: dsn_orig_rcpt)",
        ),
        (b"offset\x00660\0", b"offset\0x\0", "offset: bad numerical value: b'x'"),
        (
            b"original_recipient\0alice@remote.test\0",
            b"",
            "unexpected attribute recipient (expecting: original_recipient)",
        ),
    ],
)
def test_recipient_attributes_refused(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(AttrError) as info:
        parse_request(_with(TWO, old, new))
    assert str(info.value) == _RCPT + message


def test_truncated_and_trailing_requests() -> None:
    with pytest.raises(AttrError, match=r"^premature end of file in attribute list$"):
        parse_request(TWO[:-1])
    with pytest.raises(AttrError, match=r"^premature end of file in delivery request$"):
        parse_request(TWO[: TWO.index(b"original_recipient\0bob")])
    with pytest.raises(AttrError, match=r"^data after the delivery request$"):
        parse_request(TWO + b"x\0y\0\0")


def test_recipient_offset_minus_one_is_a_long() -> None:
    data = _with(TWO, b"offset\x00660\0", b"offset\x0018446744073709551615\0")
    assert parse_request(data).recipients[0].offset == -1


# --- flags ------------------------------------------------------------------------------


def test_flags() -> None:
    assert DEL_REQ_FLAG_DEFLT == 3
    assert trace_flags(3) == 0
    assert trace_flags(259) == DEL_REQ_FLAG_MTA_VRFY
    every = 0x3F03
    assert trace_flags(every) == (
        DEL_REQ_FLAG_MTA_VRFY
        | DEL_REQ_FLAG_USR_VRFY
        | DEL_REQ_FLAG_RECORD
        | DEL_REQ_FLAG_REC_DLY_SENT
    )
    assert trace_only(259) and trace_only(DEL_REQ_FLAG_USR_VRFY)
    assert not trace_only(DEL_REQ_FLAG_SUCCESS | DEL_REQ_FLAG_RECORD | DEL_REQ_FLAG_CONN_LOAD)
    assert trace_flags(1024 | 8192) == 1024 | 8192


# --- round trips ----------------------------------------------------------------------------

_TEXT = st.text(max_size=30).filter(lambda t: "\0" not in t)
_INT = st.integers(-(2**31), 2**31 - 1)
_LONG = st.integers(-(2**63), 2**63 - 1)
_TIMEVAL = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999))
_STATS = st.builds(
    lambda t, reuse: MsgStats.unpack(struct.pack("=10qi4x", *(n for tv in t for n in tv), reuse)),
    st.tuples(*([_TIMEVAL] * 5)),
    _INT,
)
_RECIPIENT = st.builds(NativeRecipient, _TEXT, _TEXT, _LONG, _TEXT, _INT)
_REQUEST = st.builds(
    NativeRequest,
    flags=_INT,
    queue_name=_TEXT,
    queue_id=_TEXT,
    data_offset=_LONG,
    data_size=_LONG,
    nexthop=_TEXT,
    encoding=st.sampled_from(["", "7bit", "8bit"]),
    sendopts=_INT,
    sender=_TEXT,
    dsn_envid=_TEXT,
    dsn_ret=_INT,
    msg_stats=_STATS,
    client_name=_TEXT,
    client_addr=_TEXT,
    client_port=_TEXT,
    client_proto=_TEXT,
    client_helo=_TEXT,
    sasl_method=_TEXT,
    sasl_username=_TEXT,
    sasl_sender=_TEXT,
    log_ident=_TEXT,
    rewrite_context=_TEXT,
    recipients=st.lists(_RECIPIENT, min_size=1, max_size=4).map(tuple),
    sendopts_name=st.sampled_from(["smtputf8", "sendopts"]),
)


@given(_REQUEST, st.lists(st.integers(0, 3000), max_size=8))
def test_round_trip(request: NativeRequest, cuts: list[int]) -> None:
    data = request.encode()
    assert parse_request(data) == request
    reader = RequestReader()
    start = 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        if cut > start:
            reader.feed(data[start:cut])
        start = cut
    if start < len(data):
        reader.feed(data[start:])
    assert reader.request() == request


def test_common_attribute_names() -> None:
    assert len(COMMON_ATTRIBUTES) == 23
    assert [n for n, _ in parse_request(TWO).common_pairs()] == list(COMMON_ATTRIBUTES)
    assert encode(parse_request(TWO).common_pairs()) == TWO[: TWO.index(b"original_recipient")]


# --- to mailcarrier's request -------------------------------------------------------------


def test_delivery_request_of_the_dsn_request() -> None:
    native = parse_request(DSN3)
    content = io.BytesIO(b"content")
    request = to_delivery_request(native, transport="smtp", content=content)
    assert isinstance(request, DeliveryRequest)
    assert (request.queue_id, request.transport, request.nexthop, request.sender) == (
        "78D81220331",
        "smtp",
        "[127.0.0.1]:2525",
        "sender@test.local",
    )
    assert request.content is content
    assert (request.size, request.size_exact, request.content_length) == (3419, False, None)
    assert (request.content_offset, request.encoding, request.smtputf8) == (0, "", False)
    assert (request.dsn_envid, request.dsn_ret) == ("env-test-two", "HDRS")
    assert (request.arrival_time, request.qmgr_time) == (1796224210.486827, 1796224210.496703)
    assert (request.client_name, request.client_addr, request.client_port) == (
        "localhost",
        "127.0.0.1",
        "47346",
    )
    assert (request.client_proto, request.client_helo) == ("ESMTP", "client.test.local")
    assert (request.log_ident, request.rewrite_context) == ("78D81220331", "local")
    first = request.recipients[0]
    assert (first.address, first.orig_address, first.dsn_orcpt) == (
        "alice2@remote.test",
        "alice2@remote.test",
        "rfc822;orig@x.test",
    )
    assert first.dsn_notify == Notify.SUCCESS | Notify.FAILURE | Notify.DELAY
    assert [r.queue_offset for r in request.recipients] == [711, 897, 803]


def test_delivery_request_of_the_plain_request() -> None:
    request = to_delivery_request(
        parse_request(TWO), transport="lmtp", content=io.BytesIO(b""), size=99
    )
    assert (request.transport, request.size, request.dsn_ret, request.dsn_envid) == (
        "lmtp",
        99,
        "",
        "",
    )
    assert [r.dsn_notify for r in request.recipients] == [Notify.NONE, Notify.NONE]


def _native(**changes: object) -> NativeRequest:
    return dataclasses.replace(parse_request(TWO), **changes)  # type: ignore[arg-type]


def _rcpt(**changes: object) -> NativeRequest:
    native = parse_request(TWO)
    first = dataclasses.replace(native.recipients[0], **changes)  # type: ignore[arg-type]
    return native.with_recipients([first, native.recipients[1]])


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("", ""), ("7bit", "7bit"), ("8bit", "8bit"), ("binary", "")],
)
def test_encodings(encoding: str, expected: str) -> None:
    native = _native(encoding=encoding)
    assert to_delivery_request(native, transport="smtp", content=io.BytesIO()).encoding == expected


@pytest.mark.parametrize(
    ("sendopts", "smtputf8"),
    [(0, False), (1, False), (14, False), (15, True), (3, True), (9, True)],
)
def test_smtputf8_is_required_when_requested_and_needed(sendopts: int, smtputf8: bool) -> None:
    native = _native(sendopts=sendopts)
    assert to_delivery_request(native, transport="smtp", content=io.BytesIO()).smtputf8 is smtputf8


@pytest.mark.parametrize(
    ("flags", "notify"),
    [
        (0, Notify.NONE),
        (1, Notify.NEVER),
        (2, Notify.SUCCESS),
        (4, Notify.FAILURE),
        (8, Notify.DELAY),
        (6, Notify.SUCCESS | Notify.FAILURE),
    ],
)
def test_notify_flags(flags: int, notify: Notify) -> None:
    request = to_delivery_request(_rcpt(notify_flags=flags), transport="smtp", content=io.BytesIO())
    assert request.recipients[0].dsn_notify == notify


@pytest.mark.parametrize(
    ("native", "message"),
    [
        (
            _native(sender="a\r\nRCPT TO:<x@y>"),
            "2B84B2204F3: sender address contains CR, LF or NUL",
        ),
        (_native(nexthop=""), "2B84B2204F3: empty next-hop destination"),
        (_native(rewrite_context="other"), '2B84B2204F3: bad rewrite context "other"'),
        (_native(dsn_ret=3), "2B84B2204F3: bad ret_flags 3"),
        (_native(client_helo="x\ny"), "2B84B2204F3: client helo contains CR, LF or NUL"),
    ],
)
def test_refused_requests(native: NativeRequest, message: str) -> None:
    with pytest.raises(RequestRefused) as info:
        to_delivery_request(native, transport="smtp", content=io.BytesIO())
    assert str(info.value).startswith(message)
    assert info.value.recipient is None


@pytest.mark.parametrize(
    ("native", "message"),
    [
        (_rcpt(address="no at sign"), "2B84B2204F3: bad recipient address syntax"),
        (_rcpt(address="a\n@b"), "2B84B2204F3: recipient address contains CR, LF or NUL"),
        (_rcpt(dsn_orcpt="rfc822;x\r"), "2B84B2204F3: ORCPT contains CR, LF or NUL"),
        (_rcpt(notify_flags=16), "2B84B2204F3: bad notify_flags 16"),
    ],
)
def test_refused_recipients(native: NativeRequest, message: str) -> None:
    with pytest.raises(RequestRefused) as info:
        to_delivery_request(native, transport="smtp", content=io.BytesIO())
    assert str(info.value).startswith(message)
    assert info.value.recipient == native.recipients[0]


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(RequestRefused, match=r'^2B84B2204F3: unknown transport "uucp"'):
        to_delivery_request(parse_request(TWO), transport="uucp", content=io.BytesIO())


@pytest.mark.parametrize(
    ("flags", "probe"), [(3, False), (259, True), (512 | 3, True), (1024 | 3, False)]
)
def test_trace_only_requests_are_address_probes(flags: int, probe: bool) -> None:
    native = _native(flags=flags)
    assert to_delivery_request(native, transport="smtp", content=io.BytesIO()).probe is probe


@pytest.mark.parametrize(
    ("sendopts", "requiretls", "tls_required_no"),
    [(0, False, False), (1 << 5, True, False), (1 << 4, False, True), (48 | 15, True, True)],
)
def test_requiretls_sendopts_bits(sendopts: int, requiretls: bool, tls_required_no: bool) -> None:
    """Postfix 3.10+ sendopts.h: SOPT_REQUIRETLS_ESMTP (1<<5) and SOPT_REQUIRETLS_HEADER
    (1<<4) become the request's REQUIRETLS and "TLS-Required: No" flags."""
    request = to_delivery_request(
        _native(sendopts=sendopts), transport="smtp", content=io.BytesIO()
    )
    assert (request.requiretls, request.tls_required_no) == (requiretls, tls_required_no)
