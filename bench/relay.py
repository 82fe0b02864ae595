"""A relay that does no work: the broker's own floor for the latency stage.

It consumes the events topic and produces every record, unchanged, to an output
topic, in a process of its own, with the worker's client settings on this broker
(fetch wait `CRM_FETCH_MAX_WAIT_MS`, 20 on the embedded broker; producer linger 5 ms).
Measured exactly as crm-triggers is (`latency.py`: Kafka timestamp of the output
record minus the wall time before the `send()` of its event), at the same rate over
the same window, it says how much of crm-triggers' latency the broker and the Kafka
clients take on their own: on the embedded broker a partition's fetches slow down
with the record batches it holds (README, "Embedded broker"), so latency drifts up
over a window whatever the consumer does.

    python bench/relay.py BOOTSTRAP SOURCE_TOPIC OUTPUT_TOPIC

Runs until terminated; prints `relaying` once its consumer has its partitions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

FETCH_MAX_WAIT_MS = int(os.environ.get("CRM_FETCH_MAX_WAIT_MS", "20"))
PRODUCER_LINGER_MS = 5
"""The worker's default `CRM_PRODUCER_LINGER_MS`."""


async def relay(bootstrap: str, source: str, output: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=PRODUCER_LINGER_MS)
    await consumer.start()
    await producer.start()
    print("relaying", flush=True)
    try:
        while not stop.is_set():
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    # Same partition: the output keeps each customer's order, as the
                    # worker's decisions do.
                    await producer.send(
                        output, key=record.key, value=record.value, partition=tp.partition
                    )
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    bootstrap, source, output = sys.argv[1:4]
    asyncio.run(relay(bootstrap, source, output))
