"""The embedded broker reports a partition's end as its last batch's start + 1; the
worker's consumer corrects that before table recovery, so producers can batch."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.shell.embedded_broker import EmbeddedBroker
from streams.shell.kafka_consumer import exact_ends

pytestmark = pytest.mark.asyncio


async def test_end_offsets_are_exact_after_batched_writes(broker: EmbeddedBroker) -> None:
    topic = "end-offsets"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
    await producer.start()
    try:
        # Partition 0: 5 batches of 40; partition 1: one record; partition 2: empty.
        for _ in range(5):
            sends = [await producer.send(topic, b"x", partition=0) for _ in range(40)]
            await producer.flush()
            assert all(s.done() for s in sends)
        await producer.send_and_wait(topic, b"y", partition=1)
    finally:
        await producer.stop()
    tps = [TopicPartition(topic, p) for p in range(3)]
    reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    await reader.start()
    try:
        reported = await reader.end_offsets(tps)
    finally:
        await reader.stop()
    # The broker's answer (if tansu ever reports the true end, this documents the fix).
    assert reported[tps[0]] < 200

    corrected = await exact_ends(
        lambda: AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None), reported
    )
    assert corrected == {tps[0]: 200, tps[1]: 1, tps[2]: 0}
