"""The limit: raw aiokafka consume + orjson decode of the bench topic, no framework.

Timed like every other throughput figure: from the first message decoded to
the N-th, so client start-up and the first fetch's latency are not counted.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer


def topic_reader(bootstrap: str, topic: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer of the whole topic from its start, without a group, in large fetches."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
        **options,
    )


async def raw_consume(bootstrap: str, topic: str, n: int, timeout: float = 300.0) -> float:
    consumer = topic_reader(bootstrap, topic)
    await consumer.start()
    seen = 0
    first = last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while seen < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"limit: only {seen}/{n} messages in {timeout:.0f} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                    seen += 1
                    if seen == 1:
                        first = time.perf_counter()
                    if seen == n:
                        last = time.perf_counter()
                        break
                if seen >= n:
                    break
    finally:
        await consumer.stop()
    return (n - 1) / max(last - first, 1e-9)
