"""Per-destination concurrency, as Postfix's qmgr adjusts it: slow start and back-off.

A destination starts with `initial_destination_concurrency` parallel deliveries. Each
delivery that reaches the destination raises the window by 1/window (positive feedback
"1/concurrency": one step per window's worth of successes) up to the destination
concurrency limit; each that fails to reach it lowers the window by 1/window, never below 1,
and adds 1/window to the failed-cohort count. When the failed cohorts reach
`..._concurrency_failed_cohort_limit` the destination is dead ("throttled"): the scheduler
defers its remaining work until it is revived. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DestinationWindow", "backoff_delay"]


@dataclass
class DestinationWindow:
    limit: int  # 0 = no limit
    window: float
    failed_cohort_limit: int = 1
    active: int = 0
    failed_cohorts: float = 0.0
    dead_reason: str = ""
    peak: int = 0

    @classmethod
    def start(cls, limit: int, initial: int, failed_cohort_limit: int = 1) -> DestinationWindow:
        window = float(initial if not limit else min(initial, limit))
        return cls(limit=limit, window=max(1.0, window), failed_cohort_limit=failed_cohort_limit)

    @property
    def dead(self) -> bool:
        return bool(self.dead_reason)

    def can_start(self) -> bool:
        return not self.dead and self.active < int(self.window)

    def begin(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def end(self, reached: bool, reason: str = "") -> None:
        """One delivery finished; `reached` is False when it could not reach the site."""
        self.active -= 1
        if reached:
            self.failed_cohorts = 0.0
            grown = self.window + 1.0 / self.window
            self.window = min(float(self.limit), grown) if self.limit else grown
            return
        step = 1.0 / self.window
        self.window = max(1.0, self.window - step)
        self.failed_cohorts += step
        if self.failed_cohort_limit and self.failed_cohorts >= self.failed_cohort_limit:
            self.dead_reason = reason or "destination is not responding"

    def revive(self) -> None:
        self.dead_reason = ""
        self.failed_cohorts = 0.0


def backoff_delay(age: float, minimal: float, maximal: float) -> float:
    """Seconds until the next attempt of a deferred message (Postfix: its age, clamped to
    [minimal_backoff_time, maximal_backoff_time], so the interval roughly doubles)."""
    return max(minimal, min(maximal, age))
