"""Destination concurrency window: slow start, back-off, dead sites; retry back-off."""

from __future__ import annotations

from mailcarrier.queue.window import DestinationWindow, backoff_delay


def test_slow_start_grows_to_the_limit() -> None:
    w = DestinationWindow.start(limit=4, initial=2)
    assert w.can_start()
    w.begin()
    w.begin()
    assert not w.can_start()
    for _ in range(10):
        w.end(True)
        w.begin()
    assert w.window == 4.0 and w.peak <= 4


def test_failures_back_off_then_kill_the_destination() -> None:
    w = DestinationWindow.start(limit=20, initial=5, failed_cohort_limit=1)
    for _ in range(5):
        w.begin()
    for _ in range(4):
        w.end(False, "Connection refused")
    assert not w.dead and w.window < 5
    w.end(False, "Connection refused")
    assert w.dead and w.dead_reason == "Connection refused" and not w.can_start()
    w.revive()
    assert w.can_start()


def test_a_success_resets_failed_cohorts() -> None:
    w = DestinationWindow.start(limit=0, initial=2, failed_cohort_limit=1)
    w.begin()
    w.begin()
    w.end(False)
    w.end(True)
    assert w.failed_cohorts == 0 and not w.dead


def test_backoff_is_age_clamped() -> None:
    assert backoff_delay(10, 300, 4000) == 300
    assert backoff_delay(1000, 300, 4000) == 1000
    assert backoff_delay(100000, 300, 4000) == 4000
