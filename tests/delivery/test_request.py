"""delivery/request.py: what a `DeliveryRequest` accepts and refuses (the wire effects are in
test_content_delivery.py and test_mail_parameters.py)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.delivery.request import (
    DeliveryRequest,
    Recipient,
    queued_recipient,
    queued_request,
)
from mailcarrier.errors import AddressError, UsageError
from mailcarrier.notify import Notify


def _request(**kw: object) -> DeliveryRequest:
    return DeliveryRequest(
        queue_id="4ABCD1234",
        nexthop="[127.0.0.1]:25",
        sender="a@example.org",
        recipients=(Recipient("b@example.net"),),
        content=io.BytesIO(b"x\n"),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("encoding", ["7bit", "8bit", ""])
def test_encodings(encoding: str) -> None:
    assert _request(encoding=encoding).encoding == encoding


def test_bad_encoding() -> None:
    with pytest.raises(UsageError) as info:
        _request(encoding="binary")
    assert str(info.value) == 'bad body encoding "binary" (want 7bit, 8bit or "")'


def test_content_length() -> None:
    assert _request().content_length is None
    assert _request(size=10).content_length == 10
    assert _request(size=10, size_exact=False).content_length is None


def test_content_bytes_must_be_the_content_exactly() -> None:
    """`content_bytes` stands for the `size` bytes of the content: any other length, no
    size, or a size that is not the content's length is refused."""
    assert _request(size=2, content_bytes=b"x\n").content_bytes == b"x\n"
    for kw in (
        {"size": 3, "content_bytes": b"x\n"},
        {"content_bytes": b"x\n"},
        {"size": 2, "size_exact": False, "content_bytes": b"x\n"},
    ):
        with pytest.raises(UsageError, match="content_bytes"):
            _request(**kw)


# Values near what the checks refuse: line breaks, bad addresses, the enumerated fields'
# other values; and the values a queue file gives.
_TEXT = st.one_of(
    st.sampled_from(["", "a@example.org", "b@example.net", "x\r\n", "\0", "no at", "<a@b>"]),
    st.text(max_size=8),
)
_NOTIFY = st.integers(0, 15).map(Notify)


def _outcome(make: Callable[[], object]) -> object:
    """What `make()` returns, or the error it raises (as its type and text)."""
    try:
        return make()
    except (UsageError, AddressError) as exc:
        return (type(exc), str(exc))


@given(_TEXT, _TEXT, _TEXT, _NOTIFY, st.integers(-1, 99), st.integers(1, 9))
def test_queued_recipient_is_the_checked_constructor(
    address: str, orig: str, orcpt: str, notify: Notify, offset: int, attempt: int
) -> None:
    """queued_recipient (its slots set in one pass) makes the same recipient as
    `Recipient(...)`, and refuses what it refuses with the same error."""
    fast = _outcome(lambda: queued_recipient(address, orig, orcpt, notify, offset, attempt))
    checked = _outcome(lambda: Recipient(address, orig, orcpt, notify, offset, attempt))
    assert fast == checked


@given(
    st.fixed_dictionaries(
        {
            "queue_id": _TEXT,
            "nexthop": _TEXT,
            "sender": _TEXT,
            "recipients": st.sampled_from([(), (Recipient("b@example.net", queue_offset=0),)]),
            "content": st.sampled_from(["/q/active/4ABCD", Path("/q/active/4ABCD")]),
            "transport": st.sampled_from(["smtp", "lmtp", "relay"]),
            "service": st.sampled_from(["", "mysmtp"]),
            "size": st.integers(0, 9),
            "content_offset": st.integers(0, 999),
            "encoding": st.sampled_from(["7bit", "8bit", "", "binary"]),
            "smtputf8": st.booleans(),
            "requiretls": st.booleans(),
            "tls_required_no": st.booleans(),
            "dsn_envid": _TEXT,
            "dsn_ret": st.sampled_from(["", "FULL", "HDRS", "full"]),
            "arrival_time": st.floats(0, 2e9),
            "qmgr_time": st.floats(0, 2e9),
            "probe": st.booleans(),
            "content_bytes": st.sampled_from([None, b"", b"abc", b"0123456789"]),
        }
    )
)
def test_queued_request_is_the_checked_constructor(values: dict[str, Any]) -> None:
    """queued_request (its slots set in one pass) makes the same request as
    `DeliveryRequest(...)` of the same values, every field alike, and refuses what it
    refuses with the same error."""
    fast = _outcome(lambda: queued_request(**values))
    checked = _outcome(lambda: DeliveryRequest(**values))
    assert fast == checked
    if isinstance(fast, DeliveryRequest):
        assert isinstance(checked, DeliveryRequest)
        assert dataclasses.astuple(fast) == dataclasses.astuple(checked)
