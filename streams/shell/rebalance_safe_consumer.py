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
- the records of a partition in a batch whose fetch started before a seek of that
  partition ended are stale: skipped, not recorded as read.
After a rebalance the rest of the batch is left unread; the messages come again
from the committed offset or the seek position (processing is idempotent, so a
message handed over just before the rebalance and read again is only a
duplicate). Kept small so it can be offered upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode import Service


class RebalanceSafeConsumer(aiokafka_driver.Consumer):
    _seeks = 0
    """Counts the seeks that ended."""
    _seeked: dict[TP, int]
    """Per partition, `_seeks` when its last seek ended: its records in a batch whose
    fetch started before then are stale."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._seeked = {}

    async def perform_seek(self) -> None:
        # Seeks the partitions with a committed offset: the stream partitions, never
        # the changelogs, which recovery may be reading meanwhile.
        await super().perform_seek()
        self._seeks += 1
        for tp in self._committed_offset:
            self._seeked[tp] = self._seeks

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._seeks += 1
        self._seeked[partition] = self._seeks

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
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        seeked = self._seeked.get
        yield_every = 100
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                seeks = self._seeks
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        if seeked(tp, 0) > seeks:
                            # Fetched before a seek of its partition ended: stale. The
                            # partition is read again from where the seek put it.
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
                            delivery = callback(message)
                            waited = await self.wait_first(delivery, self.suspend_flow.wait())
                            if (
                                delivery not in waited.done
                                or not self.flow_active
                                or self.app.consumer_generation_id != generation
                            ):
                                # A rebalance began: this partition's read offset was
                                # (or is about to be) reset; do not resurrect it.
                                break
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r", offset)
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
