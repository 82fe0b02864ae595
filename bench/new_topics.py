"""Topics a bench stage or contender creates before it runs: with their partition count,
as the embedded broker gives auto-created topics its default of 4."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topics(
    bootstrap: str, names: list[str], partitions: int, configs: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=configs or {}) for name in names]
        )
    finally:
        await admin.close()
