"""Timer-driven triggers: inactivity ("no Y within T after X"), delay ("T after X") and
before-a-date ("T before the date in X"). Time is event time: an event first fires the
timers due strictly before it; `advance(until)` fires those due at or before `until`."""

from __future__ import annotations

from datetime import timedelta

from engine_helpers import T0, Journey, days, engine_of, hours, ids, order, rule

SECOND = timedelta(seconds=1)

NO_ORDER_30D = rule(
    "nudge", "inactivity", after="registered", unless="[order_placed]", within="30d"
)
CART_1H = rule("cart", "inactivity", after="cart_updated", unless="[order_placed]", within="1h")
CART_ITEMS = [{"sku": "oil-4l", "category": "motor_oil", "price": 30.0}]


# --------------------------------------------------------------------------- inactivity


def test_inactivity_fires_at_exactly_anchor_plus_window() -> None:
    journey = Journey(engine_of(NO_ORDER_30D))
    journey("registered", T0)
    assert journey.advance(T0 + days(30) - SECOND) == []
    (fired,) = journey.advance(T0 + days(30))
    assert fired.rule_id == "nudge"
    assert fired.triggered_at == T0 + days(30)
    assert journey.advance(T0 + days(400)) == []  # once


def test_inactivity_does_not_fire_when_the_unless_event_comes_in_time() -> None:
    journey = Journey(engine_of(NO_ORDER_30D))
    journey("registered", T0)
    journey.order(T0 + days(10))
    assert journey.advance(T0 + days(60)) == []


def test_unless_event_exactly_at_the_deadline_counts_as_within() -> None:
    journey = Journey(engine_of(NO_ORDER_30D))
    journey("registered", T0)
    assert journey.order(T0 + days(30)) == []
    assert journey.advance(T0 + days(60)) == []
    assert journey.fired("nudge") == []


def test_unless_event_one_second_late_finds_the_trigger_already_fired() -> None:
    journey = Journey(engine_of(NO_ORDER_30D))
    journey("registered", T0)
    fired = journey.order(T0 + days(30) + SECOND)
    assert ids(fired) == ["nudge"]
    assert fired[0].triggered_at == T0 + days(30)  # at its due time, not the late event's


def test_inactivity_checks_when_on_the_anchor_event() -> None:
    text = rule(
        "big_cart",
        "inactivity",
        after="cart_updated",
        unless="[order_placed]",
        within="1h",
        when="event.value >= 100",
    )
    small = Journey(engine_of(text), customer="small")
    small("cart_updated", T0, items=CART_ITEMS, value=99.0)
    assert small.advance(T0 + days(1)) == []
    big = Journey(engine_of(text), customer="big")
    big("cart_updated", T0, items=CART_ITEMS, value=100.0)
    assert ids(big.advance(T0 + days(1))) == ["big_cart"]


def test_new_anchor_restarts_the_window_with_rearm() -> None:
    journey = Journey(engine_of(CART_1H))
    journey("cart_updated", T0, items=CART_ITEMS)
    journey("cart_updated", T0 + hours(0.5), items=CART_ITEMS)
    assert journey.advance(T0 + hours(1)) == []
    (fired,) = journey.advance(T0 + hours(1.5))
    assert fired.triggered_at == T0 + hours(1.5)
    assert journey.advance(T0 + days(2)) == []


def test_without_rearm_a_new_anchor_keeps_the_first_window() -> None:
    text = rule(
        "cart_once",
        "inactivity",
        after="cart_updated",
        unless="[order_placed]",
        within="1h",
        rearm="false",
    )
    journey = Journey(engine_of(text))
    journey("cart_updated", T0, items=CART_ITEMS)
    journey("cart_updated", T0 + hours(0.5), items=CART_ITEMS)
    (fired,) = journey.advance(T0 + hours(1))
    assert fired.triggered_at == T0 + hours(1)
    assert journey.advance(T0 + days(2)) == []


def test_each_anchor_occurrence_gets_its_own_action_id() -> None:
    journey = Journey(engine_of(CART_1H))
    journey("cart_updated", T0, items=CART_ITEMS)
    (first,) = journey.advance(T0 + hours(2))
    journey("cart_updated", T0 + days(1), items=CART_ITEMS)
    (second,) = journey.advance(T0 + days(2))
    assert first.action_id != second.action_id


def test_cancel_on_event_before_due_cancels_after_due_is_too_late() -> None:
    text = rule(
        "nudge",
        "inactivity",
        after="registered",
        unless="[order_placed]",
        within="30d",
        cancel_on="[consent_changed]",
    )
    early = Journey(engine_of(text), customer="early")
    early("registered", T0)
    early("consent_changed", T0 + days(29), channel="email", granted=False)
    assert early.advance(T0 + days(60)) == []

    late = Journey(engine_of(text), customer="late")
    late("registered", T0)
    assert ids(late("consent_changed", T0 + days(31), channel="email", granted=False)) == ["nudge"]


def test_audience_is_checked_when_the_inactivity_timer_fires() -> None:
    text = rule(
        "cart",
        "inactivity",
        after="cart_updated",
        unless="[order_placed]",
        within="1h",
        audience="state.cart != null",
    )
    journey = Journey(engine_of(text))
    journey("cart_updated", T0, items=CART_ITEMS)
    journey("cart_updated", T0 + hours(0.2), items=[])  # emptied, not an order
    assert journey.advance(T0 + days(1)) == []


# -------------------------------------------------------------------------------- delay

REVIEW_REQUEST = rule(
    "review_request",
    "delay",
    after="order_placed",
    delay="7d",
    when="state.last_review_at == null or state.last_review_at < timer.anchor_at",
    cancel_on="[order_cancelled]",
)


def test_delay_fires_exactly_after_the_delay() -> None:
    journey = Journey(engine_of(REVIEW_REQUEST))
    journey.order(T0, "o-1")
    assert journey.advance(T0 + days(7) - SECOND) == []
    (fired,) = journey.advance(T0 + days(7))
    assert fired.triggered_at == T0 + days(7)
    assert fired.payload["event"]["order_id"] == "o-1"


def test_delay_rechecks_when_at_due_time_review_written_in_between() -> None:
    journey = Journey(engine_of(REVIEW_REQUEST))
    journey.order(T0, "o-1")
    journey("review_submitted", T0 + days(3), rating=5, order_id="o-1")
    assert journey.advance(T0 + days(30)) == []


def test_delay_when_false_about_the_anchor_never_fires() -> None:
    text = rule("thank_big", "delay", after="order_placed", delay="1d", when="event.amount >= 200")
    journey = Journey(engine_of(text))
    journey.order(T0, amount=150)
    assert journey.advance(T0 + days(5)) == []
    big = Journey(engine_of(text), customer="big")
    big.order(T0, amount=250)
    assert ids(big.advance(T0 + days(5))) == ["thank_big"]


def test_one_delay_timer_per_anchor_event() -> None:
    journey = Journey(engine_of(REVIEW_REQUEST))
    journey.order(T0, "o-1")
    journey.order(T0 + days(1), "o-2")
    fired = journey.advance(T0 + days(30))
    assert [c.triggered_at for c in fired] == [T0 + days(7), T0 + days(8)]
    assert fired[0].action_id != fired[1].action_id


def test_delay_cancelled_before_due_and_already_sent_when_cancelled_after() -> None:
    early = Journey(engine_of(REVIEW_REQUEST), customer="early")
    early.order(T0, "o-1")
    early("order_cancelled", T0 + days(2), order_id="o-1")
    assert early.advance(T0 + days(30)) == []

    late = Journey(engine_of(REVIEW_REQUEST), customer="late")
    late.order(T0, "o-1")
    fired = late("order_cancelled", T0 + days(8), order_id="o-1")
    assert ids(fired) == ["review_request"]
    assert fired[0].triggered_at == T0 + days(7)


def test_review_request_for_a_later_order_after_an_earlier_review() -> None:
    journey = Journey(engine_of(REVIEW_REQUEST))
    journey.order(T0, "o-1")
    journey("review_submitted", T0 + days(3), rating=5, order_id="o-1")
    journey.order(T0 + days(20), "o-2")
    fired = journey.advance(T0 + days(60))
    assert [c.payload["event"]["order_id"] for c in fired] == ["o-2"]


def test_resent_order_asks_for_one_review() -> None:
    journey = Journey(engine_of(REVIEW_REQUEST))
    journey.send(order(T0, "o-1", event_id="e-1"))
    journey.send(order(T0 + hours(1), "o-1", event_id="e-2"))
    fired = journey.advance(T0 + days(30))
    assert len({c.action_id for c in fired}) == 1


CYCLES = """
intervals:
  learn_consumption_cycles: false
  consumption_cycles:
    motor_oil: 270d
    filters: 180d
"""
REPLENISH = rule(
    "replenish",
    "delay",
    after="order_placed",
    for_each="item_category",
    delay="category_cycle(item.category) * 0.9",
)


def test_for_each_item_category_uses_each_configured_cycle() -> None:
    journey = Journey(engine_of(REPLENISH, settings=CYCLES))
    journey.order(T0, "o-1", categories=["motor_oil", "filters", "snacks"])
    fired = journey.advance(T0 + days(1000))
    by_category = {c.payload["trigger"]["category"]: c for c in fired}
    # snacks has no cycle (and learning is off): no reminder for it.
    assert set(by_category) == {"motor_oil", "filters"}
    assert by_category["motor_oil"].triggered_at == T0 + days(270) * 0.9
    assert by_category["filters"].triggered_at == T0 + days(180) * 0.9
    assert by_category["motor_oil"].action_id != by_category["filters"].action_id


def test_repurchase_of_a_category_restarts_its_cycle() -> None:
    journey = Journey(engine_of(REPLENISH, settings=CYCLES))
    journey.order(T0, "o-1", categories=["filters"])
    journey.order(T0 + days(100), "o-2", categories=["filters"])
    fired = journey.advance(T0 + days(1000))
    assert [c.triggered_at for c in fired] == [T0 + days(100) + days(180) * 0.9]


def test_for_each_item_category_can_filter_categories_with_when() -> None:
    text = rule(
        "oil_only",
        "delay",
        after="order_placed",
        for_each="item_category",
        delay="category_cycle(item.category)",
        when="item.category == 'motor_oil'",
    )
    journey = Journey(engine_of(text, settings=CYCLES))
    journey.order(T0, "o-1", categories=["motor_oil", "filters"])
    fired = journey.advance(T0 + days(1000))
    assert [c.payload["trigger"]["category"] for c in fired] == ["motor_oil"]
    assert fired[0].triggered_at == T0 + days(270)


# ----------------------------------------------------------------------- before a date

APPOINTMENT = rule(
    "appointment_reminder",
    "before",
    on="appointment_scheduled",
    date="starts_at",
    before="24h",
    occurrence="appointment_id",
)


def test_before_fires_exactly_the_lead_time_before_the_date() -> None:
    journey = Journey(engine_of(APPOINTMENT))
    starts = T0 + days(10)
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=starts.isoformat())
    assert journey.advance(starts - hours(24) - SECOND) == []
    (fired,) = journey.advance(starts - hours(24))
    assert fired.triggered_at == starts - hours(24)
    assert journey.advance(starts + days(1)) == []


def test_reschedule_with_the_same_occurrence_replaces_the_reminder() -> None:
    journey = Journey(engine_of(APPOINTMENT))
    first, moved = T0 + days(10), T0 + days(14)
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=first.isoformat())
    journey(
        "appointment_scheduled", T0 + days(1), appointment_id="a-1", starts_at=moved.isoformat()
    )
    fired = journey.advance(T0 + days(30))
    assert [c.triggered_at for c in fired] == [moved - hours(24)]


def test_two_appointments_get_two_reminders() -> None:
    journey = Journey(engine_of(APPOINTMENT))
    one, two = T0 + days(10), T0 + days(12)
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=one.isoformat())
    journey("appointment_scheduled", T0, appointment_id="a-2", starts_at=two.isoformat())
    fired = journey.advance(T0 + days(30))
    assert [c.triggered_at for c in fired] == [one - hours(24), two - hours(24)]
    assert fired[0].action_id != fired[1].action_id


def test_date_already_passed_arms_nothing() -> None:
    journey = Journey(engine_of(APPOINTMENT))
    past = T0 - hours(2)
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=past.isoformat())
    assert journey.state is not None
    assert journey.engine.next_due(journey.state) is None
    assert journey.advance(T0 + days(30)) == []


def test_date_within_the_lead_time_fires_at_once() -> None:
    journey = Journey(engine_of(APPOINTMENT))
    soon = T0 + hours(3)
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=soon.isoformat())
    assert journey.state is not None
    assert journey.engine.next_due(journey.state) == T0
    (fired,) = journey.advance(T0)
    assert fired.triggered_at == T0


def test_before_rechecks_when_at_due_time() -> None:
    text = rule(
        "prep_reminder",
        "before",
        on="appointment_scheduled",
        date="starts_at",
        before="48h",
        when="state.orders_count == 0",
    )
    journey = Journey(engine_of(text))
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=(T0 + days(5)).isoformat())
    journey.order(T0 + days(1))
    assert journey.advance(T0 + days(10)) == []


def test_a_timer_decides_the_same_after_its_state_went_through_the_changelog() -> None:
    from schemas.state import CustomerState

    text = rule(
        "late_review",
        "delay",
        after="order_placed",
        delay="7d",
        when="age(event.occurred_at) >= 7d",
    )
    engine = engine_of(text)
    live = Journey(engine)
    live.order(T0, "o-1")
    assert live.state is not None
    # What a restarted worker recovers: the state as JSON, read back.
    recovered = CustomerState.model_validate_json(live.state.model_dump_json())
    fired_live = engine.advance(live.state, T0 + days(8)).candidates
    fired_recovered = engine.advance(recovered, T0 + days(8)).candidates
    assert [c.action_id for c in fired_live] == [c.action_id for c in fired_recovered]
    assert len(fired_live) == 1
