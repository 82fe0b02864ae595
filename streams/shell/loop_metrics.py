"""Counters and histograms for the worker's per-event path: prometheus_client's, with
a fast path for the common call.

prometheus_client guards every value with a `threading.Lock`; its `labels()` checks
and converts the label values and takes a lock on every call (~1.5 µs); its `inc` and
`observe` check on each call that the metric is a child and the amount valid. A
loaded worker makes several such calls per event (messages, events, lag, triggers,
timers, decisions): ~5% of the time its main thread held the GIL (py-spy `--gil`,
bench/RESULTS.md 2026-12-08). Every one of them runs on the worker's event loop, the
only writer, and the scrape that reads the values (`/metrics`) runs on that loop too,
so the lock guards nothing there.

These classes keep everything else of prometheus_client (registration, exposition,
`_created`, errors): an existing child is handed out directly, a child's values are
plain floats, and the common call (no exemplar, a valid amount) goes straight to them.
Anything else takes upstream's checked path, and so does everything when
prometheus_client runs in multiprocess mode, whose values live in shared files.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client import Counter, Histogram, values


class UnlockedValue:
    """`values.MutexValue` without the mutex: for a value one thread writes and reads."""

    _multiprocess = False

    __slots__ = ("_exemplar", "_value")

    def __init__(self) -> None:
        self._value = 0.0
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Any:
        return self._exemplar


def _unlocked() -> bool:
    # Multiprocess mode swaps the value class for one backed by shared files.
    return values.ValueClass is values.MutexValue


class LoopCounter(Counter):
    """A `Counter`, labelled or not, for the event loop's per-event path."""

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        # New label values (and values that are not strings) take the checked path.
        if not labelkwargs:
            child = self._metrics.get(labelvalues)
            if child is not None:
                return child
        return super().labels(*labelvalues, **labelkwargs)

    def _metric_init(self) -> None:
        super()._metric_init()
        if _unlocked():
            self._value = UnlockedValue()

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        value = self.__dict__.get("_value")  # a labelled parent has none: upstream raises
        if type(value) is UnlockedValue and exemplar is None and amount >= 0:
            value._value += amount
        else:
            super().inc(amount, exemplar)


class LoopHistogram(Histogram):
    """A `Histogram`, labelled or not, for the event loop's per-event path."""

    def _metric_init(self) -> None:
        super()._metric_init()
        if _unlocked():
            self._sum = UnlockedValue()
            self._buckets = [UnlockedValue() for _ in self._upper_bounds]

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        total = self.__dict__.get("_sum")
        if type(total) is UnlockedValue and exemplar is None and amount == amount:  # not NaN
            total._value += amount
            # The first bucket whose upper bound is >= amount, which upstream's scan
            # finds; the last bound is +Inf, so there is one.
            bucket: Any = self._buckets[bisect_left(self._upper_bounds, amount)]
            bucket._value += 1
        else:
            super().observe(amount, exemplar)
