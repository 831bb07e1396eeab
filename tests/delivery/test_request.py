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
