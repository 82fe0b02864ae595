"""The orchestrator agent's shell survives what channel services may put on crm.feedback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from schemas.journey_step import JourneyStep
from schemas.policy import Policy
from schemas.step import OrchestratorState
from streams.core.orchestrator import Orchestrator
from streams.settings import Settings
from streams.shell import metrics
from streams.shell.coalescing_changelog import CoalescingChangelog, PartitionLost
from streams.shell.orchestrator_agent import OrchestratorAgent
from streams.shell.timer_index import TimerIndex


class FakeTable:
    name = "contacts"

    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}
        self.sent: list[tuple[int, bytes]] = []

    def send_changelog(self, partition: int, key: bytes, value: Any) -> None:
        self.sent.append((partition, key))


def agent() -> tuple[OrchestratorAgent, FakeTable]:
    table = FakeTable()
    contacts = CoalescingChangelog(table, 100)
    handler = OrchestratorAgent(
        Settings(),
        Orchestrator(Policy(), {}),
        contacts,
        TimerIndex(),
        decisions=None,
        action_topics={},
    )
    return handler, table


def feedback(key: bytes | None, value: bytes | None) -> Any:
    return SimpleNamespace(topic="crm.feedback", partition=0, offset=7, key=key, value=value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"c-1", b"[]"),
        (b"c-1", b'"unsubscribed"'),
        (b"c-1", b"null"),
        (b"c-1", b"{bad"),
        (None, b'{"type": "unsubscribed", "channel": "email"}'),
        (b"c-1", None),
        (b"c-1", b'{"type": "unsubscribed"}'),
    ],
)
def test_bad_feedback_is_counted_not_fatal(key: bytes | None, value: bytes | None) -> None:
    handler, table = agent()
    asyncio.run(handler.handle(feedback(key, value)))
    assert table.data == {}


def test_an_unsubscribe_is_remembered_for_the_customer() -> None:
    handler, table = agent()
    value = orjson.dumps(
        {
            "customer_id": "c-1",
            "type": "unsubscribed",
            "channel": "email",
            "occurred_at": "2026-11-20T10:00:00Z",
        }
    )
    asyncio.run(handler.handle(feedback(b"c-1", value)))
    (block,) = table.data[b"c-1"].history.blocks
    assert (block.channel, block.kind.value) == ("email", "unsubscribed")


def test_a_policy_failure_in_a_journey_step_is_counted_and_the_journey_goes_on() -> None:
    handler, table = agent()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    handler.contacts.get = broken  # type: ignore[method-assign]
    counter = metrics.ORCHESTRATOR_INVALID.labels(handler.settings.candidates_topic)
    before = counter._value.get()
    step = JourneyStep(customer_id="c-1", at=datetime(2026, 11, 20, 10, tzinfo=UTC), candidates=[])
    asyncio.run(handler.decide_now(0, b"c-1", step))  # must not raise into the journey
    assert counter._value.get() == before + 1
    assert table.data == {}


def test_a_deferral_released_after_the_revoke_is_refused_not_a_policy_failure() -> None:
    # A revoke does not wait for the scanner: its write is refused (the partition's next
    # owner releases the deferral) and is no policy failure, which would page.
    handler, _ = agent()
    handler.contacts.put(0, b"c-1", OrchestratorState(customer_id="c-1"))
    handler.contacts.drop_partitions({0})
    invalid = metrics.ORCHESTRATOR_INVALID.labels(handler.settings.candidates_topic)
    refused = metrics.WRITES_AFTER_REVOKE.labels("contacts")
    before, refused_before = invalid._value.get(), refused._value.get()
    tick = JourneyStep(customer_id="c-1", at=datetime(2026, 11, 20, 10, tzinfo=UTC))
    with pytest.raises(PartitionLost):  # to the scanner's pass, which ends on it
        asyncio.run(handler.decide_now(0, b"c-1", tick))
    assert invalid._value.get() == before
    assert refused._value.get() == refused_before + 1
