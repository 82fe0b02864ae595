"""Create the engine's topics with the intended partition count, or explain a mismatch.

Auto-created topics get the broker's default partition count, and Faust then
refuses to start (`PartitionsMismatch`) against its co-partitioned changelogs,
so we create them ourselves before the worker starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import Settings
from streams.shell.kafka_connection import client_kwargs

log = logging.getLogger(__name__)


class TopicLayoutError(RuntimeError):
    pass


def engine_topics(settings: Settings, channels: Iterable[str] = ()) -> list[str]:
    names = [
        settings.events_topic,
        settings.dlq_topic,
        settings.candidates_topic,
        settings.timers_topic,
        settings.decisions_topic,
        settings.feedback_topic,
    ]
    for channel in sorted({*settings.channels, *channels}):
        names.append(f"{settings.actions_topic_prefix}{channel}")
    return names


COPARTITIONED = ("events_topic", "candidates_topic", "timers_topic", "feedback_topic")


async def ensure_topics(
    settings: Settings, wait_seconds: float = 30.0, channels: Iterable[str] = ()
) -> dict[str, int]:
    """Create missing topics; return every engine topic's partition count."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=10_000)
        try:
            await admin.start()
            return await _ensure(admin, settings, channels)
        except (KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise TopicLayoutError(f"cannot reach the broker {settings.broker}: {exc}") from exc
            log.warning("broker not reachable yet (%s); retrying", exc)
            await asyncio.sleep(1.0)
        finally:
            await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    # Describe only topics that exist: a metadata request for a missing topic
    # may auto-create it with the broker's default partition count.
    present = set(await admin.list_topics())
    topics = [t for t in topics if t in present]
    if not topics:
        return {}
    counts: dict[str, int] = {}
    for topic in await admin.describe_topics(topics):
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


async def _ensure(
    admin: AIOKafkaAdminClient, settings: Settings, channels: Iterable[str]
) -> dict[str, int]:
    wanted = engine_topics(settings, channels)
    existing = await _partition_counts(admin, wanted)
    missing = [t for t in wanted if t not in existing]
    if missing:
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
            await admin.create_topics(
                [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
            )
        log.info("created topics %s with %d partitions", missing, settings.partitions)
        existing = await _partition_counts(admin, wanted)
    for topic in (getattr(settings, name) for name in COPARTITIONED):
        count = existing.get(topic)
        if count is not None and count != settings.partitions:
            raise TopicLayoutError(
                f"topic {topic!r} has {count} partitions but CRM_PARTITIONS={settings.partitions}; "
                "every topic and table is co-partitioned by customer, so set CRM_PARTITIONS="
                f"{count} (or recreate the topic)"
            )
    return existing
