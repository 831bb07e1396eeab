"""queue/admin.py: the mailq listing and `queue list --json` with hostile stored values."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.queue.admin import QueueAdmin, QueueEntry, format_mailq
from mailcarrier.queue.select import parse_selection
from tests.queue.helpers import RecordingProgress, known_queue

REASON = "host mx[192.0.2.1] said: 451 4.3.0 later\r\n\x1b[2J\x00\x7f é \x85"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def _entry() -> QueueEntry:
    return QueueEntry(
        queue="deferred",
        queue_id="0QID",
        size=1234,
        arrival_time=0,
        sender="s\udcff@example.org",
        recipients=(("a\x1b@example.net", REASON), ("b@example.net", "")),
    )


def test_mailq_listing_replaces_control_characters(utc: None) -> None:
    assert format_mailq([_entry()]) == (
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
        "0QID            1234 Thu Jan 01 00:00:00  s?@example.org\n"
        "(host mx[192.0.2.1] said: 451 4.3.0 later???[2J?? é ?)\n"
        "                                          a?@example.net\n"
        "                                          b@example.net\n"
        "\n"
        "-- 2 Kbytes in 1 Request.\n"
    )


def test_mailq_listing_ascii_only_without_smtputf8(utc: None) -> None:
    assert "later???[2J?? ?? ??)\n" in format_mailq([_entry()], utf8=False)


def test_json_entry_is_valid_for_a_strict_parser() -> None:
    text = json.dumps(_entry().to_json())
    data = json.loads(text)
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate
    assert data["sender"] == "s\ufffd@example.org"
    assert data["recipients"] == [
        {"address": "a\x1b@example.net", "delay_reason": REASON},
        {"address": "b@example.net"},
    ]


def test_plan_and_apply_tell_their_progress(tmp_path: Path) -> None:
    queue = known_queue(tmp_path, time.time())
    admin = QueueAdmin(queue)
    reading = RecordingProgress()
    pairs = admin.plan("hold", ["ALL"], parse_selection(domains=["example.com"]), reading)
    assert (reading.total, reading.done, len(pairs)) == (6, 6, 4)  # all read, four chosen
    assert admin.plan("hold", [], None, reading) == [
        (q, i) for q in ("incoming", "deferred") for i in queue.ids(q)
    ]
    queue.remove(*pairs[0])  # gone before the action: not done, but counted as seen
    holding = RecordingProgress()
    assert admin.apply("hold", pairs, holding) == 3
    assert (holding.total, holding.done, holding.outside_calls) == (4, 4, 3)
    assert sorted(queue.ids("hold")) == sorted(i for _, i in pairs[1:])
