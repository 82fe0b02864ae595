"""A recovered value read without decoding says what the decoded state says.

The worker rebuilds its due-time index, pending-timer counts and the population's
order gaps from the changelog bytes after a recovery; a customer is decoded only
when an agent touches it. If the two readings differed, a timer would be indexed
at the wrong time (fired late, or never).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from engine_helpers import default_engine

from schemas.state import CustomerState
from schemas.step import OrchestratorState
from streams.core.decoding import Rejection, decode_event
from streams.core.orchestrator import event_steps
from streams.core.recovered_state import (
    NOTHING,
    UnreadableState,
    contacts_held,
    customer_held,
)
from streams.demo.history import REALISTIC, generate_history
from streams.shell.state_codec import PydanticCodec
from streams.simulator import FAR_FUTURE, NO_SKEW_LIMIT, orchestrator_for


def _states() -> tuple[dict[str, CustomerState], dict[str, OrchestratorState]]:
    """Customers after 60 days of a realistic history, timers and deferrals pending."""
    engine = default_engine()
    orchestrator = orchestrator_for(engine)
    end = datetime(2026, 6, 1, tzinfo=UTC)
    states: dict[str, CustomerState] = {}
    contacts: dict[str, OrchestratorState] = {}
    for raw in generate_history(300, 60, end, seed=11, mix=REALISTIC):
        value = orjson.dumps(raw)
        event = decode_event(raw["customer_id"].encode(), value, NO_SKEW_LIMIT, FAR_FUTURE)
        assert not isinstance(event, Rejection), event
        step = engine.on_event(states.get(event.customer_id), event)
        if step.duplicate:
            continue
        states[event.customer_id] = step.state
        for message in event_steps(orchestrator, step, event.occurred_at, event.type):
            done = orchestrator.on_step(contacts.get(event.customer_id), message)
            contacts[event.customer_id] = done.state
    return states, contacts


def test_customers_read_from_changelog_bytes_match_their_decoded_state() -> None:
    states, _ = _states()
    codec = PydanticCodec(CustomerState)
    with_timers = with_orders = 0
    for state in states.values():
        raw = codec.dumps(state)
        held = customer_held(raw)
        assert held == customer_held(state)
        assert held == customer_held(CustomerState.model_validate_json(raw))
        with_timers += held.deadlines > 0
        with_orders += len(held.order_times) > 1
    # The comparison means something only if the states carry what is compared.
    assert with_timers > 100
    assert with_orders > 10


def test_contacts_read_from_changelog_bytes_match_their_decoded_state() -> None:
    _, contacts = _states()
    codec = PydanticCodec(OrchestratorState)
    deferred = 0
    for state in contacts.values():
        raw = codec.dumps(state)
        assert contacts_held(raw) == contacts_held(state)
        deferred += contacts_held(raw).next_due is not None
    assert deferred > 0


def test_next_due_is_the_earliest_timer_and_cancelled_orders_do_not_count() -> None:
    due = datetime(2026, 3, 1, 12, tzinfo=UTC)
    state = CustomerState.model_validate(
        {
            "customer_id": "c-1",
            "timers": [
                {
                    "timer_id": f"t{i}",
                    "rule_id": "r",
                    "due_at": due + timedelta(hours=i),
                    "anchor_at": due - timedelta(days=1),
                    "occurrence": f"o{i}",
                }
                for i in range(3)
            ],
            "recent_orders": [
                {"order_id": "a", "amount": 1, "placed_at": due - timedelta(days=9)},
                {
                    "order_id": "b",
                    "amount": 1,
                    "placed_at": due - timedelta(days=5),
                    "cancelled": True,
                },
                {"order_id": "c", "amount": 1, "placed_at": due - timedelta(days=2)},
            ],
        }
    )
    held = customer_held(PydanticCodec(CustomerState).dumps(state))
    assert held.next_due == due
    assert held.deadlines == 3
    assert held.order_times == (due - timedelta(days=9), due - timedelta(days=2))
    assert customer_held(b'{"customer_id":"c-2"}') == NOTHING


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"customer_id":"c","timers":{"a":1}}',
        b'{"customer_id":"c","timers":[{"rule_id":"r"}]}',
        b'{"customer_id":"c","timers":[{"due_at":12}]}',
        b'{"customer_id":"c","timers":[{"due_at":"yesterday"}]}',
        b'{"customer_id":"c","timers":[{"due_at":"2026-03-01T12:00:00"}]}',
        b'{"customer_id":"c","timers":[{"due_at":"0001-01-01T00:00:00+01:00"}]}',
        b'{"customer_id":"c","timers":[{"due_at":"9999-12-31T23:00:00Z"}]}',
    ],
)
def test_a_value_our_codec_did_not_write_is_reported_not_guessed(raw: bytes) -> None:
    with pytest.raises(UnreadableState):
        customer_held(raw)
