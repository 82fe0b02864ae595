"""Customer state as the journey step folds events into it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.event import Event, event_model_for
from schemas.rules import RuleSet
from schemas.state import CustomerState
from streams.core.customer_state import StateLimits
from streams.core.engine import Engine, Step

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CUSTOMER = "cust-42"
_ids = itertools.count(1)


def journey_step(state: CustomerState | None, ev: Event, limits: StateLimits) -> Step:
    """The engine with no rules: just state transitions and dedupe."""
    return Engine(RuleSet(), limits=limits).on_event(state, ev)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(
    event_type: str,
    minutes: float = 0,
    *,
    event_id: str | None = None,
    customer: str = CUSTOMER,
    **properties: Any,
) -> Event:
    """A validated event, built through the same contract models the decoder uses."""
    obj = {
        "event_id": event_id or f"evt-{next(_ids)}",
        "type": event_type,
        "customer_id": customer,
        "occurred_at": at(minutes).isoformat(),
        "properties": properties,
    }
    return event_model_for(event_type).model_validate(obj)


def order(minutes: float, order_id: str, amount: float, **props: Any) -> Event:
    return event("order_placed", minutes, order_id=order_id, amount=amount, **props)


def replay(
    *events: Event, limits: StateLimits | None = None, state: CustomerState | None = None
) -> CustomerState:
    limits = limits or StateLimits()
    for ev in events:
        state = journey_step(state, ev, limits).state
    assert state is not None
    return state


# --- lifecycle -------------------------------------------------------------------------


def test_first_event_creates_state_for_its_customer() -> None:
    outcome = journey_step(None, event("visit", 5), StateLimits())
    assert outcome.state.customer_id == CUSTOMER
    assert not outcome.duplicate
    assert outcome.state.events_count == 1
    assert outcome.state.first_seen_at == outcome.state.last_seen_at == at(5)


def test_registration_sets_registered_at_and_profile() -> None:
    state = replay(
        event(
            "registered",
            10,
            email="anna@example.com",
            first_name="Anna",
            locale="de-DE",
            timezone="Europe/Berlin",
            tariff="basic",
        )
    )
    assert state.registered_at == at(10)
    assert state.profile.email == "anna@example.com"
    assert state.profile.first_name == "Anna"
    assert state.profile.locale == "de-DE"
    assert state.profile.timezone == "Europe/Berlin"
    assert state.profile.tariff == "basic"
    assert state.email_confirmed_at is None


def test_email_confirmed_sets_double_opt_in() -> None:
    state = replay(
        event("registered", 0, email="anna@example.com"),
        event("email_confirmed", 7, email="anna@example.com"),
    )
    assert state.email_confirmed_at == at(7)


def test_visits_and_page_views_are_counted() -> None:
    state = replay(
        event("visit", 0),
        event("page_view", 1, url="https://shop.example/"),
        event("page_view", 2, url="https://shop.example/shoes"),
        event("visit", 60),
        event("page_view", 61),
        event("visit", 120),
    )
    assert state.visits_count == 3
    assert state.last_visit_at == at(120)
    assert state.page_views_count == 3
    assert state.last_page_view_at == at(61)
    assert state.events_count == 6


# --- cart and orders -------------------------------------------------------------------


def test_cart_updated_then_cleared_by_empty_items() -> None:
    items = [
        {"sku": "SKU-1", "category": "shoes", "quantity": 2, "price": 10.0},
        {"sku": "SKU-2", "category": "socks", "price": 5.5},
    ]
    state = replay(event("cart_updated", 5, cart_id="cart-7", items=items, currency="EUR"))
    assert state.cart is not None
    assert state.cart.cart_id == "cart-7"
    assert [(line.sku, line.quantity) for line in state.cart.items] == [("SKU-1", 2), ("SKU-2", 1)]
    assert state.cart.value == pytest.approx(2 * 10.0 + 5.5)  # computed when not sent
    assert state.cart.currency == "EUR"
    assert state.cart.updated_at == at(5)

    state = replay(event("cart_updated", 9, cart_id="cart-7", items=[]), state=state)
    assert state.cart is None


def test_cart_value_sent_by_producer_is_kept() -> None:
    items = [{"sku": "SKU-1", "price": 10.0}]
    state = replay(event("cart_updated", 5, items=items, value=8.0))
    assert state.cart is not None
    assert state.cart.value == 8.0


def test_late_older_cart_update_does_not_replace_newer_cart() -> None:
    state = replay(
        event("cart_updated", 10, items=[{"sku": "NEW"}]),
        event("cart_updated", 5, items=[{"sku": "OLD"}]),
    )
    assert state.cart is not None
    assert [line.sku for line in state.cart.items] == ["NEW"]


def test_order_placed_updates_orders_and_clears_cart() -> None:
    state = replay(
        event("cart_updated", 0, items=[{"sku": "SKU-1", "category": "shoes", "price": 59.9}]),
        order(
            5,
            "ord-1",
            59.9,
            currency="EUR",
            items=[
                {"sku": "SKU-1", "category": "shoes", "price": 59.9},
                {"sku": "SKU-9", "category": "care"},
            ],
        ),
        order(30, "ord-2", 20.1, currency="USD", items=[{"sku": "SKU-3", "category": "shoes"}]),
    )
    assert state.orders_count == 2
    assert state.first_order_at == at(5)
    assert state.last_order_at == at(30)
    assert state.total_spent == pytest.approx(59.9 + 20.1)
    assert state.last_order_currency == "USD"
    assert state.category_last_purchase == {"shoes": at(30), "care": at(5)}
    assert [o.order_id for o in state.recent_orders] == ["ord-1", "ord-2"]
    assert state.cart is None


def test_same_order_under_two_event_ids_is_counted_once() -> None:
    state = replay(
        order(5, "ord-1", 59.9, event_id="evt-a"),
        order(6, "ord-1", 59.9, event_id="evt-b"),
    )
    assert state.orders_count == 1
    assert state.total_spent == pytest.approx(59.9)
    assert len(state.recent_orders) == 1


def test_order_cancelled_subtracts_amount_and_decrements_count() -> None:
    state = replay(
        order(5, "ord-1", 59.9),
        order(10, "ord-2", 20.0),
        event("order_cancelled", 20, order_id="ord-1", reason="changed_mind"),
    )
    assert state.orders_count == 1
    assert state.total_spent == pytest.approx(20.0)
    assert state.cancelled_orders_count == 1
    cancelled = {o.order_id: o.cancelled for o in state.recent_orders}
    assert cancelled == {"ord-1": True, "ord-2": False}


def test_cancellation_of_unknown_order_does_not_touch_totals() -> None:
    state = replay(order(5, "ord-1", 59.9), event("order_cancelled", 20, order_id="ord-unknown"))
    assert state.orders_count == 1
    assert state.total_spent == pytest.approx(59.9)
    assert state.cancelled_orders_count == 1


def test_same_cancellation_under_two_event_ids_is_counted_once() -> None:
    state = replay(
        order(5, "ord-1", 59.9),
        event("order_cancelled", 20, event_id="evt-c1", order_id="ord-1"),
        event("order_cancelled", 21, event_id="evt-c2", order_id="ord-1"),
    )
    assert state.orders_count == 0
    assert state.total_spent == 0
    assert state.cancelled_orders_count == 1


def test_recent_orders_are_bounded_keeping_the_latest() -> None:
    limits = StateLimits(recent_orders=3)
    state = replay(*(order(m, f"ord-{m}", 10.0) for m in (1, 2, 3, 4, 5)), limits=limits)
    assert [o.order_id for o in state.recent_orders] == ["ord-3", "ord-4", "ord-5"]
    # Totals still cover every order, not just the remembered ones.
    assert state.orders_count == 5
    assert state.total_spent == pytest.approx(50.0)


def test_customer_first_seen_through_an_order_has_orders_but_no_registration() -> None:
    state = replay(order(5, "ord-1", 42.0, currency="EUR"))
    assert state.customer_id == CUSTOMER
    assert state.registered_at is None
    assert state.email_confirmed_at is None
    assert state.orders_count == 1
    assert state.first_order_at == state.last_order_at == at(5)
    assert state.total_spent == pytest.approx(42.0)
    assert state.first_seen_at == at(5)


# --- order tolerance ---------------------------------------------------------------------


def test_late_events_do_not_roll_back_last_and_take_earliest_first() -> None:
    state = replay(
        order(60, "ord-late-sent", 10.0),
        event("visit", 90),
        order(10, "ord-early", 5.0),  # arrives late
        event("visit", 30),  # arrives late
    )
    assert state.last_order_at == at(60)
    assert state.first_order_at == at(10)
    assert state.last_seen_at == at(90)
    assert state.first_seen_at == at(10)
    assert state.last_visit_at == at(90)
    assert state.orders_count == 2


def test_late_order_does_not_clear_a_newer_cart() -> None:
    state = replay(
        event("cart_updated", 30, items=[{"sku": "SKU-2"}]),
        order(10, "ord-1", 5.0),  # placed before the current cart existed
    )
    assert state.cart is not None


def test_late_cart_update_does_not_resurrect_a_cart_converted_by_an_order() -> None:
    state = replay(
        event("cart_updated", 0, items=[{"sku": "SKU-1", "price": 10.0}]),
        order(5, "ord-1", 10.0),
        event("cart_updated", 2, items=[{"sku": "SKU-1", "price": 10.0}]),  # arrives late
    )
    assert state.cart is None


def test_registration_arriving_after_later_activity_keeps_event_time() -> None:
    state = replay(event("visit", 50), event("registered", 20, email="a@example.com"))
    assert state.registered_at == at(20)
    assert state.first_seen_at == at(20)
    assert state.last_seen_at == at(50)


def test_consent_keeps_the_latest_by_event_time_per_channel() -> None:
    state = replay(
        event("consent_changed", 10, channel="email", granted=True, source="signup"),
        event("consent_changed", 12, channel="sms", granted=True),
        event("consent_changed", 5, channel="email", granted=False),  # older, arrives late
    )
    assert state.consent["email"].granted is True
    assert state.consent["email"].changed_at == at(10)
    assert state.consent["email"].source == "signup"
    assert state.consent["sms"].granted is True

    state = replay(event("consent_changed", 20, channel="email", granted=False), state=state)
    assert state.consent["email"].granted is False
    assert state.consent["email"].changed_at == at(20)
    assert state.consent["sms"].granted is True


def test_review_arriving_late_does_not_replace_latest_rating() -> None:
    state = replay(
        event("review_submitted", 20, rating=2),
        event("review_submitted", 10, rating=5),
    )
    assert state.reviews_count == 2
    assert state.last_review_rating == 2
    assert state.last_review_at == at(20)


# --- profile, appointments, custom ---------------------------------------------------------


def test_profile_updated_merges_without_erasing_other_fields() -> None:
    state = replay(
        event("registered", 0, email="anna@example.com", first_name="Anna", locale="de-DE"),
        event("profile_updated", 10, timezone="Europe/Berlin", tier="gold", birthday="1990-05-17"),
    )
    assert state.profile.email == "anna@example.com"
    assert state.profile.first_name == "Anna"
    assert state.profile.locale == "de-DE"
    assert state.profile.timezone == "Europe/Berlin"
    assert state.profile.tier == "gold"
    assert state.profile.birthday is not None
    assert state.profile.birthday.isoformat() == "1990-05-17"

    state = replay(event("profile_updated", 20, first_name="Anne"), state=state)
    assert state.profile.first_name == "Anne"
    assert state.profile.email == "anna@example.com"
    assert state.profile.tier == "gold"


def test_rescheduled_appointment_replaces_the_previous_time() -> None:
    first = at(60 * 24)
    moved = at(60 * 48)
    state = replay(
        event("appointment_scheduled", 0, appointment_id="apt-1", starts_at=first.isoformat()),
        event("appointment_scheduled", 5, appointment_id="apt-2", starts_at=first.isoformat()),
        event(
            "appointment_scheduled",
            10,
            appointment_id="apt-1",
            starts_at=moved.isoformat(),
            service="fitting",
        ),
    )
    by_id = {a.appointment_id: a for a in state.appointments}
    assert set(by_id) == {"apt-1", "apt-2"}
    assert by_id["apt-1"].starts_at == moved
    assert by_id["apt-1"].service == "fitting"


def test_custom_event_types_are_counted() -> None:
    state = replay(
        event("loyalty.points_earned", 1, points=10),
        event("loyalty.points_earned", 3, points=5),
        event("newsletter-opened", 2),
    )
    assert state.custom_events["loyalty.points_earned"].count == 2
    assert state.custom_events["loyalty.points_earned"].last_at == at(3)
    assert state.custom_events["newsletter-opened"].count == 1


def test_custom_event_types_are_bounded_dropping_the_stalest() -> None:
    limits = StateLimits(custom_event_types=2)
    state = replay(
        event("type-a", 1),
        event("type-b", 2),
        event("type-a", 3),
        event("type-c", 4),
        limits=limits,
    )
    assert set(state.custom_events) == {"type-a", "type-c"}
    assert state.custom_events["type-a"].count == 2
    assert state.events_count == 4


# --- dedupe --------------------------------------------------------------------------------


def test_repeated_event_id_is_a_duplicate_and_changes_nothing() -> None:
    limits = StateLimits()
    placed = order(5, "ord-1", 59.9, event_id="evt-1")
    state = journey_step(None, placed, limits).state
    before = state.model_dump()

    outcome = journey_step(state, placed, limits)

    assert outcome.duplicate
    assert outcome.candidates == []
    assert outcome.state.model_dump() == before


def test_duplicate_is_detected_by_event_id_even_if_content_differs() -> None:
    state = replay(event("visit", 5, event_id="evt-1"))
    outcome = journey_step(state, event("page_view", 9, event_id="evt-1"), StateLimits())
    assert outcome.duplicate
    assert outcome.state.page_views_count == 0


def test_dedupe_memory_is_bounded_and_forgets_the_oldest() -> None:
    limits = StateLimits(dedupe_window=3)
    events = [event("visit", m, event_id=f"evt-{m}") for m in range(1, 6)]
    state = replay(*events, limits=limits)

    assert len(state.recent_event_ids) == 3
    newest = journey_step(state, events[-1], limits)
    assert newest.duplicate
    oldest = journey_step(state, events[0], limits)
    assert not oldest.duplicate  # forgotten, so applied again
    assert oldest.state.visits_count == 6
