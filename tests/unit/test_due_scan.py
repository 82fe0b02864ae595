"""The scanner's pass over due keys stops when this worker's partitions change.

A pass waits for the step lock before each key, and a rebalance can take a
partition away (and give it back) meanwhile. Keys listed before that must not be
acted on: their state in memory may be older than the partition's new owner's.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from streams.shell.due_scan import DueScan

AT = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
DUE = [(0, b"c-1", AT), (1, b"c-2", AT), (2, b"c-3", AT)]


class Acts:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    async def __call__(self, partition: int, key: bytes, now: datetime) -> None:
        self.keys.append(key)


@pytest.mark.asyncio
async def test_a_pass_without_rebalance_handles_every_due_key() -> None:
    acts = Acts()
    assert await DueScan(lambda: False).run(DUE, asyncio.Lock(), acts)
    assert acts.keys == [b"c-1", b"c-2", b"c-3"]


@pytest.mark.asyncio
async def test_a_revocation_while_the_pass_waits_for_an_event_stops_it() -> None:
    scan = DueScan(lambda: False)
    step = asyncio.Lock()
    handled: list[bytes] = []
    event_running = asyncio.Event()

    async def act(partition: int, key: bytes, now: datetime) -> None:
        handled.append(key)
        if key == b"c-1":
            # An event takes the step next; the whole rebalance runs during it
            # (revoked and assigned again: no rebalance in progress once it ends).
            async def event() -> None:
                async with step:
                    event_running.set()
                    scan.revoked()

            asyncio.get_running_loop().create_task(event())
            await asyncio.sleep(0)  # the event now waits for the step

    passing = asyncio.create_task(scan.run(DUE, step, act))
    await asyncio.wait_for(event_running.wait(), 5)
    assert await asyncio.wait_for(passing, 5) is False
    assert handled == [b"c-1"]


@pytest.mark.asyncio
async def test_a_rebalance_in_progress_stops_the_pass() -> None:
    rebalancing = False
    acts = Acts()

    async def act(partition: int, key: bytes, now: datetime) -> None:
        nonlocal rebalancing
        await acts(partition, key, now)
        rebalancing = True

    assert await DueScan(lambda: rebalancing).run(DUE, asyncio.Lock(), act) is False
    assert acts.keys == [b"c-1"]


@pytest.mark.asyncio
async def test_a_pass_begun_after_a_revocation_is_not_stopped_by_it() -> None:
    scan = DueScan(lambda: False)
    scan.revoked()
    acts = Acts()
    assert await scan.run(DUE, asyncio.Lock(), acts)
    assert len(acts.keys) == 3
