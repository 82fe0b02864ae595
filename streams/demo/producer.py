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
    tick_seconds: float = TICK_SECONDS,
) -> ProduceStats:
    """Send `rate` events per second until `seconds` pass or `stop` is set.

    Keys are the customer id (UTF-8), so a customer's events stay in order on
    one partition. Each message is malformed with probability `malformed_share`.
    What is due is sent once per `tick_seconds`, so each tick makes one record batch
    per partition: the embedded broker slows down with the number of batches it holds
    (embedded_broker.LONG_RUN_ENV), and sending each event as it came due made one
    batch per event at a few thousand events/s.
    """
    if rate <= 0 or tick_seconds <= 0:
        raise ValueError("rate and tick_seconds must be positive")
    stats = stats if stats is not None else ProduceStats()
    stop = stop if stop is not None else asyncio.Event()
    journeys = JourneyGenerator(seed, customers)
    bad_rng = random.Random(seed + 1)
    # One batch per partition per tick: the tick's events are generated first, then sent
    # together, within the linger.
    producer: Any = AIOKafkaProducer(
        **client_kwargs(settings),
        linger_ms=min(int(tick_seconds * 1000), 100),
        max_batch_size=512 * 1024,
        acks=1,
    )
    await producer.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    in_flight: list[asyncio.Future[Any]] = []
    try:
        while not stop.is_set():
            elapsed = loop.time() - started
            if seconds is not None and elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1 - sent
            messages = []
            for _ in range(max(due, 0)):
                now = datetime.now(UTC)
                if bad_rng.random() < malformed_share:
                    messages.append(malformed_message(bad_rng, now))
                    stats.malformed += 1
                else:
                    event = journeys.next_event(now)
                    messages.append((event["customer_id"].encode(), orjson.dumps(event)))
                    stats.valid += 1
            deliveries = [
                await producer.send(settings.events_topic, key=key, value=value)
                for key, value in messages
            ]
            sent += len(messages)
            # Back-pressure: the previous tick's events are acknowledged before going on.
            await asyncio.gather(*in_flight)
            in_flight = deliveries
            next_tick = started + (int((loop.time() - started) / tick_seconds) + 1) * tick_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(next_tick - loop.time(), 0.0))
        await asyncio.gather(*in_flight)
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
