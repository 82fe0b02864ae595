"""RFM scored against the population's own quintiles (`settings.rfm.learn`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from engine_helpers import T0, Journey, days, engine_as, engine_of, event, ids, order, rule, rules

from schemas.state import CustomerState
from streams.core.engine import Engine
from streams.core.recovered_state import customer_held
from streams.core.rfm_population import RfmPopulation
from streams.shell.state_codec import PydanticCodec

LEARN = "rfm:\n  learn: true\n  learn_min_customers: 10\n"


def population(*customers: tuple[int, float, datetime]) -> RfmPopulation:
    counted = RfmPopulation()
    for measures in customers:
        counted.add(measures)
    return counted


def test_a_score_is_the_fifth_of_the_customers_it_falls_in_ties_at_their_mid_rank() -> None:
    # 60 customers with one order, 20 with two, 20 with five.
    counted = population(
        *[(1, 20.0, T0 - days(300))] * 60,
        *[(2, 200.0, T0 - days(60))] * 20,
        *[(5, 900.0, T0 - days(5))] * 20,
    )
    assert counted.customers == 100
    # One order: mid-rank 30% -> 2, not 1 (the lowest) nor 4 (above the 60% cut).
    assert counted.scores((1, 20.0, T0 - days(300))) == (2, 2, 2)
    assert counted.scores((2, 200.0, T0 - days(60))) == (4, 4, 4)
    assert counted.scores((5, 900.0, T0 - days(5))) == (5, 5, 5)
    # Beyond everyone counted: the top fifth; below everyone: the bottom one.
    assert counted.scores((50, 10_000.0, T0)) == (5, 5, 5)
    assert counted.scores((1, 1.0, T0 - days(900))) == (1, 2, 1)


def test_a_customers_new_order_moves_them_up_and_a_cancellation_back() -> None:
    counted = population(*[(1, 50.0, T0 - days(100))] * 9)
    counted.add((1, 50.0, T0 - days(100)))
    assert counted.scores((1, 50.0, T0 - days(100)))[1] == 3
    counted.move((1, 50.0, T0 - days(100)), (2, 120.0, T0))
    assert counted.customers == 10
    assert counted.scores((2, 120.0, T0)) == (5, 5, 5)
    counted.move((2, 120.0, T0), (1, 50.0, T0 - days(100)))  # the order cancelled
    assert counted.scores((1, 50.0, T0 - days(100))) == (3, 3, 3)


def shop(engine: Engine, customers: int) -> dict[str, CustomerState]:
    """`customers` customers, customer n with n + 1 orders of 10 each, the n-th day."""
    states: dict[str, CustomerState] = {}
    for n in range(customers):
        customer = f"c-{n}"
        for k in range(n + 1):
            step = engine.on_event(
                states.get(customer),
                order(T0 + days(n), f"{customer}-o{k}", 10.0, customer=customer),
            )
            states[customer] = step.state
    return states


def test_learned_scores_follow_the_shop_not_the_configured_cut_points() -> None:
    engine = engine_of(settings=LEARN)
    states = shop(engine, 20)
    # Configured cut points would give the biggest customer (20 orders, 200 spent) f=5 m=3.
    assert engine.rfm(states["c-19"], T0 + days(20))["score"] == "555"
    assert engine.rfm(states["c-0"], T0 + days(20))["score"] == "111"
    assert engine.rfm(states["c-10"], T0 + days(20))["score"] == "333"
    never = CustomerState(customer_id="n")
    assert engine.rfm(never, T0 + days(20))["score"] == "111"


def test_the_configured_cut_points_apply_until_enough_customers_have_ordered() -> None:
    engine = engine_of(settings=LEARN)
    biggest = shop(engine, 9)["c-8"]
    # 9 orders, 90 spent, last order that day: the default cut points' 5, 5, 2.
    assert engine.rfm(biggest, T0 + days(8))["score"] == "552"
    engine.on_event(None, order(T0 + days(9), "o-1", 10.0, customer="tenth"))
    # The tenth customer with an order: learned from here on, and 90 is the most spent.
    assert engine.rfm(biggest, T0 + days(9))["score"] == "555"


def test_a_rule_on_an_order_sees_the_customer_among_the_population() -> None:
    vip = rule("top_spender", "action", on="order_placed", when="rfm.m == 5")
    engine = engine_of(vip, settings=LEARN)
    shop(engine, 10)
    big = Journey(engine, customer="big")
    assert ids(big.order(T0 + days(30), amount=5.0)) == []  # the smallest order of all
    assert ids(big.order(T0 + days(31), amount=500.0)) == ["top_spender"]


def test_a_recovered_customer_is_counted_from_its_stored_json_as_from_its_model() -> None:
    engine = engine_of(settings=LEARN)
    state = shop(engine, 3)["c-2"]
    stored = PydanticCodec(CustomerState)._dumps(state)
    assert customer_held(stored).rfm == customer_held(state).rfm == (3, 30.0, T0 + days(2))
    fresh = CustomerState(customer_id="f")
    assert customer_held(PydanticCodec(CustomerState)._dumps(fresh)).rfm == (0, 0.0, None)


def test_without_learning_the_population_is_not_counted() -> None:
    engine = engine_of()
    engine.on_event(None, order(T0, "o-1", 10.0))
    engine.on_event(None, event("visit", T0))
    assert engine.rfm_population.customers == 0


def test_a_new_customer_whose_first_order_fails_is_not_counted() -> None:
    # The caller keeps no state for it (the journey dead-letters the event): counted
    # anyway, the customer would count twice once a later order succeeds.
    class FailsOnce(Engine):
        failing = True

        def _lifecycle_after_event(self, *args: Any, **kwargs: Any) -> None:
            if FailsOnce.failing:
                raise RuntimeError("a bug after the state changed")
            super()._lifecycle_after_event(*args, **kwargs)

    engine = engine_as(FailsOnce, rules(rule("thanks", "action", on="order_placed"), LEARN))
    with pytest.raises(RuntimeError):
        engine.on_event(None, order(T0, "o-1", 10.0, customer="new"))
    assert engine.rfm_population.customers == 0
    FailsOnce.failing = False
    step = engine.on_event(None, order(T0 + days(1), "o-2", 10.0, customer="new"))
    assert step.state.orders_count == 1
    assert engine.rfm_population.customers == 1
