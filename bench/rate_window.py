"""How every throughput contender times itself: from its first event to its N-th, or
to a time limit after the first, whichever comes first.

The limit keeps a run's length bounded on a slow day: at 100k events a run took
~12 s on this machine at its usual speed, and ~30 s (the Faust table baseline, one
worker) on a day it ran at a third of that, when the whole `make bench` went over the
10 minutes it must keep to. At the usual speed the N-th event comes first and nothing
changes. The figure says how many events it measured.

Plain Python: the peer's separate environment imports it too.
"""

from __future__ import annotations

import time
from typing import Any

CHECK_EVERY = 64
"""Events between two reads of the clock: a read per event would cost the fastest
contenders a measurable share of their time."""


class RateWindow:
    def __init__(self, events: int, seconds: float) -> None:
        self.events = events
        self.seconds = seconds
        self.seen = 0
        self.first = 0.0
        self.done = False

    def tick(self) -> dict[str, Any] | None:
        """Count one event; the result (once) when the window closes with it."""
        self.seen += 1
        seen = self.seen
        if seen == 1:
            self.first = time.perf_counter()
            return None
        if self.done:
            return None
        if seen >= self.events or seen % CHECK_EVERY == 0:
            elapsed = time.perf_counter() - self.first
            if seen >= self.events or elapsed >= self.seconds:
                self.done = True
                return {"events": seen, "seconds": elapsed, "rate": (seen - 1) / elapsed}
        return None
