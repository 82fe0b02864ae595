"""Events of one customer arriving out of order (up to minutes late): what the engine does.

Documented in the README ("Duplicates and late events from producers"): a late event
is applied with its own `occurred_at`; the state converges to the in-order state, and
with the default playbook the same trigger occurrences fire, because timers re-check
their rule against the state when they come due.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from schemas.event import Event
from tests.unit.engine_helpers import T0, Journey, days, default_engine, event, order

MINUTE = timedelta(minutes=1)


def scenario() -> list[Event]:
    return [
        event(
            "cart_updated", T0 - 3 * MINUTE, cart_value=30.0, items=[{"sku": "s", "price": 30.0}]
        ),
        event("registered", T0, email="c@example.org"),
        order(T0 + 5 * MINUTE, "o-1", 30.0),
        event("page_view", T0 + 6 * MINUTE, url="/thanks"),
        event("review_submitted", T0 + 8 * MINUTE, rating=5, order_id="o-1"),
    ]


def outcome(events: list[Event]) -> tuple[list[tuple[str, str]], dict[str, object]]:
    journey = Journey(default_engine())
    for ev in events:
        journey.send(ev)
    journey.advance(T0 + days(400))
    assert journey.state is not None
    state = journey.state
    facts = {
        "orders_count": state.orders_count,
        "total_spent": state.total_spent,
        "first_order_at": state.first_order_at,
        "last_order_at": state.last_order_at,
        "registered_at": state.registered_at,
        "first_seen_at": state.first_seen_at,
        "last_seen_at": state.last_seen_at,
        "events_count": state.events_count,
        "lifecycle_stage": state.lifecycle_stage,
    }
    return sorted((c.rule_id, c.action_id) for c in journey.candidates), facts


EVENTS = scenario()
"""Built once: event ids (and so action ids) are the same in every arrival order."""
IN_ORDER = outcome(EVENTS)


@pytest.mark.parametrize(
    "arrival", list(itertools.permutations(range(5)))[1::7], ids=lambda p: "".join(map(str, p))
)
def test_any_arrival_order_within_minutes_gives_the_in_order_triggers_and_state(
    arrival: tuple[int, ...],
) -> None:
    assert outcome([EVENTS[i] for i in arrival]) == IN_ORDER


def test_an_order_that_arrives_before_its_registration_still_prevents_the_nudge() -> None:
    fired, _ = outcome([EVENTS[2], EVENTS[1]])
    assert "first_order_nudge" not in {rule for rule, _ in fired}
    assert {"welcome", "order_thanks"} <= {rule for rule, _ in fired}


def test_a_cart_that_arrives_after_the_order_that_followed_it_is_not_abandoned() -> None:
    fired, _ = outcome([EVENTS[1], EVENTS[2], EVENTS[0]])
    assert "abandoned_cart" not in {rule for rule, _ in fired}
