"""Which customers have a timer due, per owned partition, without scanning everyone.

A min-heap of (due timestamp, customer key) per partition, and the latest due time
noted per customer. Re-arming a timer pushes a new entry and leaves the old one in
the heap, skipped when it comes up (lazy deletion). So that the stale entries of
timers re-armed many times before they come due (lifecycle lapses on every order, a
cart reminder on every cart change) do not pile up, the heap is rebuilt from the
latest due times when stale entries outnumber them. The scanner still re-checks the
customer's state when an entry comes up. Rebuilt from the table after changelog
recovery; dropped for partitions this worker loses.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from datetime import datetime


class TimerIndex:
    def __init__(self, compact_slack: int = 1024, retry_seconds: float = 60.0) -> None:
        self._heaps: dict[int, list[tuple[float, bytes]]] = {}
        self._latest: dict[int, dict[bytes, float]] = {}
        self._compact_slack = compact_slack
        self._retry_seconds = retry_seconds

    def note(self, partition: int, key: bytes, due: datetime | None) -> None:
        """`key`'s earliest timer is now `due` (None: it has none)."""
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

    def rebuild(self, partition: int, entries: Iterable[tuple[bytes, datetime | None]]) -> int:
        latest = {key: due.timestamp() for key, due in entries if due is not None}
        self._latest[partition] = latest
        self._heaps[partition] = self._heap_of(latest)
        return len(latest)

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._heaps.pop(partition, None)
            self._latest.pop(partition, None)

    def partitions(self) -> list[int]:
        return list(self._heaps)

    def pop_due(
        self,
        partition: int,
        now: float,
        next_due: Callable[[bytes], datetime | None],
        limit: int = 10_000,
    ) -> list[bytes]:
        """Customers of `partition` whose earliest timer is due at `now` (each once).

        Handling a returned customer notes its next due time. Until then it stays in the
        index as due again `retry_seconds` later: if the message that was to fire its
        timers is lost (a send failing during a broker stall, a handler error), the
        customer comes up again instead of waiting for a rebalance."""
        heap = self._heaps.get(partition)
        if not heap:
            return []
        latest = self._latest.setdefault(partition, {})
        due_keys: list[bytes] = []
        while heap and heap[0][0] <= now and len(due_keys) < limit:
            at, key = heapq.heappop(heap)
            if latest.get(key) != at:
                continue  # superseded by a later note or by its retry
            actual = next_due(key)
            if actual is None:
                del latest[key]  # cancelled, fired or the customer is gone
            elif actual.timestamp() <= now:
                due_keys.append(key)
                retry = latest[key] = now + self._retry_seconds
                heapq.heappush(heap, (retry, key))
            else:  # re-armed later without a note: follow the state
                latest[key] = actual.timestamp()
                heapq.heappush(heap, (actual.timestamp(), key))
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
