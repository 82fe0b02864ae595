"""Faust's table recovery with less work per changelog record.

Recovery (faust-streaming 0.15, `Recovery._slurp_changelogs`) does per record:
`await asyncio.wait_for(changelog_queue.get(), 5.0)`, which wraps the queue's
coroutine in a new task even when a record is waiting, and `need_recovery()`,
which builds a `Counter` of every active partition's remaining records to ask
whether any is left. On 1M records they were ~12% of a recovery's CPU
(bench/RESULTS.md). Here the queue hands out a waiting record as a finished
future (no task) and "any left?" stops at the first partition that has some.
Same answers, through Faust's own extension points (`TableManager` setting).

It also mends how upstream's recovery lost ranges of changelog records, found by
the SIGKILL chaos scenario (tests/chaos/RESULTS.md, 2026-12-06): a customer's
deferred message was never sent because the worker that took over its partition
recovered the customer's state from before the deferral.

The changelog queue is a flow-control queue emptied whenever flow control resumes
(`clear_on_resume`). Recovery resumes it mid-read (when it starts the standby
partitions, and when it resumes the streams), while records that the consumer
already took from aiokafka wait in the queue. They were dropped unapplied,
aiokafka read on past them, and the next record was applied on top: the standby
copy lost a range of records for good (recovery goes on from the last applied
offset), and so did the active copy it later became.

Records queued for an earlier assignment are stale: recovery seeks every
changelog partition it reads, and reads them again. Applied first, one would move
"read up to" past the records the seek reads again. So the queue is emptied at a
revoke and when partitions are assigned, and never while recovery reads; a record
taken in an earlier consumer generation that still gets in (a `put` the conductor
left waiting for room or for flow control) is left out when handed over.

With direct delivery (`CRM_DIRECT_DELIVERY`, the default) the consumer's drain loop
hands each changelog record straight to `LeanRecovery.take`, which does upstream's
per-record step of `_slurp_changelogs` there: no decode through the topic's schema,
no `Event`, no queue, no wake-up of the reading task per record. The drain loop and
the reading task were ~45% of a recovering worker's samples; recovering 1M customers
became 5x faster (py-spy and side-by-side runs, bench/RESULTS.md, 2026-12-07 late). The
records are taken under the same rules: in fetch order, only of partitions recovery
reads and of the current consumer generation, and never while a rebalance holds the
flow (the drain loop waits, as for an input message). Upstream's reading task still
runs and still ends a recovery whose last records never come (its 5 s timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from time import monotonic
from typing import Any, cast

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.types.tables import TableManagerT
from faust.utils.tracing import finish_span
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


class RecoveredRecord:
    """A changelog record as recovery buffers it for a table: what Faust's `Event` gives
    the stores (`apply_changelog_batch`) and `on_changelog_event`. Only for tables whose
    changelog decodes to the record's own bytes (raw keys, and value codecs that keep the
    bytes, `state_codec`): key and value are the message's, None for a tombstone."""

    __slots__ = ("key", "message", "value")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.key = message.key
        self.value = message.value


class LeanRecovery(Recovery):
    def need_recovery(self) -> bool:
        return records_remaining(self.active_highwaters, self.active_offsets)

    def _set_recovery_started(self) -> None:
        # `take` ends a recovery by setting this event, which upstream's reading task
        # clears only on its next turn (up to 5 s later when the records come through
        # `take`); still set, it would end the next recovery before it read anything.
        self.signal_recovery_end.clear()
        super()._set_recovery_started()

    async def take(self, message: Any) -> None:
        """Upstream's step of `_slurp_changelogs` for one record, where the consumer hands
        it over (see the module's docstring). Never waits for our tables' callbacks."""
        queue = cast(ReadyFirstQueue, self.tables.changelog_queue)
        if not queue.admits(message):
            return
        try:
            await self._apply(message)
        except Exception as exc:
            # As upstream's loop: one record's error is logged, the reading goes on.
            log.warning("Error in recovery %r", exc)

    async def _apply(self, message: Any) -> None:
        now = monotonic()
        tp = message.tp
        offset = message.offset
        table = self.tp_to_table[tp]
        bufsize = self.buffer_sizes.get(tp)
        is_active = tp in self.active_tps
        if is_active:
            offsets = self.active_offsets
            if bufsize is None:
                bufsize = self.buffer_sizes[tp] = table.recovery_buffer_size
            self._active_events_received_at[tp] = now
        else:  # a standby partition: `admits` lets through only partitions recovery reads
            offsets = self.standby_offsets
            if bufsize is None:
                bufsize = self.buffer_sizes[tp] = table.standby_buffer_size
                self._standby_events_received_at[tp] = now
        seen_offset = offsets.get(tp, None)
        if seen_offset is None or offset > seen_offset:
            offsets[tp] = offset
            record = RecoveredRecord(message)
            # Stands in for Faust's Event as far as the stores and the callback read one.
            buf: list[Any] = self.buffers[table]
            buf.append(record)
            await table.on_changelog_event(cast(Any, record))
            if len(buf) >= bufsize:
                table.apply_changelog_batch(buf)
                buf.clear()
                self._last_flush_at = now
            if is_active:
                # What upstream estimates the remaining time from (its progress log).
                now_after = monotonic()
                last_processed_at = self._last_active_event_processed_at
                if last_processed_at is not None:
                    processing_times = self._processing_times
                    processing_times.append(now_after - last_processed_at)
                    if len(processing_times) > self.num_samples_required_for_estimate:
                        processing_times.popleft()
                self._last_active_event_processed_at = now_after
        if self.in_recovery and not self.need_recovery():
            # Upstream's `_maybe_signal_recovery_end`, after every record as there.
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()
        standby_ready = self._standbys_span is None and self.tables.standbys_ready
        if not standby_ready and not self.standby_remaining_total():
            if self._standbys_span:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()

    def on_partitions_revoked(self, revoked: set[TP]) -> None:
        super().on_partitions_revoked(revoked)  # applies what was read
        # Upstream's revoke empties the queues flow control manages; this one it no
        # longer does. Left in, records of revoked partitions would be applied on.
        self.tables.changelog_queue.clear()

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        if generation_id == self.app.consumer_generation_id:
            # From here on only records of this generation: what is older was taken
            # for the previous assignment, and this recovery reads it again.
            # LeanTableManager's queue, the only one this recovery runs with.
            cast(ReadyFirstQueue, self.tables.changelog_queue).start_generation(generation_id)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)


class ReadyFirstQueue(ThrowableQueue):  # type: ignore[type-arg]
    """Faust's changelog queue (`App.FlowControlQueue`) with a `get` that does not wait
    for what is already there, and that hands out only records of the current consumer
    generation (`start_generation`) of partitions that `reads(tp)` says recovery reads
    (upstream applies a record of any other partition to whichever table the record
    before it belonged to)."""

    def __init__(self, *args: Any, reads: Callable[[TP], bool] = lambda tp: True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reads = reads
        self.generation: int | None = None
        """Records taken from aiokafka in an earlier consumer generation are stale."""
        self.dropped = 0
        """Records left out: stale, or of partitions recovery no longer reads."""

    def start_generation(self, generation: int) -> None:
        self.clear()
        self.generation = generation

    def _wanted(self, item: Any) -> bool:
        message = getattr(item, "message", None)
        return message is None or self.admits(message)

    def admits(self, message: Any) -> bool:
        """Whether recovery may apply this changelog record (else it is counted in
        `dropped`): taken in the current consumer generation, of a partition it reads."""
        taken_in = getattr(message, "generation_id", None)
        stale = self.generation is not None and taken_in is not None and taken_in < self.generation
        if not stale and self.reads(message.tp):
            return True
        self.dropped += 1
        log.debug(
            "changelog record %s@%s left out: %s",
            message.tp,
            message.offset,
            "taken in an earlier generation" if stale else "recovery does not read it",
        )
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


def recovery_take(tables: TableManagerT) -> Callable[[Any], Awaitable[None]]:
    """The direct route of changelog records: `take` of the recovery `tables` runs
    (created on first use, after the app is built)."""

    def take(message: Any) -> Awaitable[None]:
        return cast(LeanRecovery, cast(Any, tables).recovery).take(message)

    return take


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
