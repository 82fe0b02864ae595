"""Action triggers: fire on an event, with conditions on the event and the customer's state."""

from __future__ import annotations

from engine_helpers import (
    CUSTOMER,
    T0,
    Journey,
    days,
    engine_of,
    event,
    hours,
    ids,
    order,
    rule,
)

BIG_ORDER = rule("big_order", "action", on="order_placed", when="event.amount > 100")
FIRST_ORDER = rule("first_order", "action", on="order_placed", when="state.orders_count == 1")
REPEAT_ORDER = rule("repeat_order", "action", on="order_placed", when="state.orders_count >= 2")
COMEBACK = rule(
    "comeback_visit",
    "action",
    on="visit",
    when="age(state.last_order_at) >= 90d",
    description="Visits the shop again 90 days or more after the last order",
)


def test_amount_over_threshold_fires_only_above_it() -> None:
    journey = Journey(engine_of(BIG_ORDER))
    assert journey.order(T0, amount=99.99) == []
    assert journey.order(T0 + days(1), amount=100.0) == []  # "over" 100: not at 100
    fired = journey.order(T0 + days(2), amount=100.01)
    assert ids(fired) == ["big_order"]


def test_candidate_carries_event_time_ttl_channels_and_triggering_event() -> None:
    text = rule(
        "thanks",
        "action",
        on="order_placed",
        ttl="2d",
        channels="[push, email]",
        priority=90,
        category="transactional",
    )
    journey = Journey(engine_of(text))
    placed = order(T0 + hours(5), "o-77", 42.5)
    (candidate,) = journey.send(placed)
    assert candidate.customer_id == CUSTOMER
    assert candidate.triggered_at == placed.occurred_at
    assert candidate.expires_at == placed.occurred_at + days(2)
    assert candidate.channels == ["push", "email"]
    assert candidate.priority == 90
    assert candidate.category.value == "transactional"
    assert candidate.event_id == placed.event_id
    assert candidate.payload["event"]["order_id"] == "o-77"
    assert candidate.payload["customer"]["orders_count"] == 1


def test_first_and_repeat_orders_are_told_apart_by_state() -> None:
    journey = Journey(engine_of(FIRST_ORDER, REPEAT_ORDER))
    assert ids(journey.order(T0, "o-1")) == ["first_order"]
    assert ids(journey.order(T0 + days(3), "o-2")) == ["repeat_order"]
    assert ids(journey.order(T0 + days(9), "o-3")) == ["repeat_order"]


def test_order_after_cancelling_the_only_order_counts_as_first_again() -> None:
    journey = Journey(engine_of(FIRST_ORDER, REPEAT_ORDER))
    journey.order(T0, "o-1")
    journey("order_cancelled", T0 + hours(1), order_id="o-1")
    assert ids(journey.order(T0 + days(1), "o-2")) == ["first_order"]


def test_visit_after_a_long_pause_since_the_last_order() -> None:
    journey = Journey(engine_of(COMEBACK))
    journey.order(T0)
    assert journey("visit", T0 + days(89)) == []
    assert ids(journey("visit", T0 + days(90))) == ["comeback_visit"]
    # An order resets the pause.
    journey.order(T0 + days(91))
    assert journey("visit", T0 + days(120)) == []


def test_pause_condition_is_false_for_a_customer_who_never_ordered() -> None:
    journey = Journey(engine_of(COMEBACK))
    assert journey("visit", T0 + days(400)) == []


def test_condition_on_profile_and_audience_and_exclude() -> None:
    text = rule(
        "gold_order",
        "action",
        on="order_placed",
        when="state.profile.tier == 'gold'",
        audience="state.profile.email != null",
        exclude="event.amount < 5",
    )
    gold = Journey(engine_of(text), customer="gold")
    gold("profile_updated", T0, tier="gold", email="g@example.com")
    assert ids(gold.order(T0 + days(1), amount=20)) == ["gold_order"]
    assert gold.order(T0 + days(2), amount=4) == []  # excluded

    no_email = Journey(engine_of(text), customer="no-email")
    no_email("profile_updated", T0, tier="gold")
    assert no_email.order(T0 + days(1), amount=20) == []  # outside the audience

    silver = Journey(engine_of(text), customer="silver")
    silver("profile_updated", T0, tier="silver", email="s@example.com")
    assert silver.order(T0 + days(1), amount=20) == []


def test_resent_order_under_new_event_id_fires_nothing_again() -> None:
    for occurrence in ({"occurrence": "order_id"}, {}):
        thanks = rule("thanks", "action", on="order_placed", **occurrence)
        journey = Journey(engine_of(thanks))
        (first,) = journey.send(order(T0, "o-1", event_id="e-1"))
        assert journey.send(order(T0 + hours(1), "o-1", event_id="e-2")) == []
        (other,) = journey.send(order(T0 + days(1), "o-2", event_id="e-3"))
        assert other.action_id != first.action_id


def test_occurrence_property_makes_the_action_id_independent_of_the_event_id() -> None:
    thanks = rule("thanks", "action", on="order_placed", occurrence="order_id")
    (one,) = Journey(engine_of(thanks)).send(order(T0, "o-1", event_id="e-1"))
    (two,) = Journey(engine_of(thanks)).send(order(T0, "o-1", event_id="e-2"))
    assert one.action_id == two.action_id
    plain = rule("thanks", "action", on="order_placed")
    (three,) = Journey(engine_of(plain)).send(order(T0, "o-1", event_id="e-1"))
    (four,) = Journey(engine_of(plain)).send(order(T0, "o-1", event_id="e-2"))
    assert three.action_id != four.action_id


def test_action_id_is_the_same_across_engine_instances() -> None:
    thanks = rule("thanks", "action", on="order_placed", occurrence="order_id")
    first = Journey(engine_of(thanks)).send(order(T0, "o-1", event_id="e-1"))
    again = Journey(engine_of(thanks)).send(order(T0, "o-1", event_id="e-1"))
    assert [c.action_id for c in first] == [c.action_id for c in again]


def test_same_event_id_sent_twice_is_a_duplicate_and_fires_nothing() -> None:
    thanks = rule("thanks", "action", on="order_placed")
    engine = engine_of(thanks)
    placed = order(T0, "o-1", event_id="e-1")
    step = engine.on_event(None, placed)
    assert ids(step.candidates) == ["thanks"]
    again = engine.on_event(step.state, placed)
    assert again.duplicate
    assert again.candidates == []


def test_custom_event_type_with_condition_on_its_properties() -> None:
    text = rule("big_quote", "action", on="quote_requested", when="event.value >= 1000")
    journey = Journey(engine_of(text))
    assert journey.send(event("quote_requested", T0, value=999)) == []
    assert ids(journey.send(event("quote_requested", T0 + hours(1), value=1000))) == ["big_quote"]


def test_disabled_rule_never_fires() -> None:
    text = rule("thanks", "action", on="order_placed", enabled="false")
    assert Journey(engine_of(text)).order(T0) == []
