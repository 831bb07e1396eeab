"""Each recipient is marked exactly once; nobody is left without a status."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import Recipient
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.errors import LocalProtocolError
from mailcarrier.status import Delays, DeliveryStatus

SENT = Verdict(DeliveryStatus.SENT, "2.0.0", "250 ok")
LATER = Verdict(DeliveryStatus.DEFERRED, "4.4.1", "connect failed")


def _tracker() -> tuple[RecipientTracker, list[tuple[int, str]]]:
    seen: list[tuple[int, str]] = []
    tracker = RecipientTracker(
        (Recipient("a@x.example", orig_address="A@x.example"), Recipient("b@x.example")),
        lambda i, s: seen.append((i, s.status.value)),
    )
    return tracker, seen


def test_marks_once_and_reports_in_order() -> None:
    tracker, seen = _tracker()
    assert tracker.pending() == [0, 1]
    tracker.mark(1, LATER, relay="none", delays=Delays())
    status = tracker.mark(0, SENT, relay="h[a]:25", delays=Delays(0, 0, 0.5, 1), conn_use=2)
    assert status.orig_address == "A@x.example"
    assert status.action == "relayed"
    assert seen == [(1, "deferred"), (0, "sent")]
    result = tracker.result("QID")
    assert [r.address for r in result.recipients] == ["a@x.example", "b@x.example"]
    assert result.exit_code == 75


@given(st.data(), st.integers(min_value=1, max_value=6))
def test_pending_is_every_recipient_not_yet_marked(data: st.DataObject, count: int) -> None:
    """`pending()` (with its shortcut for a tracker where nobody is marked yet) is the
    recipients without a status, in order, after any marks."""
    tracker = RecipientTracker(tuple(Recipient(f"r{i}@x.example") for i in range(count)))
    order = data.draw(st.permutations(range(count)))
    for n, index in enumerate(order):
        assert tracker.pending() == sorted(order[n:])
        assert tracker.has_pending
        tracker.mark(index, SENT, relay="none", delays=Delays())
    assert tracker.pending() == []
    assert not tracker.has_pending


def test_second_mark_is_refused() -> None:
    tracker, _ = _tracker()
    tracker.mark(0, SENT, relay="none", delays=Delays())
    with pytest.raises(LocalProtocolError, match="marked twice"):
        tracker.mark(0, LATER, relay="none", delays=Delays())


def test_result_refuses_unmarked_recipients() -> None:
    tracker, _ = _tracker()
    tracker.mark(0, SENT, relay="none", delays=Delays())
    with pytest.raises(LocalProtocolError, match=r"b@x\.example"):
        tracker.result("QID")
