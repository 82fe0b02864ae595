"""Work in flight when a rebalance takes its partition away: refused, not a bug.

The scanner's timers and deferrals are not events Faust waits for before it
revokes, so one can be handled when its partition is already gone. Its write is
refused (`PartitionLost`) and the partition's next owner does it again. An SRE
must not be paged for it: `CrmProcessingErrors` means a bug in crm-triggers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson

from schemas.dead_letter import RejectCode
from schemas.journey_step import JourneyStep
from schemas.policy import Policy
from streams.core.orchestrator import Orchestrator
from streams.settings import Settings
from streams.shell import metrics
from streams.shell.coalescing_changelog import CoalescingChangelog, PartitionLost
from streams.shell.due_scan import DueScan
from streams.shell.journey_agent import JourneyAgent
from streams.shell.timer_index import TimerIndex
from tests.unit.engine_helpers import default_engine

AT = datetime(2026, 11, 20, 10, tzinfo=UTC)


class FakeTable:
    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[bytes, Any] = {}


class Letters:
    """The dead-letter topic."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, key: bytes, value: bytes, **kwargs: Any) -> None:
        self.sent.append(value)


def counted(counter: Any) -> float:
    return float(counter._value.get())


def processing_errors() -> float:
    return counted(metrics.EVENTS_REJECTED.labels(RejectCode.PROCESSING_ERROR.value))


def test_the_scanners_pass_ends_quietly_at_a_refused_write() -> None:
    handled: list[bytes] = []

    async def act(partition: int, key: bytes, now: datetime) -> None:
        handled.append(key)
        if partition == 1:
            raise PartitionLost("customers", partition)

    due = [(0, b"c-1", AT), (1, b"c-2", AT), (2, b"c-3", AT)]
    assert not asyncio.run(DueScan(lambda: False).run(due, asyncio.Lock(), act))
    assert handled == [b"c-1", b"c-2"]


def test_an_event_whose_partition_was_revoked_midway_is_not_dead_lettered() -> None:
    settings = Settings()
    state = CoalescingChangelog(FakeTable("customers"), 100)
    letters = Letters()

    async def decide(partition: int, key: bytes, step: JourneyStep) -> None:
        return None

    journey = JourneyAgent(
        settings,
        default_engine(),
        state,
        TimerIndex(),
        letters,
        decide,
        Orchestrator(Policy(), {}),
    )
    state.drop_partitions({0})
    event = {
        "event_id": "e-1",
        "type": "registered",
        "customer_id": "c-1",
        "occurred_at": "2026-11-20T10:00:00Z",
    }
    message = SimpleNamespace(
        topic=settings.events_topic,
        partition=0,
        offset=7,
        key=b"c-1",
        value=orjson.dumps(event),
        timestamp=None,
    )
    errors_before = processing_errors()
    asyncio.run(journey.handle(message))
    # Left for the partition's new owner, which reads it again: no dead letter, no
    # processing error, nothing held to be acked here.
    assert letters.sent == []
    assert processing_errors() == errors_before
    state.hold(None, message, 0)
    assert state.pending_events == 0
