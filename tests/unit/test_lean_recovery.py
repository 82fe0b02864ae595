"""Faust's recovery bookkeeping made cheaper gives the same answers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.tables.manager import TableManager
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from streams.shell.lean_recovery import LeanTableManager, ReadyFirstQueue, records_remaining


def upstream_need_recovery(highwaters: dict[TP, int | None], offsets: Counter[TP]) -> bool:
    """faust-streaming 0.15 `Recovery.need_recovery` over `active_remaining`."""
    remaining = Counter(
        {
            tp: highwater - offsets[tp]
            for tp, highwater in highwaters.items()
            if highwater is not None and offsets[tp] is not None
        }
    )
    return any(v > 0 for v in remaining.values())


def test_records_remaining_answers_as_upstream_on_random_positions() -> None:
    rng = random.Random(5)
    seen = Counter[bool]()
    for _ in range(2_000):
        tps = [TP("customers-changelog", p) for p in range(rng.randint(0, 8))]
        highwaters = {tp: rng.choice([None, rng.randint(-1, 50)]) for tp in tps}
        offsets: Counter[TP] = Counter(
            {tp: rng.randint(-1, 50) for tp in tps if rng.random() < 0.8}
        )
        answer = records_remaining(highwaters, offsets)
        assert answer == upstream_need_recovery(highwaters, offsets)
        seen[answer] += 1
    assert seen[True] > 100 and seen[False] > 100


@pytest.mark.asyncio
async def test_the_changelog_queue_hands_out_what_waits_at_once_and_waits_when_empty() -> None:
    flow = FlowControlEvent()
    flow.resume()
    queue = ReadyFirstQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    queue.put_nowait("a")
    queue.put_nowait("b")
    ready = queue.get()
    assert isinstance(ready, asyncio.Future) and ready.done()
    assert await asyncio.wait_for(ready, 1) == "a"
    assert await asyncio.wait_for(queue.get(), 1) == "b"
    waiting = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait("c")
    assert await waiting == "c"
    await queue.throw(RuntimeError("recovery stopped"))
    with pytest.raises(RuntimeError, match="recovery stopped"):
        await asyncio.wait_for(queue.get(), 1)


def changelog_record(tp: TP, offset: int, generation: int = 0) -> Any:
    """What recovery takes from the changelog queue: an event and its message (the
    consumer generation it was taken from aiokafka in)."""
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset, generation_id=generation))


def worker_app(manager: type[TableManager]) -> faust.App:
    return faust.App(
        "lean-recovery-test",
        broker="kafka://127.0.0.1:1",
        web_enabled=False,
        TableManager=manager,
    )


ACTIVE = TP("customers-changelog", 0)
STANDBY = TP("contacts-changelog", 1)


async def drain_queue(queue: Any) -> list[int]:
    taken = []
    while not queue.empty():
        taken.append((await asyncio.wait_for(queue.get(), 1)).message.offset)
    return taken


@pytest.mark.asyncio
async def test_records_waiting_in_the_changelog_queue_survive_flow_control_resuming() -> None:
    # Recovery resumes flow control mid-read (standbys starting, streams resuming): the
    # consumer has taken these records from aiokafka, nothing reads them again.
    app = worker_app(LeanTableManager)
    recovery = app.tables.recovery
    recovery.active_tps.add(ACTIVE)
    queue = app.tables.changelog_queue
    for offset in (171, 172, 173):
        queue.put_nowait(changelog_record(ACTIVE, offset))
    app.flow_control.resume()
    assert await drain_queue(queue) == [171, 172, 173]


@pytest.mark.asyncio
async def test_faust_queue_drops_them_when_flow_control_resumes() -> None:
    app = worker_app(TableManager)
    queue = app.tables.changelog_queue
    queue.put_nowait(changelog_record(ACTIVE, 171))
    app.flow_control.resume()
    assert queue.empty()


@pytest.mark.asyncio
async def test_an_assignment_drops_what_was_queued_for_the_one_before() -> None:
    app = worker_app(LeanTableManager)
    recovery = app.tables.recovery
    queue = app.tables.changelog_queue
    queue.put_nowait(changelog_record(ACTIVE, 5000))
    # A late call for an older generation leaves the current recovery's records alone.
    await recovery.on_rebalance(set(), set(), set(), generation_id=app.consumer_generation_id - 1)
    assert queue.qsize() == 1
    # The recovery of this one seeks every partition it reads and reads them again:
    # applied first, 5000 would make it skip the records from the start up to 5000.
    app.consumer_generation_id = 3
    await recovery.on_rebalance(set(), set(), set(), generation_id=3)
    assert queue.empty()
    recovery.active_tps.add(ACTIVE)  # as the assignor would have it
    # A put the conductor left waiting (for room, for flow control) lands afterwards.
    queue.put_nowait(changelog_record(ACTIVE, 5001, generation=2))
    queue.put_nowait(changelog_record(ACTIVE, 1, generation=3))
    assert await drain_queue(queue) == [1]


@pytest.mark.asyncio
async def test_a_revoke_drops_what_was_queued() -> None:
    # Upstream's revoke empties the queues flow control manages; ours too, so records
    # of the revoked partitions are not applied while the group rebalances.
    app = worker_app(LeanTableManager)
    queue = app.tables.changelog_queue
    queue.put_nowait(changelog_record(ACTIVE, 5000))
    app.tables.recovery.on_partitions_revoked({ACTIVE})
    assert queue.empty()


@pytest.mark.asyncio
async def test_the_queue_hands_out_only_records_of_partitions_recovery_reads() -> None:
    app = worker_app(LeanTableManager)
    recovery = app.tables.recovery
    recovery.active_tps.add(ACTIVE)
    recovery.standby_tps.add(STANDBY)
    queue = app.tables.changelog_queue
    revoked = TP("customers-changelog", 7)
    for tp, offset in [(revoked, 1), (ACTIVE, 2), (revoked, 3), (STANDBY, 4)]:
        queue.put_nowait(changelog_record(tp, offset))
    assert await drain_queue(queue) == [2, 4]
    assert queue.dropped == 2
    waiting = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    queue.put_nowait(changelog_record(revoked, 5))
    queue.put_nowait(changelog_record(ACTIVE, 6))
    assert (await waiting).message.offset == 6
