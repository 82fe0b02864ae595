"""Produce generated journeys (and a share of malformed messages) to the events topic."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.demo.journeys import JourneyGenerator, malformed_message
from streams.settings import Settings
from streams.shell.kafka_connection import client_kwargs
from streams.shell.topics import TopicLayoutError, ensure_topics

TICK_SECONDS = 0.05


@dataclass
class ProduceStats:
    """Running counts, readable while `produce_journeys` runs."""

    valid: int = 0
    malformed: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.malformed


async def produce_journeys(
    settings: Settings,
    *,
    customers: int = 2000,
    rate: float = 40.0,
    seconds: float | None = None,
    malformed_share: float = 0.01,
    seed: int = 7,
    stop: asyncio.Event | None = None,
    stats: ProduceStats | None = None,
) -> ProduceStats:
    """Send `rate` events per second until `seconds` pass or `stop` is set.

    Keys are the customer id (UTF-8), so a customer's events stay in order on
    one partition. Each message is malformed with probability `malformed_share`.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    stats = stats if stats is not None else ProduceStats()
    stop = stop if stop is not None else asyncio.Event()
    journeys = JourneyGenerator(seed, customers)
    bad_rng = random.Random(seed + 1)
    producer: Any = AIOKafkaProducer(**client_kwargs(settings), linger_ms=5, acks=1)
    await producer.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    try:
        while not stop.is_set():
            elapsed = loop.time() - started
            if seconds is not None and elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1 - sent
            deliveries = []
            for _ in range(max(due, 0)):
                now = datetime.now(UTC)
                if bad_rng.random() < malformed_share:
                    key, value = malformed_message(bad_rng, now)
                    stats.malformed += 1
                else:
                    event = journeys.next_event(now)
                    key, value = event["customer_id"].encode(), orjson.dumps(event)
                    stats.valid += 1
                deliveries.append(await producer.send(settings.events_topic, key=key, value=value))
                sent += 1
            if deliveries:
                await asyncio.gather(*deliveries)
            next_due = started + sent / rate
            delay = min(max(next_due - loop.time(), 0.0), TICK_SECONDS)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    finally:
        await producer.stop()
    return stats


async def _generate(
    settings: Settings,
    customers: int,
    rate: float,
    seconds: float,
    malformed_share: float,
    seed: int,
    stats: ProduceStats,
) -> ProduceStats:
    await ensure_topics(settings)
    print(
        f"producing ~{rate:g} events/s for {seconds:g}s to {settings.events_topic} "
        f"at {settings.broker} ({customers} customers, seed {seed}, "
        f"{malformed_share:.1%} malformed)",
        flush=True,
    )
    return await produce_journeys(
        settings,
        customers=customers,
        rate=rate,
        seconds=seconds,
        malformed_share=malformed_share,
        seed=seed,
        stats=stats,
    )


def run_generator(
    settings: Settings,
    customers: int,
    rate: float,
    seconds: float,
    malformed_share: float,
    seed: int,
) -> int:
    """`crm-triggers generate`: produce for `seconds` and print the count."""
    if customers < 1 or rate <= 0 or seconds < 0 or not 0 <= malformed_share <= 1:
        print(
            "need --customers >= 1, --rate > 0, --seconds >= 0, 0 <= --malformed-share <= 1",
            file=sys.stderr,
        )
        return 2
    stats = ProduceStats()
    code = 0
    try:
        asyncio.run(_generate(settings, customers, rate, seconds, malformed_share, seed, stats))
    except TopicLayoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"error: cannot produce to {settings.broker}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    print(
        f"produced {stats.total} messages to {settings.events_topic}: "
        f"{stats.valid} events, {stats.malformed} malformed",
        flush=True,
    )
    return code
