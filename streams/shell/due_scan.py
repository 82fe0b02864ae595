"""One pass of the scanner: the timers and the deferred candidates that came due.

Both are handled in process, between two events (the tables' shared step lock), so
that a customer's timers and deferrals are decided in the simulator's order: what a
timer due by T proposes is decided before the deferrals due by T are released (at a
tie, in the orchestrator's order).

The timer pass alone cannot promise that. It takes at most the index's limit of
customers per partition, and a clock that jumped (a worker catching up after a
restart, hours of event time replayed while it was not caught up) makes tens of
thousands due at once; the rest wait for the next pass. Releasing a customer's
deferrals therefore fires that customer's own due timers first, with the same
clock: the chaos crash scenario found a cart reminder due at 01:37 decided after the
07:00 release had spent the day's cap, so it expired where the simulator sent it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

Act = Callable[[int, bytes, datetime], Awaitable[None]]
"""(partition, customer key, the partition's clock) -> handled."""
Clock = Callable[[int], datetime | None]
"""A partition's clock; None while its input is not all processed."""

SCAN_YIELD_EVERY = 200
"""Due timers or deferrals handled by the scanner between two chances for other work."""


class DueTable(Protocol):
    """A keyed table with a due-time index (`app._KeyedTable`)."""

    @property
    def step(self) -> asyncio.Lock:
        """Held while a key is handled: between two events."""
        ...

    def due(self, clock: Clock) -> list[tuple[int, bytes, datetime]]: ...


async def scan_due(
    timers: DueTable,
    deferrals: DueTable,
    timer_clock: Clock,
    deferral_clock: Clock,
    fire_timers: Act,
    release_deferred: Act,
    rebalancing: Callable[[], bool],
) -> None:
    """Fire due timers, then release due deferrals (each customer's own due timers
    first). Stops as soon as a rebalance begins: a partition may be on its way to
    another worker, and the next recovery rebuilds the indexes."""

    async def fire_then_release(partition: int, key: bytes, now: datetime) -> None:
        await fire_timers(partition, key, now)
        await release_deferred(partition, key, now)

    if await _handle_due(timers, timer_clock, fire_timers, rebalancing):
        await _handle_due(deferrals, deferral_clock, fire_then_release, rebalancing)


async def _handle_due(
    table: DueTable, clock: Clock, act: Act, rebalancing: Callable[[], bool]
) -> bool:
    """`act` on each key of `table` due by its partition's clock, between two events.
    False when a rebalance began meanwhile."""
    for done, (partition, key, now) in enumerate(table.due(clock)):
        if rebalancing():
            return False
        async with table.step:
            await act(partition, key, now)
        if done % SCAN_YIELD_EVERY == SCAN_YIELD_EVERY - 1:
            await asyncio.sleep(0)  # a burst of due keys must not hold up events
    return True
