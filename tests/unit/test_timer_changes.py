"""Timer metrics by rule: what an engine call scheduled, fired and cancelled."""

from __future__ import annotations

from schemas.state import CustomerState
from streams.core.engine import Engine
from streams.core.timer_changes import TimerChanges, timer_changes
from tests.unit.engine_helpers import T0, days, engine_of, event, rule

NUDGE = rule("nudge", "inactivity", after="registered", unless="[order_placed]", within="30d")
REVIEW = rule("review", "delay", after="order_placed", delay="7d")


def call(
    engine: Engine, state: CustomerState | None, kind: str, **props: object
) -> tuple[CustomerState, TimerChanges]:
    before = tuple(state.timers) if state is not None else ()
    step = engine.on_event(state, event(kind, props.pop("at"), **props))  # type: ignore[arg-type]
    return step.state, timer_changes(before, step.state.timers, step.fired)


def without_lifecycle(rules: list[str]) -> list[str]:
    return [r for r in rules if not r.startswith("__")]


def test_an_anchor_event_schedules_its_rule() -> None:
    engine = engine_of(NUDGE)
    _, changes = call(engine, None, "registered", at=T0)
    assert without_lifecycle(changes.scheduled) == ["nudge"]
    assert changes.fired == changes.cancelled == []


def test_the_unless_event_cancels_and_a_later_event_fires_an_overdue_timer() -> None:
    engine = engine_of(NUDGE, REVIEW)
    state, _ = call(engine, None, "registered", at=T0)
    state, changes = call(engine, state, "order_placed", at=T0 + days(1), order_id="o", amount=5)
    assert changes.cancelled == ["nudge"]
    assert without_lifecycle(changes.scheduled) == ["review"]

    # Ten days later the review timer (due at day 8) fires before the event is applied.
    state, changes = call(engine, state, "visit", at=T0 + days(11))
    assert changes.fired == ["review"]
    assert changes.pending_delta == len(changes.scheduled) - 1


def test_advancing_the_clock_fires_exactly_at_the_due_time() -> None:
    engine = engine_of(NUDGE)
    state, _ = call(engine, None, "registered", at=T0)
    before = tuple(state.timers)
    step = engine.advance(state, T0 + days(30))
    changes = timer_changes(before, step.state.timers, step.fired)
    assert "nudge" in changes.fired
    assert "nudge" not in changes.cancelled


def test_pending_delta_tracks_the_number_of_timers() -> None:
    engine = engine_of(NUDGE, REVIEW)
    state: CustomerState | None = None
    pending = 0
    at = T0
    for kind, props in [
        ("registered", {}),
        ("order_placed", {"order_id": "a", "amount": 1}),
        ("order_placed", {"order_id": "b", "amount": 1}),
        ("visit", {}),
    ]:
        state, changes = call(engine, state, kind, at=at, **props)
        pending += changes.pending_delta
        assert pending == len(state.timers)
        at += days(5)
