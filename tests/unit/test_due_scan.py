"""The scanner's pass: timers before deferrals, per customer too, and a rebalance stops it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from streams.shell.due_scan import Act, Clock, scan_due

MORNING = datetime(2026, 10, 31, 7, 0, tzinfo=UTC)


class Table:
    """A table whose index has these keys due (the timer pass may stop short of some)."""

    def __init__(self, due: list[bytes], lock: asyncio.Lock) -> None:
        self._due = due
        self._lock = lock

    @property
    def step(self) -> asyncio.Lock:
        return self._lock

    def due(self, clock: Clock) -> list[tuple[int, bytes, datetime]]:
        now = clock(0)
        return [] if now is None else [(0, key, now) for key in self._due]


def at_morning(partition: int) -> datetime | None:
    return MORNING


async def scan(
    timers_due: list[bytes],
    deferrals_due: list[bytes],
    rebalancing_after: int | None = None,
) -> list[tuple[str, bytes, datetime]]:
    lock = asyncio.Lock()
    calls: list[tuple[str, bytes, datetime]] = []

    def act(name: str) -> Act:
        async def handle(partition: int, key: bytes, now: datetime) -> None:
            assert lock.locked(), "handled between two events"
            calls.append((name, key, now))

        return handle

    await scan_due(
        Table(timers_due, lock),
        Table(deferrals_due, lock),
        at_morning,
        at_morning,
        act("fire"),
        act("release"),
        lambda: rebalancing_after is not None and len(calls) >= rebalancing_after,
    )
    return calls


@pytest.mark.asyncio
async def test_a_customers_own_due_timers_fire_before_its_deferrals_are_released() -> None:
    # c-2's timer was beyond this pass's limit: its deferrals must not go first.
    calls = await scan(timers_due=[b"c-1"], deferrals_due=[b"c-2"])
    assert calls == [
        ("fire", b"c-1", MORNING),
        ("fire", b"c-2", MORNING),
        ("release", b"c-2", MORNING),
    ]


@pytest.mark.asyncio
async def test_a_rebalance_stops_the_pass_and_leaves_the_deferrals_for_later() -> None:
    calls = await scan(timers_due=[b"c-1", b"c-2"], deferrals_due=[b"c-3"], rebalancing_after=1)
    assert calls == [("fire", b"c-1", MORNING)]
