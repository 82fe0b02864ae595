"""Faust's aiokafka consumer with a configurable fetch wait.

Faust (0.11 to at least 0.15) builds the worker's `AIOKafkaConsumer` with
`fetch_max_wait_ms=1500` hard-coded. On Apache Kafka that only bounds an idle
long poll: a fetch returns as soon as data arrives. The embedded broker (tansu)
answers a fetch only when the wait runs out (measured: ~half the wait per hop on
average, up to all of it), so an event crossed two hops (events -> journey agent,
candidates -> orchestrator) in ~1 s at idle. The wait is taken from the app
(`CRM_FETCH_MAX_WAIT_MS`) and set on the client before it starts, which is when
aiokafka hands it to its fetcher.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver


class FetchWaitConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.consumer.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class FetchWaitConsumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class CrmTransport(aiokafka_driver.Transport):
    Consumer = FetchWaitConsumer
