"""The worker's Kafka consumer: Faust's aiokafka consumer with a drain loop that does
not skip input around rebalances (rebalance_safe_consumer.py) and two settings it lacks.

The settings matter most on the embedded broker (tansu). All go through Faust's
extension points (transport -> consumer -> consumer thread), small enough to be
offered upstream.

* **Fetch wait.** Faust (0.11 to at least 0.15) builds the `AIOKafkaConsumer`
  with `fetch_max_wait_ms=1500` hard-coded. Apache Kafka answers a fetch as soon
  as data arrives, so that only paces idle polls; tansu answers only when the
  wait runs out (measured: ~half of it per hop on average), and an event crosses
  two hops (events -> journey agent, candidates -> orchestrator): ~1 s at idle.
  `CRM_FETCH_MAX_WAIT_MS` is set on the client before it starts, which is when
  aiokafka hands it to its fetcher.
* **Exact end offsets.** tansu answers ListOffsets(LATEST) with the base offset
  of the partition's last record batch + 1, not the high-water mark. Faust's
  table recovery reads a changelog partition up to that offset, so it skipped
  the rest of the last batch, and a recovering worker that had read beyond it
  stopped with `ConsistencyError`. With `CRM_EXACT_END_OFFSETS` the reported end
  is checked by reading from it - 1 (the last batch) and taking the last offset
  found + 1, so producers may batch normally. Recovery is the only caller, once
  per assignment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams.shell.rebalance_safe_consumer import (
    RebalanceSafeConsumer,
    RebalanceSafeConsumerThread,
)

END_PROBE_SECONDS = 10.0
"""How long to look for the last batch of partitions before trusting the broker's ends."""


class CrmConsumerThread(RebalanceSafeConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.consumer.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        ends = dict(await super()._highwaters(partitions))
        if not getattr(self.consumer.app, "exact_end_offsets", False):
            return ends
        return await exact_ends(self._probe_client, ends)

    def _probe_client(self) -> aiokafka.AIOKafkaConsumer:
        conf = self.app.conf
        transport: Any = self.transport
        return aiokafka.AIOKafkaConsumer(
            bootstrap_servers=aiokafka_driver.server_list(transport.url, transport.default_port),
            client_id=f"{conf.broker_client_id}-end-offsets",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            **aiokafka_driver.credentials_to_aiokafka_auth(
                conf.broker_credentials, conf.ssl_context
            ),
        )


async def exact_ends(
    new_client: Callable[[], aiokafka.AIOKafkaConsumer], reported: Mapping[Any, int]
) -> dict[Any, int]:
    """`reported` end offsets, each raised to the last offset of the partition's last
    batch + 1 (read from the reported end - 1). Partitions whose last batch does not
    show up within END_PROBE_SECONDS keep the reported end."""
    ends = dict(reported)
    wanted = {
        aiokafka.TopicPartition(tp.topic, tp.partition): tp for tp, end in ends.items() if end > 0
    }
    if not wanted:
        return ends
    client = new_client()  # only now: an unstarted client left for the GC warns "unclosed"
    await client.start()
    try:
        client.assign(list(wanted))
        for atp, tp in wanted.items():
            client.seek(atp, ends[tp] - 1)
        remaining = set(wanted)
        deadline = time.monotonic() + END_PROBE_SECONDS
        while remaining and time.monotonic() < deadline:
            fetched = await client.getmany(*remaining, timeout_ms=200)
            for atp, records in fetched.items():
                if records:
                    tp = wanted[atp]
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
                    remaining.discard(atp)
    finally:
        await asyncio.shield(client.stop())
    return ends


class CrmConsumer(RebalanceSafeConsumer):
    def _new_consumer_thread(self) -> CrmConsumerThread:
        return CrmConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def last_fetch_at(self, tp: Any) -> float | None:
        """When the last fetch response for `tp` arrived, on `time.monotonic()`'s clock
        (aiokafka stamps it with wall-clock ms); None before the first or when `tp` is
        not assigned."""
        try:
            client = self._thread._ensure_consumer()
            stamp = client.last_poll_timestamp(tp)
        except Exception:  # not started, not assigned (rebalancing): nothing confirmed
            return None
        if not isinstance(stamp, int):
            return None
        return time.monotonic() - (time.time() - stamp / 1000.0)


class CrmTransport(aiokafka_driver.Transport):
    Consumer = CrmConsumer
