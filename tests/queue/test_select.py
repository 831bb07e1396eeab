"""queue/select.py: which messages of a known queue each selection chooses, and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.errors import UsageError
from mailcarrier.queue.select import parse_selection
from mailcarrier.queue.spool import Spool
from tests.queue.helpers import known_queue

NOW = 1_700_000_000.0


def _chosen(queue: Spool, **options: object) -> list[int]:
    """The numbers (1 to 6, as in known_queue's table) of the messages chosen."""
    selection = parse_selection(**options)  # type: ignore[arg-type]
    messages = [m for q in ("incoming", "deferred") for m in queue.scan(q)]
    messages.sort(key=lambda m: m.queue_id)  # IDs sort by creation: the table's order
    return [n for n, m in enumerate(messages, 1) if selection.matches(m, NOW)]


@pytest.fixture
def queue(tmp_path: Path) -> Spool:
    return known_queue(tmp_path, NOW)


@pytest.mark.parametrize(
    ("options", "chosen"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"domains": ["example.net"]}, [2]),
        ({"domains": [".example.net"]}, [4]),
        ({"domains": ["example.net", ".example.net"]}, [2, 4]),
        ({"domains": ["EXAMPLE.com."]}, [1, 3, 5, 6]),
        ({"senders": ["<>"]}, [3]),
        ({"senders": [""]}, [3]),
        ({"senders": ["A@Example.org"]}, [1, 5]),
        ({"senders": ["@other.org"]}, [4]),
        ({"senders": ["example.org"]}, [1, 2, 5, 6]),
        ({"senders": ["d@"]}, [6]),
        ({"older_than": "1h"}, [4, 5]),
        ({"older_than": "10m"}, [3, 4, 5]),  # 10 minutes exactly (6) is not older
        ({"older_than": "599"}, [3, 4, 5, 6]),
        ({"reasons": ["mailbox busy"]}, [6]),
        ({"reasons": ["^$"]}, [1, 2, 3, 4, 5]),  # never tried: an empty reason
        ({"domains": ["example.com"], "older_than": "20m"}, [3, 5]),
        ({"domains": ["example.com"], "reasons": ["busy"]}, [6]),
        ({"domains": ["example.net"], "reasons": ["busy"]}, []),
        ({"senders": ["example.org"], "older_than": "1d"}, [5]),
    ],
)
def test_selections_choose_exactly(
    queue: Spool, options: dict[str, object], chosen: list[int]
) -> None:
    assert _chosen(queue, **options) == chosen


def test_a_recipient_with_a_final_verdict_is_not_selected(queue: Spool) -> None:
    # Message 1's done@example.com was sent: only its pending recipients count.
    assert _chosen(queue, reasons=["Ok"]) == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"older_than": "5x"}, "bad --older-than '5x': expected a number and a unit"),
        ({"older_than": "-1h"}, "bad --older-than '-1h'"),
        ({"older_than": ""}, "bad --older-than ''"),
        ({"reasons": ["(unclosed"]}, "bad --reason '(unclosed': missing ), unterminated"),
        ({"domains": ["user@example.com"]}, "bad --domain 'user@example.com'"),
        ({"domains": ["."]}, "bad --domain '.'"),
        ({"senders": ["a@b@c"]}, "bad --sender 'a@b@c'"),
        ({"senders": ["a b"]}, "bad --sender 'a b'"),
    ],
)
def test_bad_values_are_one_usage_error(options: dict[str, object], error: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_selection(**options)  # type: ignore[arg-type]
    assert str(raised.value).startswith(error)
    assert "\n" not in str(raised.value)


@given(st.text(max_size=12))
def test_any_duration_parses_or_is_a_usage_error(text: str) -> None:
    try:
        selection = parse_selection(older_than=text)
    except UsageError as exc:
        assert str(exc).startswith("bad --older-than ")
    else:
        assert selection.older_than is not None and selection.older_than >= 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1w", 604800)]
)
def test_durations_in_postfix_units(text: str, seconds: float) -> None:
    assert parse_selection(older_than=text).older_than == seconds
