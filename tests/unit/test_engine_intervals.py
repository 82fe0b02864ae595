"""Dynamic intervals (the customer's own rhythm, the population's, consumption cycles),
RFM scores and holdout groups."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from engine_helpers import T0, Journey, days, engine_of, ids, rule

from schemas.state import CustomerState
from streams.core.engine import Engine, in_holdout
from streams.core.intervals import MIN_POPULATION_SAMPLES

OVERDUE = rule(
    "overdue",
    "inactivity",
    after="order_placed",
    unless="[order_placed]",
    within="personal_interval()",
)
INTERVALS = """
intervals:
  personal_min_gaps: 2
  population_fallback: 45d
"""


def overdue_due(journey: Journey) -> datetime:
    assert journey.state is not None
    due: list[datetime] = [t.due_at for t in journey.state.timers if t.rule_id == "overdue"]
    assert len(due) == 1
    return due[0]


def orders_at(journey: Journey, *day_offsets: float) -> None:
    for n, offset in enumerate(day_offsets):
        journey.order(T0 + days(offset), f"{journey.customer}-o{n}")


def feed_population(engine: Engine, customers: int, gap_days: float, category: str = "") -> None:
    """Other customers, each ordering twice `gap_days` apart."""
    categories = [category] if category else []
    for n in range(customers):
        other = Journey(engine, customer=f"pop-{category}-{n}")
        other.order(T0 - days(400) + days(n), categories=categories)
        other.order(T0 - days(400) + days(n) + days(gap_days), categories=categories)


# ------------------------------------------------------------------- personal interval


@pytest.mark.parametrize(
    ("order_days", "expected_interval"),
    [
        ((0, 10, 20), days(10)),
        ((0, 10, 30), days(15)),  # two gaps: their median is the mean
        ((0, 10, 110, 120), days(10)),  # one long outlier gap does not move it
        ((0, 10, 22, 222), days(12)),
    ],
)
def test_personal_interval_is_the_median_order_gap(
    order_days: tuple[int, ...], expected_interval: timedelta
) -> None:
    journey = Journey(engine_of(OVERDUE, settings=INTERVALS))
    orders_at(journey, *order_days)
    last = T0 + days(order_days[-1])
    assert overdue_due(journey) == last + expected_interval
    assert journey.advance(last + expected_interval - timedelta(seconds=1)) == []
    assert ids(journey.advance(last + expected_interval)) == ["overdue"]


def test_cancelled_orders_are_not_part_of_the_rhythm() -> None:
    journey = Journey(engine_of(OVERDUE, settings=INTERVALS))
    orders_at(journey, 0, 5, 20)
    journey("order_cancelled", T0 + days(21), order_id=f"{journey.customer}-o1")
    journey.order(T0 + days(40), "last")
    # Gaps of the remaining orders: 20 and 20.
    assert overdue_due(journey) == T0 + days(60)


def test_population_fallback_while_the_customer_has_too_few_gaps() -> None:
    journey = Journey(engine_of(OVERDUE, settings=INTERVALS))
    orders_at(journey, 0)
    assert overdue_due(journey) == T0 + days(45)
    journey.order(T0 + days(10), "second")  # one gap: still fewer than personal_min_gaps
    assert overdue_due(journey) == T0 + days(10) + days(45)


def test_population_median_is_learned_once_there_are_enough_samples() -> None:
    engine = engine_of(OVERDUE, settings=INTERVALS)
    feed_population(engine, MIN_POPULATION_SAMPLES - 1, gap_days=20)
    early = Journey(engine, customer="early")
    early.order(T0)
    assert overdue_due(early) == T0 + days(45)  # not enough samples yet: configured fallback

    feed_population(engine, 1, gap_days=20)
    late = Journey(engine, customer="late")
    late.order(T0)
    assert overdue_due(late) == T0 + days(20)


def test_population_median_ignores_a_minority_of_long_gaps() -> None:
    engine = engine_of(OVERDUE, settings=INTERVALS)
    feed_population(engine, MIN_POPULATION_SAMPLES, gap_days=20)
    feed_population(engine, MIN_POPULATION_SAMPLES // 3, gap_days=300, category="outlier")
    journey = Journey(engine)
    journey.order(T0)
    assert overdue_due(journey) == T0 + days(20)


def test_population_learning_can_be_switched_off() -> None:
    settings = INTERVALS + "  learn_population: false\n"
    engine = engine_of(OVERDUE, settings=settings)
    feed_population(engine, MIN_POPULATION_SAMPLES * 2, gap_days=20)
    journey = Journey(engine)
    journey.order(T0)
    assert overdue_due(journey) == T0 + days(45)


def test_own_rhythm_wins_over_the_population() -> None:
    engine = engine_of(OVERDUE, settings=INTERVALS)
    feed_population(engine, MIN_POPULATION_SAMPLES, gap_days=20)
    journey = Journey(engine)
    orders_at(journey, 0, 7, 14)
    assert overdue_due(journey) == T0 + days(21)


def test_at_risk_follows_twice_the_personal_interval_with_a_60_day_floor() -> None:
    # The default at_risk_after: max(personal_interval() * 2, 60d); dormant after 120d.
    stage = rule("stage", "lifecycle", enter="[at_risk, dormant]")
    slow = Journey(engine_of(stage), customer="slow")
    orders_at(slow, 0, 40, 80)  # rhythm 40d -> at_risk 80d after the last order
    fired = slow.advance(T0 + days(500))
    assert [(c.payload["trigger"]["stage"], c.triggered_at) for c in fired] == [
        ("at_risk", T0 + days(80 + 80)),
        ("dormant", T0 + days(80 + 120)),
    ]
    fast = Journey(engine_of(stage), customer="fast")
    orders_at(fast, 0, 10, 20)  # rhythm 10d -> 20d, raised to the 60d floor
    assert fast.advance(T0 + days(500))[0].triggered_at == T0 + days(20 + 60)
    rare = Journey(engine_of(stage), customer="rare")
    orders_at(rare, 0, 70, 140)  # 140d would come after dormant: no at_risk stage
    assert [c.payload["trigger"]["stage"] for c in rare.advance(T0 + days(900))] == ["dormant"]


# -------------------------------------------------------------------- category cycles

RESTOCK = rule(
    "restock",
    "delay",
    after="order_placed",
    for_each="item_category",
    delay="category_cycle(item.category)",
)


def restock_due(journey: Journey) -> list[datetime]:
    assert journey.state is not None
    return [t.due_at for t in journey.state.timers if t.rule_id == "restock"]


def test_category_cycle_is_learned_from_population_repeat_purchases() -> None:
    engine = engine_of(RESTOCK)
    feed_population(engine, MIN_POPULATION_SAMPLES - 1, gap_days=14, category="coffee")
    early = Journey(engine, customer="early")
    early.order(T0, categories=["coffee"])
    assert restock_due(early) == []  # no configured or learned cycle yet

    feed_population(engine, 1, gap_days=14, category="coffee")
    late = Journey(engine, customer="late")
    late.order(T0, categories=["coffee"])
    assert restock_due(late) == [T0 + days(14)]


def test_configured_cycle_wins_over_the_learned_one() -> None:
    engine = engine_of(RESTOCK, settings="intervals:\n  consumption_cycles:\n    coffee: 30d\n")
    feed_population(engine, MIN_POPULATION_SAMPLES, gap_days=14, category="coffee")
    journey = Journey(engine)
    journey.order(T0, categories=["coffee"])
    assert restock_due(journey) == [T0 + days(30)]


def test_category_cycles_are_not_learned_when_switched_off() -> None:
    engine = engine_of(RESTOCK, settings="intervals:\n  learn_consumption_cycles: false\n")
    feed_population(engine, MIN_POPULATION_SAMPLES * 2, gap_days=14, category="coffee")
    journey = Journey(engine)
    journey.order(T0, categories=["coffee"])
    assert restock_due(journey) == []


# --------------------------------------------------------------------------------- RFM

RFM_SETTINGS = """
rfm:
  recency_days: [30, 90, 180, 365]
  frequency: [1, 2, 4, 8]
  monetary: [50, 150, 400, 1000]
"""


def rfm_of(
    *, since_last_order: timedelta | None = None, orders: int = 0, spent: float = 0.0
) -> dict[str, object]:
    engine = engine_of(settings=RFM_SETTINGS)
    state = CustomerState(
        customer_id="c",
        orders_count=orders,
        total_spent=spent,
        last_order_at=None if since_last_order is None else T0 - since_last_order,
    )
    return dict(engine.rfm(state, T0))


@pytest.mark.parametrize(
    ("since", "score"),
    [
        (days(0), 5),
        (days(30), 5),  # at the first cut point: still the best score
        (days(30) + timedelta(seconds=1), 4),
        (days(90), 4),
        (days(91), 3),
        (days(180), 3),
        (days(181), 2),
        (days(365), 2),
        (days(366), 1),
        (None, 1),  # never ordered
    ],
)
def test_recency_score(since: timedelta | None, score: int) -> None:
    assert rfm_of(since_last_order=since)["r"] == score


@pytest.mark.parametrize(
    ("orders", "score"), [(0, 1), (1, 2), (2, 3), (3, 3), (4, 4), (7, 4), (8, 5), (100, 5)]
)
def test_frequency_score(orders: int, score: int) -> None:
    assert rfm_of(orders=orders)["f"] == score


@pytest.mark.parametrize(
    ("spent", "score"),
    [(0, 1), (49.99, 1), (50, 2), (149.99, 2), (150, 3), (399.99, 3), (400, 4), (1000, 5)],
)
def test_monetary_score(spent: float, score: int) -> None:
    assert rfm_of(spent=spent)["m"] == score


def test_rfm_score_string_and_custom_cut_points() -> None:
    scores = rfm_of(since_last_order=days(100), orders=4, spent=1000)
    assert scores["score"] == "345"
    engine = engine_of(settings="rfm:\n  frequency: [2, 3, 5, 10]\n")
    state = CustomerState(customer_id="c", orders_count=2)
    assert engine.rfm(state, T0)["f"] == 2


def test_rules_can_use_rfm_scores() -> None:
    text = rule("loyal_visit", "action", on="visit", when="rfm.r == 5 and rfm.m >= 3")
    journey = Journey(engine_of(text, settings=RFM_SETTINGS))
    journey.order(T0, amount=100)
    assert journey("visit", T0 + days(1)) == []  # monetary 2
    journey.order(T0 + days(2), amount=100)
    assert ids(journey("visit", T0 + days(3))) == ["loyal_visit"]
    assert journey("visit", T0 + days(40)) == []  # recency 4


# ----------------------------------------------------------------------------- holdout


def test_holdout_is_deterministic_by_customer_and_rule() -> None:
    customers = [f"c-{n}" for n in range(500)]
    first = [in_holdout(c, "winback", 0.3) for c in customers]
    assert first == [in_holdout(c, "winback", 0.3) for c in customers]
    assert any(first) and not all(first)
    # Another rule draws its own control group.
    assert first != [in_holdout(c, "second_order", 0.3) for c in customers]


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_holdout_share_is_roughly_respected(share: float) -> None:
    held = sum(in_holdout(f"customer-{n}", "winback", share) for n in range(10_000))
    assert share - 0.02 <= held / 10_000 <= share + 0.02


def test_zero_holdout_never_holds_anyone_out() -> None:
    assert not any(in_holdout(f"customer-{n}", "welcome", 0.0) for n in range(10_000))


def test_candidates_carry_the_customers_holdout_flag() -> None:
    text = rule("thanks", "action", on="order_placed", holdout=0.5)
    engine = engine_of(text)
    flags = {}
    for n in range(40):
        journey = Journey(engine, customer=f"c-{n}")
        (first,) = journey.order(T0)
        (second,) = journey.order(T0 + days(1))
        assert first.holdout == second.holdout == in_holdout(f"c-{n}", "thanks", 0.5)
        flags[n] = first.holdout
    assert set(flags.values()) == {True, False}
