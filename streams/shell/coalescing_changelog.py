"""Coalesce table changelog writes and ack the events they cover afterwards.

A Faust `table[key] = value` produces one changelog record per event. Page
views of an active customer change the same key many times a second, so we
write `table.data` in place, remember which keys are dirty, and every N events
or T seconds send one changelog record per dirty key, then ack the buffered
events. Offsets are committed only for acked events and a commit flushes the
producer first, so a crash before a flush replays those events: at-least-once
still holds, with fewer changelog records.

Order of a flush: the outputs of the held events (candidates, decisions,
actions) acknowledged by the broker, then the changelog records, then the acks.
A changelog record says "these events were handled" (event ids seen, action ids
decided), so a replay after a crash skips them: it must never reach the broker
before what they produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from faust.serializers import codecs


class CoalescingChangelog:
    def __init__(
        self,
        table: Any,
        max_events: int,
        partition_of: dict[bytes, int] | None = None,
    ) -> None:
        self.table = table
        self.max_events = max_events
        self._dirty: dict[tuple[int, bytes], None] = {}
        self._held: list[tuple[Any, Any]] = []
        self.records_sent = 0
        self.closing = False
        self._lock = asyncio.Lock()
        self.partition_of: dict[bytes, int] = partition_of if partition_of is not None else {}
        """Which partition each customer key belongs to (to rebuild timer indexes)."""

    def get(self, key: bytes) -> Any:
        return self.table.data.get(key)

    def put(self, partition: int, key: bytes, value: Any) -> None:
        self.table.data[key] = value
        self.partition_of[key] = partition
        self._dirty[(partition, key)] = None

    def hold(self, stream: Any, event: Any) -> None:
        """Keep `event` un-acked until the changelog records it depends on are sent."""
        self._held.append((stream, event))

    @property
    def full(self) -> bool:
        # While the worker stops, nothing else will flush: flush after every event.
        return self.closing or len(self._held) >= self.max_events

    @property
    def pending_events(self) -> int:
        return len(self._held)

    async def flush(self) -> int:
        # One flush at a time: an overlapping one could ack events whose state
        # records the first is still about to send.
        async with self._lock:
            return await self._flush()

    async def _flush(self) -> int:
        dirty, self._dirty = self._dirty, {}
        held, self._held = self._held, []
        # The records are taken (encoded) now: events the agent processes while this
        # flush waits below are not acked by it, so their state must not be in it.
        records = self._encode(dirty)
        # Outputs first: the candidates, decisions and actions of the held events must
        # be on the broker before the state that says they were made. Otherwise a
        # crash in between leaves a changelog that dedupes the replayed input (event
        # id seen, action id decided) while its output was never published.
        await self.table.app.producer.flush()
        self._send(records)
        self.records_sent += len(dirty)
        for stream, event in held:
            await stream.ack(event)
        return len(dirty)

    def _encode(self, keys: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes, bytes]]:
        data = self.table.data
        serializer = self.table.value_serializer
        return [
            (partition, key, codecs.dumps(serializer, value))
            for partition, key in keys
            if (value := data.get(key)) is not None
        ]

    def _send(self, records: Iterable[tuple[int, bytes, bytes]]) -> None:
        for partition, key, value in records:
            self.table.send_changelog(partition, key, value, value_serializer="raw")

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget writes for partitions this worker no longer owns (the new owner replays)."""
        self._dirty = {pk: None for pk in self._dirty if pk[0] not in partitions}
        self._held = [(s, e) for s, e in self._held if e.message.partition not in partitions]
