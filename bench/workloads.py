"""The events every stage reads: a realistic 90-day history, as Kafka messages.

The history comes from `streams.demo.history` (the same generator the simulator
tests use) with its `REALISTIC` options: page views and visits are ~80% of the
events (half the customers only browse), with registrations, consent changes,
carts, orders, reviews, cancellations. It ends now, so the timers it
arms are partly due (replayed) and partly in the future, as in a real replay.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.demo.history import REALISTIC, generate_history

Message = tuple[bytes, bytes]


def history(customers: int, seed: int = 7) -> list[dict[str, Any]]:
    return generate_history(customers, 90, datetime.now(UTC), seed=seed, mix=REALISTIC)


def to_messages(events: Iterable[dict[str, Any]]) -> list[Message]:
    """Keyed by customer id: the engine and every peer partition by it."""
    return [(e["customer_id"].encode(), orjson.dumps(e)) for e in events]


def mix(events: list[dict[str, Any]]) -> dict[str, float]:
    """Share of each event type, for the report (proof of a realistic mix)."""
    counts = Counter(e["type"] for e in events)
    return {kind: round(n / len(events), 3) for kind, n in counts.most_common()}


def write_jsonl(events: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")


async def load(bootstrap: str, topic: str, messages: Iterable[Message]) -> float:
    """Produce everything as fast as the broker takes it; returns events/s.

    Sends are enqueued without awaiting each delivery (aiokafka batches them),
    in chunks so a million futures never pile up at once.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    sent = 0
    started = time.perf_counter()
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in messages:
            pending.append(await producer.send(topic, key=key, value=value))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent / max(time.perf_counter() - started, 1e-9)
