"""Faust's table recovery with less work per changelog record.

Recovery (faust-streaming 0.15, `Recovery._slurp_changelogs`) does per record:
`await asyncio.wait_for(changelog_queue.get(), 5.0)`, which wraps the queue's
coroutine in a new task even when a record is waiting, and `need_recovery()`,
which builds a `Counter` of every active partition's remaining records to ask
whether any is left. On 1M records they were ~12% of a recovery's CPU
(bench/RESULTS.md). Here the queue hands out a waiting record as a finished
future (no task) and "any left?" stops at the first partition that has some.
Same answers, through Faust's own extension points (`TableManager` setting).

It also mends two ways upstream's recovery loses changelog records, found by the
SIGKILL chaos scenario (tests/chaos/RESULTS.md, 2026-12-06): a customer's
deferred message was never sent because the worker that took over its partition
recovered the customer's state from before the deferral.

- The changelog queue is a flow-control queue emptied whenever flow control
  resumes (`clear_on_resume`). Recovery resumes it mid-read (when it starts the
  standby partitions, and when it resumes the streams), while records that the
  consumer already took from aiokafka wait in the queue. They were dropped
  unapplied, aiokafka read on past them, and the next record was applied on top:
  the standby copy lost a range of records for good (recovery goes on from the
  last applied offset), and so did the active copy it later became. Records
  queued for an earlier assignment are stale (recovery seeks every assigned
  changelog partition again); those are now dropped when partitions are
  assigned, and never later.
- Upstream keeps the offsets read in a `Counter`, where a partition never read
  reads as 0 instead of "none" (-1): recovery from scratch took only records
  above offset 0, so each changelog partition's first record was never applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from mode.utils.queues import ThrowableQueue

log = logging.getLogger(__name__)


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

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        if generation_id == self.app.consumer_generation_id:
            # What waits in the queue was taken for the previous assignment, and this
            # recovery seeks every changelog partition it reads: it is read again. No
            # record enters meanwhile (the revoke stopped the consumer's flow).
            self.tables.changelog_queue.clear()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        # Upstream reads `destination[tp]`, 0 for a partition never read, where its
        # logic expects None ("start before the earliest offset").
        for tp in tps:
            if tp not in destination:
                destination[tp] = None  # type: ignore[assignment]
        await super()._build_offsets(consumer, tps, destination, title)


def _partition_of(item: Any) -> TP | None:
    message = getattr(item, "message", None)
    return None if message is None else message.tp


class ReadyFirstQueue(ThrowableQueue):  # type: ignore[type-arg]
    """Faust's changelog queue (`App.FlowControlQueue`) with a `get` that does not wait
    for what is already there, and that hands out only records of partitions that
    `reads(tp)` says recovery reads (upstream applies a record of any other partition
    to whichever table the record before it belonged to)."""

    def __init__(self, *args: Any, reads: Callable[[TP], bool] = lambda tp: True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reads = reads
        self.dropped = 0
        """Records of partitions recovery no longer reads, left out."""

    def _wanted(self, item: Any) -> bool:
        tp = _partition_of(item)
        if tp is None or self.reads(tp):
            return True
        self.dropped += 1
        log.debug("changelog record of %s dropped: recovery does not read it", tp)
        return False

    def get(self) -> Awaitable[Any]:  # type: ignore[override]
        """A waiting item as a finished future (`asyncio.wait_for` then makes no task
        for it); otherwise (empty, or an error thrown in) a coroutine that waits."""
        while not self.empty() and not self._errors:
            item = self.get_nowait()
            if self._wanted(item):
                ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                ready.set_result(item)
                return ready
        return self._wait_for_wanted()

    async def _wait_for_wanted(self) -> Any:
        while True:
            item = await super().get()
            if self._wanted(item):
                return item


class LeanTableManager(TableManager):
    @property
    def changelog_queue(self) -> Any:
        if self._changelog_queue is None:
            # As upstream's (`App.FlowControlQueue`), of the class above, and not
            # emptied when flow control resumes (see the module's docstring).
            self._changelog_queue = ReadyFirstQueue(
                maxsize=self.app.conf.stream_buffer_maxsize,
                flow_control=self.app.flow_control,
                clear_on_resume=False,
                reads=self._recovery_reads,
            )
        return self._changelog_queue

    def _recovery_reads(self, tp: TP) -> bool:
        recovery = self.recovery
        return tp in recovery.active_tps or tp in recovery.standby_tps

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = LeanRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
