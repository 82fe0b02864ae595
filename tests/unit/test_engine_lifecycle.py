"""Lifecycle transitions (prospect -> new -> regular -> at_risk -> dormant -> churned ->
reactivated) and threshold triggers (e.g. total spend crosses 500)."""

from __future__ import annotations

from datetime import timedelta

from engine_helpers import T0, Journey, days, engine_of, hours, ids, order, rule

SECOND = timedelta(seconds=1)
ALL_STAGES = "[prospect, new, regular, seasonal, at_risk, dormant, churned, reactivated]"
STAGE_RULE = rule("stage", "lifecycle", enter=ALL_STAGES)
FIXED_LAPSES = """
lifecycle:
  regular_min_orders: 3
  at_risk_after: 60d
  dormant_after: 120d
  churned_after: 180d
"""


def stages(journey: Journey) -> list[str]:
    return [c.payload["trigger"]["stage"] for c in journey.fired("stage")]


def lifecycle_journey(customer: str = "cust-1", settings: str = FIXED_LAPSES) -> Journey:
    return Journey(engine_of(STAGE_RULE, settings=settings), customer=customer)


def test_registration_makes_a_prospect_and_first_order_a_new_customer() -> None:
    journey = lifecycle_journey()
    (prospect,) = journey("registered", T0, email="a@example.com")
    assert journey.stage == "prospect"
    assert prospect.payload["trigger"] == {
        "kind": "lifecycle",
        "occurrence": prospect.payload["trigger"]["occurrence"],
        "stage": "prospect",
        "previous_stage": None,
    }
    (new,) = journey.order(T0 + days(2))
    assert journey.stage == "new"
    assert new.payload["trigger"]["previous_stage"] == "prospect"
    assert new.triggered_at == T0 + days(2)


def test_customer_first_seen_through_an_order_is_new() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    assert journey.stage == "new"
    assert stages(journey) == ["new"]


def test_events_that_do_not_change_the_stage_fire_nothing() -> None:
    journey = lifecycle_journey()
    journey("registered", T0)
    assert journey("visit", T0 + hours(1)) == []
    assert journey("email_confirmed", T0 + hours(2)) == []
    assert stages(journey) == ["prospect"]


def test_regular_at_regular_min_orders() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    journey.order(T0 + days(10))
    assert journey.stage == "new"
    journey.order(T0 + days(20))
    assert journey.stage == "regular"
    journey.order(T0 + days(30))
    assert stages(journey) == ["new", "regular"]


def test_regular_threshold_is_configurable() -> None:
    journey = lifecycle_journey(
        settings=FIXED_LAPSES.replace("regular_min_orders: 3", "regular_min_orders: 2")
    )
    journey.order(T0)
    journey.order(T0 + days(10))
    assert journey.stage == "regular"


def test_lapses_come_from_timers_at_their_exact_due_time() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    assert journey.advance(T0 + days(60) - SECOND) == []
    (at_risk,) = journey.advance(T0 + days(60))
    assert journey.stage == "at_risk"
    assert at_risk.triggered_at == T0 + days(60)
    assert journey.state is not None
    assert journey.state.lifecycle_changed_at == T0 + days(60)
    (dormant,) = journey.advance(T0 + days(120))
    assert (journey.stage, dormant.triggered_at) == ("dormant", T0 + days(120))
    (churned,) = journey.advance(T0 + days(180))
    assert (journey.stage, churned.triggered_at) == ("churned", T0 + days(180))
    assert journey.advance(T0 + days(1000)) == []


def test_lapses_skipped_over_by_a_late_event_carry_their_own_times() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    fired = journey("visit", T0 + days(150))
    assert [(c.payload["trigger"]["stage"], c.triggered_at) for c in fired] == [
        ("at_risk", T0 + days(60)),
        ("dormant", T0 + days(120)),
    ]
    assert journey.stage == "dormant"


def test_a_new_order_restarts_the_lapse_clock() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    journey.order(T0 + days(50))
    assert journey.advance(T0 + days(109)) == []
    (at_risk,) = journey.advance(T0 + days(110))
    assert at_risk.triggered_at == T0 + days(50) + days(60)


def test_order_while_dormant_or_churned_is_a_reactivation() -> None:
    for lapse_days, lapsed in ((130, "dormant"), (200, "churned")):
        journey = lifecycle_journey(customer=f"c-{lapsed}")
        journey.order(T0)
        journey.advance(T0 + days(lapse_days))
        assert journey.stage == lapsed
        (reactivated,) = journey.order(T0 + days(lapse_days + 1))
        assert journey.stage == "reactivated"
        assert reactivated.payload["trigger"]["previous_stage"] == lapsed


def test_order_while_at_risk_returns_to_the_active_stage_not_reactivated() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    journey.advance(T0 + days(90))
    assert journey.stage == "at_risk"
    journey.order(T0 + days(91))
    assert journey.stage == "new"


def test_reactivated_customer_lapses_again_from_the_new_order() -> None:
    journey = lifecycle_journey()
    journey.order(T0)
    journey.advance(T0 + days(200))
    journey.order(T0 + days(300))
    assert journey.stage == "reactivated"
    (at_risk,) = journey.advance(T0 + days(360))
    assert at_risk.triggered_at == T0 + days(360)
    assert journey.stage == "at_risk"


def test_a_prospect_who_never_orders_never_lapses() -> None:
    journey = lifecycle_journey()
    journey("registered", T0)
    assert journey.advance(T0 + days(1000)) == []
    assert journey.stage == "prospect"


def test_cancelling_the_only_order_makes_a_prospect_again() -> None:
    journey = lifecycle_journey()
    journey("registered", T0)
    journey.order(T0 + days(1), "o-1")
    journey("order_cancelled", T0 + days(2), order_id="o-1")
    assert journey.stage == "prospect"


def test_customer_without_valid_orders_never_lapses() -> None:
    journey = lifecycle_journey()
    journey("registered", T0)
    journey.order(T0 + days(1), "o-1")
    journey("order_cancelled", T0 + days(2), order_id="o-1")
    journey.advance(T0 + days(400))
    assert journey.stage == "prospect"
    assert stages(journey) == ["prospect", "new", "prospect"]


def test_lapse_clock_runs_from_the_last_order_that_was_not_cancelled() -> None:
    journey = lifecycle_journey()
    journey.order(T0, "o-1")
    journey.order(T0 + days(50), "o-2")
    journey("order_cancelled", T0 + days(51), order_id="o-2")
    (at_risk,) = journey.advance(T0 + days(60))
    assert at_risk.payload["trigger"]["stage"] == "at_risk"
    assert at_risk.triggered_at == T0 + days(60)


def test_lifecycle_rule_fires_only_for_the_stages_it_enters() -> None:
    text = rule("winback_stage", "lifecycle", enter="[dormant, churned]")
    journey = Journey(engine_of(text, settings=FIXED_LAPSES))
    journey("registered", T0)
    journey.order(T0 + days(1))
    fired = journey.advance(T0 + days(400))
    assert [c.payload["trigger"]["stage"] for c in fired] == ["dormant", "churned"]
    assert fired[0].action_id != fired[1].action_id


# ---------------------------------------------------------------------------- threshold

VIP = rule("vip", "threshold", quantity="total_spent", crosses=500)


def test_threshold_fires_once_when_crossing_not_again_while_above() -> None:
    journey = Journey(engine_of(VIP))
    assert journey.order(T0, amount=300) == []
    (vip,) = journey.order(T0 + days(1), amount=250)
    assert vip.triggered_at == T0 + days(1)
    assert vip.payload["trigger"]["value"] == 550
    assert journey.order(T0 + days(2), amount=100) == []
    assert journey.order(T0 + days(3), amount=1000) == []


def test_reaching_the_threshold_exactly_counts_as_crossing() -> None:
    journey = Journey(engine_of(VIP))
    journey.order(T0, amount=200)
    assert ids(journey.order(T0 + days(1), amount=300)) == ["vip"]


def test_threshold_fires_again_after_falling_below_through_a_cancellation() -> None:
    journey = Journey(engine_of(VIP))
    journey.order(T0, "o-1", amount=300)
    (first,) = journey.order(T0 + days(1), "o-2", amount=300)
    assert journey("order_cancelled", T0 + days(2), order_id="o-2") == []
    assert journey.state is not None
    assert journey.state.total_spent == 300
    (second,) = journey.order(T0 + days(3), "o-3", amount=250)
    assert second.action_id != first.action_id


def test_cancellation_that_stays_above_does_not_rearm_the_threshold() -> None:
    journey = Journey(engine_of(VIP))
    journey.order(T0, "o-1", amount=600)
    journey.order(T0 + days(1), "o-2", amount=50)
    journey("order_cancelled", T0 + days(2), order_id="o-2")
    assert journey.order(T0 + days(3), "o-3", amount=50) == []
    assert len(journey.fired("vip")) == 1


def test_resent_order_does_not_cross_the_threshold_twice() -> None:
    journey = Journey(engine_of(VIP))
    journey.send(order(T0, "o-1", 400, event_id="e-1"))
    assert journey.send(order(T0 + hours(1), "o-1", 400, event_id="e-2")) == []


def test_orders_count_threshold() -> None:
    text = rule("third_order", "threshold", quantity="orders_count", crosses=3)
    journey = Journey(engine_of(text))
    journey.order(T0)
    journey.order(T0 + days(1))
    assert ids(journey.order(T0 + days(2))) == ["third_order"]
    assert journey.order(T0 + days(3)) == []
