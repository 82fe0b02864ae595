"""How the embedded broker's fetches slow down with the record batches a partition holds.

`python -m bench.broker_batches [MAX_BATCHES]` starts its own tansu, writes one record
per batch to a one-partition topic and, every 2,000 batches, times a fetch of the last
record and of the first (10 s deadline; "-" = nothing came back). Not part of
`make bench`: past the limit each step waits out its deadlines. Measured 2026-11-30 (see
README, "Embedded broker limits"): tail fetch 2 ms at 2,000 batches, 11 ms at 16,000,
0.6 s at 20,000, none from ~25,000; head fetches failed from ~40,000.
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.shell.embedded_broker import EmbeddedBroker

STEP = 2_000


async def _fetch_ms(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> str:
    consumer.seek(tp, offset)
    started = time.monotonic()
    got = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
    return f"{(time.monotonic() - started) * 1000:8.1f}" if got else "       -"


async def probe(max_batches: int) -> None:
    with EmbeddedBroker() as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("batches", 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, acks=1)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=10)
        await producer.start()
        await consumer.start()
        tp = TopicPartition("batches", 0)
        consumer.assign([tp])
        print("batches  tail ms  head ms", flush=True)
        try:
            for written in range(STEP, max_batches + 1, STEP):
                for _ in range(STEP):
                    await producer.send_and_wait("batches", b"x" * 100, partition=0)
                tail = await _fetch_ms(consumer, tp, written - 1)
                head = await _fetch_ms(consumer, tp, 0)
                print(f"{written:7d} {tail} {head}", flush=True)
        finally:
            await consumer.stop()
            await producer.stop()


if __name__ == "__main__":
    asyncio.run(probe(int(sys.argv[1]) if len(sys.argv) > 1 else 30_000))
