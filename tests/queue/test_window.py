"""Destination concurrency window: slow start, back-off, dead sites; retry back-off."""

from __future__ import annotations

from mailcarrier.queue.window import DestinationWindow, Feedback, backoff_delay
from tests.support.settings import make_settings


def test_slow_start_grows_to_the_limit() -> None:
    w = DestinationWindow.start(limit=4, initial=2)
    assert w.can_start()
    w.begin()
    w.begin()
    assert not w.can_start()
    for _ in range(10):
        w.end(True)
        while w.can_start():  # keep the window busy, as a full queue does
            w.begin()
    assert w.window == 4 and w.peak <= 4


def test_window_stays_near_the_deliveries_running() -> None:
    # Successes while only one delivery runs grow the window to running + initial, no more.
    w = DestinationWindow.start(limit=50, initial=2)
    for _ in range(40):
        w.begin()
        w.end(True)
    assert w.window == 2


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


def test_fixed_feedback_steps() -> None:
    # Positive feedback 1: every success grows the window by one; negative 1: every failure
    # shrinks it by one.
    one = Feedback.parse("1")
    w = DestinationWindow.start(
        limit=10, initial=2, failed_cohort_limit=0, positive=one, negative=one
    )
    for _ in range(4):
        w.begin()
    w.end(True)  # 3 running: grows to 3
    w.end(True)  # 2 running: 3 < 2 + initial, so it grows to 4
    assert w.window == 4
    w.end(False)
    assert w.window == 2  # the first failure overshoots (Postfix's arithmetic)
    w.begin()
    w.end(False)
    assert w.window == 1
    # Zero feedback: the window never moves.
    zero = Feedback.parse("0")
    w = DestinationWindow.start(
        limit=10, initial=2, failed_cohort_limit=0, positive=zero, negative=zero
    )
    for ok in (True, True, False, True):
        w.begin()
        w.end(ok)
    assert w.window == 2


def test_one_over_concurrency_needs_a_window_of_successes() -> None:
    w = DestinationWindow.start(limit=20, initial=4)
    for _ in range(8):
        w.begin()
    for _ in range(3):
        w.end(True)
    assert w.window == 4  # 3/4 of a step (+ half a step of slack) is not yet a step
    w.end(True)
    assert w.window == 5


def test_sqrt_feedback_grows_faster_than_one_over_concurrency() -> None:
    slow = DestinationWindow.start(limit=100, initial=9)
    fast = DestinationWindow.start(
        limit=100, initial=9, positive=Feedback.parse("1/sqrt_concurrency")
    )
    for _ in range(20):
        slow.begin()
        fast.begin()
    for _ in range(9):
        slow.end(True)
        fast.end(True)
    assert fast.window > slow.window


def test_feedback_values_are_validated_with_the_parameter_name() -> None:
    from mailcarrier.errors import ConfigError

    assert Feedback.parse("1/4").value(9) == 0.25
    assert Feedback.parse(" 1 / concurrency ").value(8) == 0.125
    for bad in ("2", "-0.5", "1/0", "1/x", "half"):
        try:
            make_settings(default_destination_concurrency_negative_feedback=bad)
        except ConfigError as exc:
            assert "default_destination_concurrency_negative_feedback" in str(exc)
        else:
            raise AssertionError(bad)
    # Per-transport variants use the same check.
    try:
        make_settings(smtp_destination_concurrency_positive_feedback="3")
    except ConfigError as exc:
        assert "smtp_destination_concurrency_positive_feedback" in str(exc)
    else:
        raise AssertionError("accepted 3")
