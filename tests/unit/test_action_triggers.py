"""Built-in action triggers: which events propose a contact, and with what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.candidate import Category
from schemas.event import Event, event_model_for
from streams.core.action_triggers import fire_action_triggers
from streams.core.customer_state import StateLimits, new_state
from streams.core.journey import journey_step

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LIMITS = StateLimits()


def event(
    event_type: str,
    event_id: str = "evt-1",
    customer: str = "cust-42",
    occurred_at: datetime = T0,
    **properties: Any,
) -> Event:
    return event_model_for(event_type).model_validate(
        {
            "event_id": event_id,
            "type": event_type,
            "customer_id": customer,
            "occurred_at": occurred_at.isoformat(),
            "properties": properties,
        }
    )


def registered(**overrides: Any) -> Event:
    return event("registered", email="anna@example.com", first_name="Anna", **overrides)


def order_placed(event_id: str = "evt-o1", order_id: str = "ord-5531", **overrides: Any) -> Event:
    return event(
        "order_placed",
        event_id=event_id,
        order_id=order_id,
        amount=104.47,
        currency="EUR",
        **overrides,
    )


def test_registration_proposes_welcome() -> None:
    ev = registered()
    [candidate] = journey_step(None, ev, LIMITS).candidates

    assert candidate.rule_id == "welcome"
    assert candidate.customer_id == "cust-42"
    assert candidate.event_id == ev.event_id
    assert "email" in candidate.channels
    assert candidate.payload["customer"]["first_name"] == "Anna"


def test_order_placed_proposes_transactional_order_thanks() -> None:
    ev = order_placed()
    [candidate] = journey_step(None, ev, LIMITS).candidates

    assert candidate.rule_id == "order_thanks"
    assert candidate.category is Category.TRANSACTIONAL
    assert candidate.event_id == ev.event_id
    assert candidate.payload["order"]["order_id"] == "ord-5531"
    assert candidate.payload["order"]["amount"] == pytest.approx(104.47)
    assert candidate.payload["order"]["currency"] == "EUR"
    # The payload reflects the state after the order.
    assert candidate.payload["customer"]["orders_count"] == 1


@pytest.mark.parametrize(
    "ev",
    [
        event("page_view", url="https://shop.example/"),
        event("visit"),
        event("cart_updated", items=[{"sku": "SKU-1"}]),
        event("loyalty.points_earned", points=10),
    ],
    ids=["page_view", "visit", "cart_updated", "custom"],
)
def test_other_events_propose_nothing(ev: Event) -> None:
    assert journey_step(None, ev, LIMITS).candidates == []


def test_action_id_is_deterministic_for_the_same_event() -> None:
    first = fire_action_triggers(order_placed(), new_state("cust-42"))
    # An equal event rebuilt from scratch (as after a redelivery), with a different state.
    later_state = new_state("cust-42")
    later_state.orders_count = 7
    again = fire_action_triggers(order_placed(), later_state)
    assert [c.action_id for c in first] == [c.action_id for c in again]


def test_action_id_differs_for_another_event_or_customer() -> None:
    base = fire_action_triggers(order_placed(), new_state("cust-42"))[0].action_id
    other_event = fire_action_triggers(
        order_placed(event_id="evt-o2", order_id="ord-6000"), new_state("cust-42")
    )[0].action_id
    other_customer = fire_action_triggers(order_placed(customer="cust-43"), new_state("cust-43"))[
        0
    ].action_id
    assert len({base, other_event, other_customer}) == 3


def test_action_ids_differ_between_rules_for_the_same_event_id() -> None:
    welcome = fire_action_triggers(registered(event_id="evt-x"), new_state("cust-42"))
    thanks = fire_action_triggers(order_placed(event_id="evt-x"), new_state("cust-42"))
    assert welcome[0].action_id != thanks[0].action_id


@pytest.mark.parametrize("ev", [registered(), order_placed()], ids=["welcome", "order_thanks"])
def test_candidate_is_timed_by_event_time_and_expires_after_it(ev: Event) -> None:
    [candidate] = journey_step(None, ev, LIMITS).candidates
    assert candidate.triggered_at == ev.occurred_at
    assert candidate.expires_at > candidate.triggered_at


def test_duplicate_event_proposes_nothing_again() -> None:
    ev = order_placed()
    state = journey_step(None, ev, LIMITS).state
    assert journey_step(state, ev, LIMITS).candidates == []


def test_same_order_under_two_event_ids_is_thanked_once() -> None:
    first = journey_step(None, order_placed(event_id="evt-a"), LIMITS)
    again = journey_step(
        first.state,
        order_placed(event_id="evt-b", occurred_at=T0 + timedelta(seconds=5)),
        LIMITS,
    )
    action_ids = {c.action_id for c in first.candidates + again.candidates}
    assert len(action_ids) == 1
