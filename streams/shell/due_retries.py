"""Customers a due-time index returned as due, awaiting their handling's `note`.

A customer returned as due is expected back through the index's `note` once its
timers are handled. If that has not happened `retry_seconds` of wall time later (the
message that was to fire them failed to send, or its handler failed), it is checked
again, and returned again if still due. Wall time, not the partition's clock: during a
replay that clock runs at the speed of the backlog, and a retry by it would resend
every in-flight timer on each scan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class DueRetries:
    def __init__(
        self, retry_seconds: float = 60.0, wall_clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._returned: dict[int, dict[bytes, float]] = {}
        """Per partition: customers returned and not noted since -> when to check them
        again (wall clock). In that order, as the retry delay is fixed."""
        self._retry_seconds = retry_seconds
        self._wall_clock = wall_clock

    def returned(self, partition: int, keys: Iterable[bytes]) -> None:
        retry_at = self._wall_clock() + self._retry_seconds
        waiting = self._returned.setdefault(partition, {})
        for key in keys:
            waiting[key] = retry_at

    def noted(self, partition: int, key: bytes) -> None:
        waiting = self._returned.get(partition)
        if waiting:
            waiting.pop(key, None)

    def expired(self, partition: int) -> list[bytes]:
        """The customers of `partition` whose retry time has come. The caller notes each
        again with its current due time, which forgets it here (`noted`); one it could
        not note stays, and is retried at the next pass."""
        waiting = self._returned.get(partition)
        if not waiting:
            return []
        wall = self._wall_clock()
        expired: list[bytes] = []
        for key, retry_at in waiting.items():
            if retry_at > wall:
                break
            expired.append(key)
        return expired

    def drop(self, partition: int) -> None:
        self._returned.pop(partition, None)
