"""A fake clock for tests: time moves only when the test moves it.

`FakeClock(now)` is a callable returning `now`, to pass wherever the code takes a clock
(`clock=`, `now=`: the spool, the scheduler, the connection cache, the SASL failure cache,
the reply deadlines, the TLS session cache). A test moves it with `advance(seconds)` or by
setting `now`. Nothing here sleeps or reads the real clock, so no test depends on the
machine's speed (STYLE.md).

It does not drive asyncio's loop clock: tests of asyncio timeouts use short real deadlines
with generous ceilings instead.
"""

from __future__ import annotations


class FakeClock:
    """A clock that returns `now` (seconds) until the test changes it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
