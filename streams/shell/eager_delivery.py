"""Run a coroutine at once until it first has to wait (Python 3.12's eager tasks, for 3.11).

Faust's drain loop hands every fetched message to its stream with
`wait_first(callback(message), suspend_flow.wait())`: four tasks and an
`asyncio.wait` per message, although the callback almost never waits (it
decodes the message and puts it in a queue with room, or pauses the partition
when the queue fills). Stepping the coroutine here first finishes those messages
without a task; only one that really waits gets the task (and the race against a
rebalance) that upstream gives every message. On 200k changelog records this
per-message work was most of a recovery's CPU (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any


def run_until_blocked(coro: Awaitable[Any]) -> Awaitable[Any] | None:
    """Step `coro` now. None if it finished; else a coroutine that finishes it and
    returns its result, to be awaited or wrapped in a task. An exception raised
    before the first wait propagates from here, as it would from awaiting it. Any
    other awaitable (a future) is returned as it is."""
    if not isinstance(coro, Coroutine):
        return coro
    try:
        blocked_on = coro.send(None)
    except StopIteration:
        return None
    return _finish(coro, blocked_on)


async def _finish(coro: Coroutine[Any, Any, Any], blocked_on: Any) -> Any:
    """Go on as a Task would: wait for what `coro` yielded, then resume it, passing in
    what waiting raised (the future's error, or a cancellation of this task)."""
    while True:
        error: BaseException | None = None
        try:
            if blocked_on is None:  # a bare yield: `asyncio.sleep(0)`
                await asyncio.sleep(0)
            else:
                # What a Task does with a yielded future: take over the wait (the C
                # future refuses a second `await` while its blocking flag is set).
                # Cancelling this task then cancels that very future, as cancelling a
                # task cancels the future its coroutine waits on.
                blocked_on._asyncio_future_blocking = False
                await blocked_on
        except BaseException as exc:  # handed to `coro`, which decides what it means
            error = exc
        try:
            blocked_on = coro.send(None) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            error = None  # as asyncio's Task step: no exception -> frame -> exception cycle
