"""Faust's recovery bookkeeping made cheaper gives the same answers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from streams.shell.lean_recovery import ReadyFirstQueue, records_remaining


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
