"""Which customers have a timer due, per owned partition, without scanning everyone.

A min-heap of (due timestamp, customer key) per partition, and the latest due time
noted per customer. Re-arming a timer pushes a new entry and leaves the old one in
the heap, skipped when it comes up (lazy deletion). So that the stale entries of
timers re-armed many times before they come due (lifecycle lapses on every order, a
cart reminder on every cart change) do not pile up, the heap is rebuilt from the
latest due times when stale entries outnumber them. The scanner still re-checks the
customer's state when an entry comes up. Rebuilt from the table after changelog
recovery; dropped for partitions this worker loses.

A customer returned as due is expected back through `note` once its timers are
handled. If that has not happened `retry_seconds` of wall time later (the message
that was to fire them failed to send, or its handler failed), the customer is
checked again, and returned again if still due. Wall time, not the partition's
clock: during a replay that clock runs at the speed of the backlog, and a retry by
it would resend every in-flight timer on each scan.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from streams.shell.due_retries import DueRetries

Clock = Callable[[int], datetime | None]
"""A partition's clock; None while the partition's input is not all processed."""
_JUST_BEFORE = timedelta(microseconds=1)


class DueIndex(Protocol):
    """Which customers of each owned partition have a timer due, and when."""

    def note(self, partition: int, key: bytes, due: datetime | None) -> None:
        """`key`'s earliest timer is now `due` (None: it has none)."""

    def reset(self, partition: int) -> None:
        """Forget what `partition` held: it is indexed again, from nothing (`extend`)."""

    def extend(self, partition: int, entries: Iterable[tuple[bytes, datetime | None]]) -> int:
        """Index customers read from the table: (key, earliest due time or None).
        Returns how many have one. `entries` is read once, as it comes."""

    def rebuild(self, partition: int, entries: Iterable[tuple[bytes, datetime | None]]) -> int:
        """`partition`'s index from scratch, from every customer's earliest due time."""
        self.reset(partition)
        return self.extend(partition, entries)

    def drop(self, partitions: Iterable[int]) -> None: ...

    def partitions(self) -> list[int]: ...

    def __len__(self) -> int:
        """Entries held, for the gauge (in memory, superseded ones included)."""

    def earliest(self, partition: int) -> float | None:
        """The earliest due time noted in `partition` and not yet returned (None: none).
        Customers returned as due and not noted since (their handling failed) are left
        out: a timer that keeps failing must not hold back the rest of the partition."""

    def pop_due(
        self,
        partition: int,
        now: float,
        next_due: Callable[[bytes], datetime | None],
        limit: int = 10_000,
    ) -> list[bytes]:
        """Customers of `partition` whose earliest timer is due at `now` (each once,
        until their next `note` or their retry). `next_due` reads a customer's state:
        an entry is checked against it before it is returned."""


class TimerIndex(DueIndex):
    def __init__(
        self,
        compact_slack: int = 1024,
        retry_seconds: float = 60.0,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._heaps: dict[int, list[tuple[float, bytes]]] = {}
        self._latest: dict[int, dict[bytes, float]] = {}
        self._retries = DueRetries(retry_seconds, wall_clock)
        self._compact_slack = compact_slack

    def note(self, partition: int, key: bytes, due: datetime | None) -> None:
        self._retries.noted(partition, key)
        latest = self._latest.setdefault(partition, {})
        if due is None:
            latest.pop(key, None)
        else:
            at = due.timestamp()
            if latest.get(key) == at:
                return
            latest[key] = at
            heapq.heappush(self._heaps.setdefault(partition, []), (at, key))
        self._compact_if_stale(partition)

    def reset(self, partition: int) -> None:
        self._latest[partition] = {}
        self._heaps[partition] = []
        self._retries.drop(partition)

    def extend(self, partition: int, entries: Iterable[tuple[bytes, datetime | None]]) -> int:
        latest = self._latest.setdefault(partition, {})
        heap = self._heaps.setdefault(partition, [])
        push = heapq.heappush
        count = 0
        for key, due in entries:
            if due is not None:
                at = latest[key] = due.timestamp()
                push(heap, (at, key))
                count += 1
        return count

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._heaps.pop(partition, None)
            self._latest.pop(partition, None)
            self._retries.drop(partition)

    def partitions(self) -> list[int]:
        return list(self._heaps)

    def earliest(self, partition: int) -> float | None:
        heap = self._heaps.get(partition)
        if not heap:
            return None
        latest = self._latest.get(partition, {})
        while heap and latest.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # superseded or returned: the same skip as `pop_due`
        return heap[0][0] if heap else None

    def pop_due(
        self,
        partition: int,
        now: float,
        next_due: Callable[[bytes], datetime | None],
        limit: int = 10_000,
    ) -> list[bytes]:
        for key in self._retries.expired(partition):
            self.note(partition, key, next_due(key))
        heap = self._heaps.get(partition)
        if not heap:
            return []
        latest = self._latest.setdefault(partition, {})
        due_keys: list[bytes] = []
        try:
            while heap and heap[0][0] <= now and len(due_keys) < limit:
                at, key = heap[0]
                if latest.get(key) != at:
                    heapq.heappop(heap)  # superseded by a later note, or already returned
                    continue
                actual = next_due(key)  # before the pop: if it fails, the entry stays
                heapq.heappop(heap)
                if actual is None:
                    del latest[key]  # cancelled, fired or the customer is gone
                elif actual.timestamp() <= now:
                    del latest[key]
                    due_keys.append(key)  # no `latest` while it is returned
                else:  # re-armed later without a note: follow the state
                    latest[key] = actual.timestamp()
                    heapq.heappush(heap, (actual.timestamp(), key))
        finally:
            self._retries.returned(partition, due_keys)  # even if a state read failed
        return due_keys

    def _compact_if_stale(self, partition: int) -> None:
        heap = self._heaps.get(partition)
        latest = self._latest[partition]
        if heap is not None and len(heap) > 2 * len(latest) + self._compact_slack:
            self._heaps[partition] = self._heap_of(latest)

    @staticmethod
    def _heap_of(latest: dict[bytes, float]) -> list[tuple[float, bytes]]:
        heap = [(at, key) for key, at in latest.items()]
        heapq.heapify(heap)
        return heap

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())


def before_earliest(clock: Clock, timers: DueIndex) -> Clock:
    """`clock`, held back to just before the partition's earliest timer not yet fired.

    For the deferral pass: in the simulator, the timers due by T fire before the
    deferrals due by T are released. The timer pass does not always fire everything
    due by the clock: it takes at most `pop_due`'s limit of customers per partition,
    and events handled while it runs move the clock on. After a restart, a partition
    that catches up has hours of event time due at once; releasing a 07:00 deferral
    before the same customer's 01:37 cart reminder fired spent the day's cap on the
    wrong message (the full-scale crash scenario found it). Deferrals due from that
    timer on wait for a later pass."""

    def bounded(partition: int) -> datetime | None:
        now = clock(partition)
        pending = timers.earliest(partition)
        if now is None or pending is None or pending > now.timestamp():
            return now
        return datetime.fromtimestamp(pending, UTC) - _JUST_BEFORE

    return bounded
