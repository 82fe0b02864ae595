"""The scanner's pass over due keys, which stops when this worker's partitions change.

The keys due are listed when a pass starts and handled one at a time, each between
two events (the table's step lock). Waiting for that lock can take as long as events
keep coming, and a whole rebalance (revoke, assign, recovery) can run meanwhile, so
"is a rebalance running?" asked before each key is not enough: the partition may
have gone to another worker and come back, and the listed key's state in this
worker's memory be older than its changelog. Acting on it then wrote that old state
over the new owner's (found by the full-scale 1 -> 3 -> 1 chaos scenario: a customer
went back from 8 events to 2, a stale reminder fired and its cart reminders were lost).
So the pass also stops once any revocation happened since it began, and checks that
after taking the lock, where nothing else can run before the key is handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from streams.shell.coalescing_changelog import PartitionLost, log_partition_lost

log = logging.getLogger(__name__)

YIELD_EVERY = 200
"""Due keys handled between two chances for other work."""

Act = Callable[[int, bytes, datetime], Awaitable[None]]


class DueScan:
    def __init__(self, rebalancing: Callable[[], bool]) -> None:
        self._rebalancing = rebalancing
        self.revocations = 0
        """Revocations seen so far (`revoked`): a pass that began before one stops."""

    def revoked(self) -> None:
        self.revocations += 1

    async def run(
        self,
        due: Iterable[tuple[int, bytes, datetime]],
        step: asyncio.Lock,
        act: Act,
    ) -> bool:
        """`act` on each (partition, key, clock) of `due` while holding `step`. False
        when the partitions changed (or began to) before all were handled: the rest
        is left to the next recovery's index."""
        began = self.revocations

        def moved() -> bool:
            return self._rebalancing() or self.revocations != began

        for done, (partition, key, now) in enumerate(due):
            if moved():
                return False
            async with step:
                if moved():
                    return False
                try:
                    await act(partition, key, now)
                except PartitionLost as lost:
                    # Revoked while the key was handled (the revoke does not wait for
                    # the lock): refused, and the pass ends as for any revocation.
                    log_partition_lost(log, lost, "a due timer or deferral was handled")
                    return False
            if done % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a burst of due keys must not hold up events
        return True
