"""Send raw records to one topic, returning the Kafka client's own future for each.

The agents send bytes they encoded themselves, to an explicit partition. Faust's
`Topic.send` would wrap each record in a `PendingMessage` and a `FutureMessage`,
run the key and value through its serializer chain (raw here), look the
producer up behind a stampede lock, call the send sensors and chain a callback
to resolve its own future: a third of the cost of a send, and the pipeline
sends several records per event. `Publisher` goes to the same producer Faust
would use (the transaction manager under exactly-once), so what reaches the
broker and how failures surface is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Publisher:
    def __init__(self, app: Any, topic: str) -> None:
        self.app = app
        self.topic = topic
        self._producer: Any = None

    async def send(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """The record's delivery future: resolves to its `RecordMetadata` once the
        broker acknowledged it, or to the error that made it fail."""
        producer = self._producer
        if producer is None:
            # Started once (Faust starts it with the app); the producer or transaction
            # manager object stays the same for the app's life.
            producer = self._producer = await self.app.maybe_start_producer()
        sent: asyncio.Future[Any] = await producer.send(
            self.topic, key, value, partition, None, headers
        )
        return sent
