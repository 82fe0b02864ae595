"""Eager delivery behaves as wrapping the coroutine in a task would, minus the task."""

from __future__ import annotations

import asyncio

import pytest

from streams.shell.eager_delivery import run_until_blocked

pytestmark = pytest.mark.asyncio


async def test_a_coroutine_that_never_waits_finishes_without_the_loop() -> None:
    done: list[str] = []

    async def deliver() -> None:
        done.append("delivered")

    assert run_until_blocked(deliver()) is None
    assert done == ["delivered"]


async def test_an_error_before_the_first_wait_is_raised_at_once() -> None:
    async def deliver() -> None:
        raise ValueError("bad message")

    with pytest.raises(ValueError, match="bad message"):
        run_until_blocked(deliver())


async def test_a_coroutine_that_waits_is_finished_by_the_returned_coroutine() -> None:
    room = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def deliver() -> str:
        steps.append("started")
        steps.append(await room)
        await asyncio.sleep(0)  # a bare yield on the way
        await asyncio.sleep(0.001)
        return "delivered"

    rest = run_until_blocked(deliver())
    assert rest is not None
    assert steps == ["started"]  # ran up to its first wait, synchronously
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    room.set_result("room")
    assert await asyncio.wait_for(task, timeout=5) == "delivered"
    assert steps == ["started", "room"]


async def test_a_failed_future_raises_inside_the_coroutine_where_it_waits() -> None:
    room = asyncio.get_running_loop().create_future()

    async def deliver() -> str:
        try:
            await room
        except ConnectionError as exc:
            return f"handled {exc}"
        return "not reached"

    rest = run_until_blocked(deliver())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    room.set_exception(ConnectionError("broker gone"))
    assert await asyncio.wait_for(task, timeout=5) == "handled broker gone"


async def test_cancelling_the_task_cancels_the_awaited_future_and_reaches_the_coroutine() -> None:
    room = asyncio.get_running_loop().create_future()
    cleaned: list[bool] = []

    async def deliver() -> None:
        try:
            await room
        finally:
            cleaned.append(True)

    rest = run_until_blocked(deliver())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert room.cancelled()
    assert cleaned == [True]


async def test_a_delivery_racing_a_rebalance_as_in_the_drain_loop() -> None:
    """Upstream's race, `asyncio.wait` on the delivery and the suspend flag: the flag
    wins, the pending delivery is cancelled and its queue put never lands."""
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
    queue.put_nowait("earlier")
    suspended = asyncio.Event()

    async def deliver() -> None:
        await queue.put("message")

    rest = run_until_blocked(deliver())
    assert rest is not None  # the queue is full: it has to wait
    delivery = asyncio.ensure_future(rest)
    flag = asyncio.ensure_future(suspended.wait())
    suspended.set()
    done, _ = await asyncio.wait({delivery, flag}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {flag}
    delivery.cancel()
    await asyncio.wait({delivery})
    assert delivery.cancelled()
    assert queue.get_nowait() == "earlier"
    assert queue.empty()
