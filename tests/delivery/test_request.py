"""delivery/request.py: what a `DeliveryRequest` accepts and refuses (the wire effects are in
test_content_delivery.py and test_mail_parameters.py)."""

from __future__ import annotations

import io

import pytest

from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.errors import UsageError


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
