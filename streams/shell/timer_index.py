"""Which customers have a timer due, per owned partition, without scanning everyone.

A min-heap of (due timestamp, customer key) per partition. Entries are never
removed when a timer is cancelled or re-armed: the scanner re-checks the
customer's state when an entry comes up (lazy deletion), and every change of a
customer's timers pushes their new earliest due time. Rebuilt from the table
after changelog recovery; dropped for partitions this worker loses.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from datetime import datetime


class TimerIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[float, bytes]]] = {}

    def note(self, partition: int, key: bytes, due: datetime | None) -> None:
        if due is None:
            return
        heap = self._heaps.setdefault(partition, [])
        heapq.heappush(heap, (due.timestamp(), key))

    def rebuild(self, partition: int, entries: Iterable[tuple[bytes, datetime | None]]) -> int:
        heap = [(due.timestamp(), key) for key, due in entries if due is not None]
        heapq.heapify(heap)
        self._heaps[partition] = heap
        return len(heap)

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._heaps.pop(partition, None)

    def partitions(self) -> list[int]:
        return list(self._heaps)

    def pop_due(
        self,
        partition: int,
        now: float,
        next_due: Callable[[bytes], datetime | None],
        limit: int = 10_000,
    ) -> list[bytes]:
        """Customers of `partition` whose earliest timer is due at `now` (each once)."""
        heap = self._heaps.get(partition)
        if not heap:
            return []
        due_keys: dict[bytes, None] = {}
        while heap and heap[0][0] <= now and len(due_keys) < limit:
            _, key = heapq.heappop(heap)
            if key in due_keys:
                continue
            actual = next_due(key)
            if actual is None:
                continue  # cancelled, fired or the customer is gone
            if actual.timestamp() <= now:
                due_keys[key] = None
            else:
                heapq.heappush(heap, (actual.timestamp(), key))  # re-armed later
        return list(due_keys)

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())
