"""Faust's aiokafka consumer with a drain loop that does not skip input around rebalances.

Upstream's loop (faust-streaming 0.15, `Consumer._drain_messages`) hands each
fetched message to its stream with `wait_first(callback(message),
suspend_flow.wait())` and then records the message's offset as read, whether or
not the callback completed. When a rebalance starts while a message is on its
way, the revoke clears the partition's read offset and the loop then sets it
again: the new generation starts with a read offset of a message that was never
processed, the loop drops every re-read message below it as "already read", and
a jump above it is recorded as a gap, which counts as acked. The committed
offset then moves past input nobody processed (faust-streaming #221, #606; the
chaos suite lost thousands of decisions to it).

A second way to the same loss: after recovery, Faust resumes the stream
partitions *before* it seeks them to their committed offsets
(`Recovery._resume_streams`). A fetch issued in between returns records from the
position a previous generation left (past the committed offset); the loop takes
the jump for a gap (acked), and the records from the committed offset, fetched
after the seek, come below the read offset and are dropped. Seen in the chaos
suite: read offset 2040, first record 2043 ("gap 2041-2042"), then 2040-2042
dropped three seconds later.

This loop is upstream's with two changes:
- the read offset advances only when the message was handed over and no
  rebalance began meanwhile;
- the records of a partition in a batch taken from aiokafka before a seek of that
  partition are stale: skipped, not recorded as read (the seek moved aiokafka's
  position back, so they are fetched again). This holds for the changelogs too,
  which recovery seeks.
After a rebalance the rest of the batch is left unread; the messages come again
from the committed offset or the seek position (processing is idempotent, so a
message handed over just before the rebalance and read again is only a
duplicate). Kept small so it can be offered upstream.

"Before a seek" has to be decided where aiokafka runs, in Faust's consumer thread:
a `getmany` waits there for records (up to a second) while a seek can land, and
the records it then returns were fetched from the seek position. Judged by when
the `getmany` started, they looked stale, were skipped, and aiokafka was already
past them: after the broker-stall rebalance a worker skipped its whole backlog
from the committed offset and read nothing more (tests/chaos/RESULTS.md,
2026-11-30). So the thread counts each seek at the moment aiokafka's position
moves and stamps each batch with that count when it takes it from aiokafka.

A second way to lose input at the same place: Faust hands aiokafka its live set of
active partitions, and aiokafka takes an empty set for "every partition". During
recovery the set is empty for a while (stream partitions paused, active changelogs
read, standbys not yet resumed); a `getmany` waiting then got the stream
partitions' records, and Faust's `getmany` dropped them as not active. When the
partitions had no committed offset (a worker that never committed before the
broker stalled) no seek followed to read them again. The thread now passes aiokafka
a view of the set that is never taken for "every partition".

A third: recovery resumes the stream partitions, seeks them to their committed
offsets, and then resumes Faust's flow control, which clears every agent's queue.
Records handed over between the resume and the clear were counted as read and then
dropped from the queues unprocessed; they were never acked, so the committed offset
stuck below them while the worker read on (the 1 -> 3 -> 1 scaling scenario, one run
in six: 15 to 205 decisions lost, 2026-11-30). The view passed to aiokafka now leaves
stream records in aiokafka from the start of a rebalance to its end.

Topics with a direct route (`direct_delivery`) go from here to their handler
instead of `callback` (Faust's conductor, queues and agent streams); the loop
around it is the same.

Not a fix, a cost: upstream races every message's delivery against a rebalance
with `wait_first` (four tasks and an `asyncio.wait` per message). Delivery almost
never waits, so the loop first runs it eagerly (`eager_delivery`) and races only a
delivery that has to wait, exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode import Service

from streams.shell.direct_delivery import DirectDelivery
from streams.shell.eager_delivery import run_until_blocked


class ActivePartitions:
    """Faust's live set of active partitions as aiokafka's `fetched_records` reads it:
    membership, less the partitions `withheld` says to leave in aiokafka for now, and
    true even when empty (aiokafka takes an empty set for all)."""

    def __init__(self, tps: set[TP], withheld: Callable[[Any], bool] = lambda tp: False) -> None:
        self._tps = tps
        self._withheld = withheld

    def __contains__(self, tp: object) -> bool:
        return tp in self._tps and not self._withheld(tp)

    def __bool__(self) -> bool:
        return True


class RebalanceSafeConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, counting seeks and stamping batches there."""

    seeks = 0
    """Counts the seeks made through `seek_to_committed` and `seek` (the stream
    partitions) and recovery's `seek_wait` (the changelogs)."""
    seeked: dict[TP, int]
    """Per partition, `seeks` right after its last seek."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.seeked = {}

    def _note_seek(self, tp: Any) -> None:
        self.seeks += 1
        self.seeked[TP(tp.topic, tp.partition)] = self.seeks

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return cast(Mapping[TP, int], await self.call_thread(self._seek_to_committed))

    async def _seek_to_committed(self) -> dict[Any, int | None]:
        # aiokafka's `AIOKafkaConsumer.seek_to_committed`, noting each seek as it is
        # made: it awaits the committed offset of one partition after the other, and
        # a `getmany` may take records of the partitions already seeked meanwhile.
        consumer = self._ensure_consumer()
        committed: dict[Any, int | None] = {}
        for tp in consumer.assignment():
            offset = await consumer.committed(tp)
            committed[tp] = offset
            if offset and offset > 0:
                consumer.seek(tp, offset)
                self._note_seek(tp)
        return committed

    def seek(self, partition: TP, offset: int) -> None:
        super().seek(partition, offset)
        self._note_seek(partition)

    async def _seek_wait(self, consumer: Any, partitions: Mapping[TP, int]) -> None:
        # Upstream's, noting each seek as it is made. A changelog record in a batch
        # taken before the seek is then skipped like a stale stream record: applied, it
        # would move recovery's "read up to" past the records the seek reads again.
        read_offset = self.consumer._read_offset
        for tp, offset in partitions.items():
            consumer.seek(tp, offset)
            self._note_seek(tp)
            if offset > 0:
                read_offset[tp] = offset
            else:
                read_offset.pop(tp, None)
        await asyncio.wait_for(
            asyncio.gather(*[consumer.position(tp) for tp in partitions]),
            timeout=self.app.conf.broker_request_timeout,
        )

    async def getmany_stamped(
        self,
        active_partitions: set[TP] | None,
        timeout: float,
        withheld: Callable[[Any], bool],
    ) -> tuple[RecordMap, int]:
        """`getmany`, and `seeks` when the batch was taken from aiokafka."""
        consumer = self._ensure_consumer()
        return cast(
            tuple[RecordMap, int],
            await self.call_thread(
                self._fetch_stamped,
                consumer,
                None
                if active_partitions is None
                else ActivePartitions(active_partitions, withheld),
                timeout=timeout,
                max_records=consumer._max_poll_records,
            ),
        )

    async def _fetch_stamped(
        self, consumer: Any, active_partitions: Any, timeout: float, max_records: int | None
    ) -> tuple[RecordMap, int]:
        records = await self._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        return records, self.seeks  # no await in between: taken after exactly these seeks


class RebalanceSafeConsumer(aiokafka_driver.Consumer):
    _batch_seeks = 0
    """The thread's `seeks` when the batch being drained was taken from aiokafka: its
    records of a partition seeked since are stale."""

    def _new_consumer_thread(self) -> RebalanceSafeConsumerThread:
        return RebalanceSafeConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        thread = cast(RebalanceSafeConsumerThread, self._thread)
        records, self._batch_seeks = await thread.getmany_stamped(
            active_partitions, timeout, self._withheld
        )
        return records

    def _withheld(self, tp: Any) -> bool:
        """Stream records stay in aiokafka from the start of a rebalance to its end:
        recovery resumes the stream partitions, seeks them, then clears the agents'
        queues (`flow_control.resume()`), and only then ends the rebalance. Records
        handed over in between would be dropped from the queues after being counted
        as read. Changelog records flow: recovery reads them meanwhile."""
        return bool(self.app.rebalancing) and not self._is_changelog_tp(tp)

    async def seek_wait(self, partitions: Mapping[TP, int | None]) -> None:
        # Recovery seeks changelogs here. When a rebalance lands while it starts the
        # standby partitions, Faust can pass an offset that is None or negative,
        # aiokafka raises ValueError and the worker crashes (seen twice in the SIGKILL
        # chaos scenario). Reading such a changelog from its start is always safe.
        safe = {tp: offset if offset and offset > 0 else 0 for tp, offset in partitions.items()}
        await super().seek_wait(safe)

    async def _drain_messages(self, fetcher: Any) -> None:
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        crashed = cast(Service, self)._crashed.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        seeked = cast(RebalanceSafeConsumerThread, self._thread).seeked.get
        direct: DirectDelivery = getattr(self.app, "direct", None) or DirectDelivery()
        direct_route = direct.routes.get
        deliver_direct = direct.deliver
        flow_control = self.app.flow_control
        yield_every = 100
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        if seeked(tp, 0) > self._batch_seeks:
                            # Taken from aiokafka before a seek of its partition: stale.
                            # The partition is read again from where the seek put it.
                            self.log.dev("STALE MESSAGE %r %r", tp, message.offset)
                            continue
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            generation = self.app.consumer_generation_id
                            handler = direct_route(tp.topic)
                            if handler is None:
                                # Most deliveries finish without waiting: no task for them.
                                waiting = run_until_blocked(callback(message))
                                if waiting is not None:
                                    waited = await self.wait_first(
                                        waiting, self.suspend_flow.wait()
                                    )
                                    delivered = waiting in waited.done
                                else:
                                    delivered = not (consumer_should_stop() or crashed())
                            else:
                                if not flow_control.is_active():
                                    # As the conductor's put: wait for the flow, unless a
                                    # rebalance begins first.
                                    waited = await self.wait_first(
                                        flow_control.acquire(), self.suspend_flow.wait()
                                    )
                                    if not waited.done or self.suspend_flow.is_set():
                                        break
                                if not self.flow_active:
                                    break  # a rebalance began: as a delivery that lost the race
                                waiting = run_until_blocked(deliver_direct(self, handler, message))
                                if waiting is not None:
                                    # Never raced and cancelled like the queue put above: the
                                    # handler may have changed state and not sent its outputs
                                    # yet, and the tracked message must end held and acked
                                    # (a revoke waits for it). Shielded from a stop likewise.
                                    await asyncio.shield(asyncio.ensure_future(waiting))
                                delivered = not (consumer_should_stop() or crashed())
                            if (
                                not delivered
                                or not self.flow_active
                                or self.app.consumer_generation_id != generation
                            ):
                                # A rebalance began: this partition's read offset was
                                # (or is about to be) reset; do not resurrect it.
                                break
                            if seeked(tp, 0) > self._batch_seeks:
                                # Seeked while this message was handed over: the read
                                # offset is the seek's; the rest of the batch is stale.
                                continue
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r %r %r", offset, tp, r_offset)
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)
