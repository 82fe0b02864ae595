"""The order a changelog flush keeps: outputs on the broker, then state, then acks.

A changelog record says "these events were processed" (their event ids, the action
ids decided). If it reached the broker before the candidates or decisions those
events produced, a worker killed in between leaves a state that dedupes the
replayed input while its output was never published: a decision lost for good.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.shell.coalescing_changelog import CoalescingChangelog


class Log:
    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()


class FakeProducer:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.unacked: list[str] = []

    def send(self, output: str) -> None:
        self.unacked.append(output)

    async def flush(self) -> None:
        # Like aiokafka: waits for what was sent before the call.
        pending, self.unacked = self.unacked, []
        await self.log.gate.wait()
        for output in pending:
            self.log.entries.append(("output acked", output))


class FakeTable:
    value_serializer = "json"

    def __init__(self, log: Log) -> None:
        self.log = log
        self.data: dict[bytes, Any] = {}
        self.app = SimpleNamespace(producer=FakeProducer(log))

    def send_changelog(
        self, partition: int, key: bytes, value: bytes, value_serializer: str
    ) -> None:
        assert value_serializer == "raw"
        self.log.entries.append(("changelog", (key, orjson.loads(value))))


class FakeStream:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def ack(self, event: Any) -> None:
        self.log.entries.append(("ack", event.message.offset))


def event(offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset))


def one_decision_held() -> tuple[Log, Any, CoalescingChangelog, Any]:
    """Event 7 decided a-1: its decision sent (not acked yet), the state changed, the
    event held."""
    log = Log()
    table = FakeTable(log)
    changelog = CoalescingChangelog(table, 100)
    stream = FakeStream(log)
    changelog.put(0, b"c-1", {"decided": ["a-1"]})
    table.app.producer.send("decision a-1")
    changelog.hold(stream, event(7))
    return log, table, changelog, stream


@pytest.mark.asyncio
async def test_outputs_are_acked_before_the_state_and_the_state_before_the_input() -> None:
    log, _, changelog, _ = one_decision_held()
    await changelog.flush()
    assert log.entries == [
        ("output acked", "decision a-1"),
        ("changelog", (b"c-1", {"decided": ["a-1"]})),
        ("ack", 7),
    ]


@pytest.mark.asyncio
async def test_state_changed_while_a_flush_waits_for_outputs_is_left_for_the_next() -> None:
    log, table, changelog, stream = one_decision_held()
    log.gate.clear()
    flushing = asyncio.create_task(changelog.flush())
    await asyncio.sleep(0)
    # The agent goes on while the flush waits: a new decision, not yet on the broker.
    changelog.put(0, b"c-1", {"decided": ["a-1", "a-2"]})
    table.app.producer.send("decision a-2")
    changelog.hold(stream, event(8))
    log.gate.set()
    await flushing
    assert log.entries[-2:] == [("changelog", (b"c-1", {"decided": ["a-1"]})), ("ack", 7)]
    await changelog.flush()
    assert log.entries[-3:] == [
        ("output acked", "decision a-2"),
        ("changelog", (b"c-1", {"decided": ["a-1", "a-2"]})),
        ("ack", 8),
    ]
