"""The orchestrator agent's shell survives what channel services may put on crm.feedback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from schemas.candidate import Candidate, Category, Reason
from schemas.journey_step import JourneyStep
from schemas.policy import Policy
from schemas.profile_record import ProfileRecord
from schemas.state import ConsentEntry
from schemas.step import OrchestratorState, ProfileSnapshot, StepMessage
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


class FakeTopic:
    def __init__(self) -> None:
        self.values: list[dict[str, Any]] = []

    async def send(self, key: bytes, value: bytes, partition: int) -> Any:
        self.values.append(orjson.loads(value))
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sent.set_result(None)
        return sent


def test_a_step_read_from_crm_candidates_is_decided_on_the_profile_it_carries() -> None:
    # The path of CRM_DIRECT_DELIVERY=false and of older versions: a step from the topic.
    # Without its profile (consent, double opt-in) this marketing email is suppressed.
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)  # 11:00 in Berlin
    decisions, email = FakeTopic(), FakeTopic()
    table = FakeTable()
    handler = OrchestratorAgent(
        Settings(send_horizon_seconds=0),
        Orchestrator(Policy(), {}),
        CoalescingChangelog(table, 100),
        TimerIndex(),
        decisions=decisions,
        action_topics={"email": email},
    )
    profile = ProfileSnapshot(
        timezone="Europe/Berlin",
        consent={"email": ConsentEntry(granted=True, category="marketing", changed_at=at)},
        email_confirmed_at=at,
    )
    candidate = Candidate(
        action_id="winback-c-1-1",
        rule_id="winback",
        customer_id="c-1",
        channels=["email"],
        template="winback_v1",
        category=Category.MARKETING,
        priority=40,
        triggered_at=at,
        expires_at=at + timedelta(days=3),
        reason=Reason(code="inactivity", text="no order for 90 days"),
    )
    step = StepMessage(customer_id="c-1", at=at, profile=profile, candidates=[candidate])
    message = SimpleNamespace(
        topic=Settings().candidates_topic,
        partition=0,
        offset=3,
        key=b"c-1",
        value=step.model_dump_json().encode(),
    )
    asyncio.run(handler.handle(message))
    assert [(d["action_id"], d["outcome"]) for d in decisions.values] == [("winback-c-1-1", "sent")]
    assert [a["action_id"] for a in email.values] == ["winback-c-1-1"]
    assert table.data[b"c-1"].profile == ProfileRecord.of(profile)
