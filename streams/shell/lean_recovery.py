"""Faust's table recovery with less work per changelog record.

Recovery (faust-streaming 0.15, `Recovery._slurp_changelogs`) does per record:
`await asyncio.wait_for(changelog_queue.get(), 5.0)`, which wraps the queue's
coroutine in a new task even when a record is waiting, and `need_recovery()`,
which builds a `Counter` of every active partition's remaining records to ask
whether any is left. On 1M records they were ~12% of a recovery's CPU
(bench/RESULTS.md). Here the queue hands out a waiting record as a finished
future (no task) and "any left?" stops at the first partition that has some.
Same answers, through Faust's own extension points (`TableManager` setting).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from mode.utils.queues import ThrowableQueue


def records_remaining(
    highwaters: Mapping[TP, int | None], offsets: Mapping[TP, int | None]
) -> bool:
    """Upstream's `any(v > 0 for v in active_remaining().values())`, without the Counter."""
    for tp, highwater in highwaters.items():
        offset = offsets[tp]
        if highwater is not None and offset is not None and highwater - offset > 0:
            return True
    return False


class LeanRecovery(Recovery):
    def need_recovery(self) -> bool:
        return records_remaining(self.active_highwaters, self.active_offsets)


class ReadyFirstQueue(ThrowableQueue):  # type: ignore[type-arg]
    """Faust's changelog queue (`App.FlowControlQueue`) with a `get` that does not wait
    for what is already there."""

    def get(self) -> Awaitable[Any]:  # type: ignore[override]
        """A waiting item as a finished future (`asyncio.wait_for` then makes no task
        for it); otherwise (empty, or an error thrown in) the queue's own coroutine."""
        if self.empty() or self._errors:
            waiting: Awaitable[Any] = super().get()
            return waiting
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ready.set_result(self.get_nowait())
        return ready


class LeanTableManager(TableManager):
    @property
    def changelog_queue(self) -> Any:
        if self._changelog_queue is None:
            # As upstream's (`App.FlowControlQueue`), of the class above.
            self._changelog_queue = ReadyFirstQueue(
                maxsize=self.app.conf.stream_buffer_maxsize,
                flow_control=self.app.flow_control,
                clear_on_resume=True,
            )
        return self._changelog_queue

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = LeanRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
