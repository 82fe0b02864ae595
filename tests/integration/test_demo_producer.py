"""The demo's event generator (also the soak's load) keeps the rate it is asked for
while it sends what is due once per tick, and every event it counts reaches the topic."""

from __future__ import annotations

import pytest

from streams.demo.producer import produce_journeys
from streams.settings import Settings
from streams.shell.embedded_broker import EmbeddedBroker
from streams.shell.topics import ensure_topics
from tests.integration.kafka_io import consume_until

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("tick_seconds", [0.05, 0.5])
async def test_generator_keeps_its_rate_and_delivers_every_event(
    broker: EmbeddedBroker, tick_seconds: float
) -> None:
    settings = Settings(
        broker=broker.url, events_topic=f"demo-producer-{int(tick_seconds * 100)}", partitions=2
    )
    await ensure_topics(settings)
    rate, seconds = 1_000.0, 3.0
    stats = await produce_journeys(
        settings,
        customers=500,
        rate=rate,
        seconds=seconds,
        malformed_share=0.02,
        tick_seconds=tick_seconds,
    )
    # What is due is sent at each tick until `seconds` pass: at most one tick short.
    assert rate * (seconds - tick_seconds) <= stats.total <= rate * seconds + 1
    assert stats.malformed > 0
    received = await consume_until(
        broker.bootstrap, [settings.events_topic], lambda records: len(records) >= stats.total
    )
    assert len(received) == stats.total
