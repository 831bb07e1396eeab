"""Per-destination concurrency, as Postfix's qmgr adjusts it: slow start and back-off.

A destination starts with `initial_destination_concurrency` parallel deliveries (its
window). Each delivery that reaches the destination adds the positive feedback to a success
count; each time the count reaches 1 the window grows by one, up to the destination
concurrency limit. Each delivery that fails to reach it adds 1/window to the failed-cohort
count and takes the negative feedback off a failure count; each time that count would go
below 0 the window shrinks by one, never below 1. When the failed cohorts reach
`..._concurrency_failed_cohort_limit` the destination is dead ("throttled"): the scheduler
defers its remaining work until it is revived. A success clears the failed cohorts.
Feedback (``..._concurrency_positive_feedback`` / ``_negative_feedback``): a fixed amount
from 0 to 1, or ``1/concurrency`` or ``1/sqrt_concurrency`` of the current window. Pure: no
clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mailcarrier.config.convert import parse_feedback

__all__ = ["DestinationWindow", "Feedback", "backoff_delay"]


@dataclass(frozen=True)
class Feedback:
    amount: float = 0.0
    per: str = "concurrency"  # "" (a fixed amount), "concurrency" or "sqrt"

    @classmethod
    def parse(cls, text: str) -> Feedback:
        amount, per = parse_feedback(text)
        return cls(amount, per)

    def value(self, window: int) -> float:
        if self.per == "concurrency":
            return 1.0 / window
        if self.per == "sqrt":
            return 1.0 / math.sqrt(window)
        return self.amount


@dataclass
class DestinationWindow:
    limit: int  # 0 = no limit
    window: int
    failed_cohort_limit: int = 1
    positive: Feedback = Feedback()
    negative: Feedback = Feedback()
    initial: int = 1
    active: int = 0
    success: float = 0.0
    failure: float = 0.0
    failed_cohorts: float = 0.0
    dead_reason: str = ""
    peak: int = 0

    @classmethod
    def start(
        cls,
        limit: int,
        initial: int,
        failed_cohort_limit: int = 1,
        positive: Feedback = Feedback(),
        negative: Feedback = Feedback(),
    ) -> DestinationWindow:
        window = max(1, initial if not limit else min(initial, limit))
        return cls(limit, window, failed_cohort_limit, positive, negative, initial=window)

    @property
    def dead(self) -> bool:
        return bool(self.dead_reason)

    def can_start(self) -> bool:
        return not self.dead_reason and self.active < self.window  # not `dead`: a call less

    def begin(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def end(self, reached: bool, reason: str = "") -> None:
        """One delivery finished; `reached` is False when it could not reach the site."""
        self.active -= 1
        if reached:
            self.failed_cohorts = 0.0
            if self.limit and self.window >= self.limit:
                return
            # Grow only while the window stays near the deliveries actually running, or
            # negative feedback would have a long way to come back down.
            if self.window >= self.active + self.initial:
                return
            feedback = self.positive.value(self.window)
            self.success += feedback
            # Half a step of slack absorbs rounding (1/3 + 1/3 + 1/3 is not quite 1).
            while self.success + feedback / 2 >= 1.0:
                self.window += 1
                self.success -= 1.0
                self.failure = 0.0
            if self.limit:
                self.window = min(self.window, self.limit)
            return
        if self.dead:
            return
        self.failed_cohorts += 1.0 / self.window
        if self.failed_cohort_limit and self.failed_cohorts >= self.failed_cohort_limit:
            self.dead_reason = reason or "destination is not responding"
            return
        feedback = self.negative.value(self.window)
        self.failure -= feedback
        while self.failure - feedback / 2 < 0:
            self.window -= 1
            self.success = 0.0
            self.failure += 1.0
        self.window = max(1, self.window)

    def revive(self) -> None:
        """Give a dead destination another chance; the best window is anyone's guess."""
        if self.dead:
            self.window = self.active if self.active > 0 else self.initial
            self.success = self.failure = 0.0
        self.dead_reason = ""
        self.failed_cohorts = 0.0


def backoff_delay(age: float, minimal: float, maximal: float) -> float:
    """Seconds until the next attempt of a deferred message (Postfix: its age, clamped to
    [minimal_backoff_time, maximal_backoff_time], so the interval roughly doubles)."""
    return max(minimal, min(maximal, age))
