"""The orchestrator around the policy: steps, deferral and re-delivery, exits, feedback,
and the per-rule report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.candidate import Category
from schemas.candidate_record import CandidateRecord, ReasonRecord
from schemas.decision import Decision, FeedbackKind, Outcome
from schemas.journey_step import JourneyStep
from schemas.policy import Policy
from schemas.profile_record import ProfileRecord
from schemas.state import ConsentEntry
from streams.core.attribution import build_report
from streams.core.orchestrator import Orchestrator

NOON = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # 12:00 in Berlin
NIGHT = datetime(2026, 6, 10, 21, 30, tzinfo=UTC)  # 23:30 in Berlin
HOUR = timedelta(hours=1)
OPTED_IN = ProfileRecord(
    timezone="Europe/Berlin",
    consent={
        c: ConsentEntry(granted=True, category="marketing", changed_at=NOON - timedelta(days=9))
        for c in ("email", "push")
    },
    email_confirmed_at=NOON - timedelta(days=9),
)


def candidate(
    rule: str,
    at: datetime,
    category: Category = Category.MARKETING,
    priority: int = 50,
    channels: tuple[str, ...] = ("email",),
) -> CandidateRecord:
    return CandidateRecord(
        action_id=f"{rule}-{at.isoformat()}",
        rule_id=rule,
        customer_id="c-1",
        channels=list(channels),
        template=f"{rule}_v1",
        category=category,
        priority=priority,
        triggered_at=at,
        expires_at=at + timedelta(days=2),
        reason=ReasonRecord(code="t", text="t"),
    )


def step(at: datetime, *candidates: CandidateRecord, event: str | None = None) -> JourneyStep:
    return JourneyStep(
        customer_id="c-1", at=at, event_type=event, profile=OPTED_IN, candidates=list(candidates)
    )


def orchestrator() -> Orchestrator:
    return Orchestrator(
        Policy(default_timezone="Europe/Berlin"),
        {"abandoned_cart": ["order_placed"], "welcome": []},
    )


def test_a_message_at_night_is_deferred_and_delivered_when_the_clock_reaches_morning() -> None:
    orch = orchestrator()
    done = orch.on_step(None, step(NIGHT, candidate("welcome", NIGHT, Category.SERVICE)))
    (deferred,) = done.decisions
    assert deferred.outcome is Outcome.DEFERRED
    assert deferred.deliver_at == datetime(2026, 6, 11, 6, 0, tzinfo=UTC)  # 08:00 Berlin
    assert done.state.next_due() == deferred.deliver_at
    assert orch.advance(done.state, deferred.deliver_at - timedelta(seconds=1)).decisions == []
    later = orch.advance(done.state, deferred.deliver_at)
    (sent,) = later.decisions
    assert sent.outcome is Outcome.SENT and sent.decided_at == deferred.deliver_at
    assert [a.action_id for a in later.actions] == [deferred.action_id]
    assert later.state.next_due() is None


def test_a_later_step_delivers_what_came_due_before_its_own_candidates() -> None:
    orch = orchestrator()
    state = orch.on_step(None, step(NIGHT, candidate("welcome", NIGHT, Category.SERVICE))).state
    morning = datetime(2026, 6, 11, 9, 0, tzinfo=UTC)
    done = orch.on_step(state, step(morning, candidate("promo", morning)))
    assert [(d.rule_id, d.outcome) for d in done.decisions] == [
        ("welcome", Outcome.SENT),
        ("promo", Outcome.SENT),
    ]


def test_an_order_cancels_a_deferred_abandoned_cart_message() -> None:
    orch = orchestrator()
    cart = candidate("abandoned_cart", NIGHT, Category.SERVICE)
    state = orch.on_step(None, step(NIGHT, cart)).state
    done = orch.on_step(state, step(NIGHT + timedelta(hours=1), event="order_placed"))
    (cancelled,) = done.decisions
    assert cancelled.outcome is Outcome.SUPPRESSED
    assert cancelled.reason.code.value == "cancelled_by_event"
    assert done.state.deferred == []


def test_an_unsubscribe_stops_marketing_on_that_channel_and_falls_back() -> None:
    orch = orchestrator()
    state = orch.on_feedback(None, "c-1", "email", FeedbackKind.UNSUBSCRIBED, NOON)
    promo = candidate("promo", NOON + timedelta(hours=1), channels=("email", "push"))
    (decision,) = orch.on_step(state, step(NOON + timedelta(hours=1), promo)).decisions
    assert decision.outcome is Outcome.SENT and decision.channel == "push"


def test_two_triggers_on_one_event_the_higher_priority_wins() -> None:
    orch = orchestrator()
    low = candidate("newsletter", NOON, priority=10)
    high = candidate("abandoned_cart", NOON, priority=70)
    decisions = orch.on_step(None, step(NOON, low, high)).decisions
    outcome = {d.rule_id: (d.outcome, d.reason.code.value) for d in decisions}
    assert outcome["abandoned_cart"] == (Outcome.SENT, "sent")
    assert outcome["newsletter"][1] == "lower_priority"


def test_report_compares_conversion_after_sent_and_after_holdout() -> None:
    def decision(customer: str, outcome: str, at: datetime) -> dict[str, object]:
        return {
            "rule_id": "winback",
            "customer_id": customer,
            "outcome": outcome,
            "decided_at": at.isoformat(),
            "reason": {"code": outcome},
        }

    decisions = [
        decision("a", "sent", NOON),
        decision("b", "sent", NOON),
        decision("c", "holdout", NOON),
        decision("d", "holdout", NOON),
    ]
    orders = {
        "a": [NOON + timedelta(days=2)],
        "b": [NOON + timedelta(days=9)],
        "c": [NOON - timedelta(days=1)],
    }
    (report,) = build_report(decisions, orders, {"winback": timedelta(days=7)}, timedelta(days=7))
    assert report.sent_rate == 0.5  # b ordered after the attribution window
    assert report.holdout_rate == 0.0  # c ordered before the decision
    assert report.lift == 0.5


def test_nothing_older_than_the_send_horizon_is_sent() -> None:
    orch = orchestrator()
    horizon = NOON + timedelta(days=1)
    done = orch.on_step(None, step(NOON, candidate("welcome", NOON, Category.SERVICE)), horizon)
    (decision,) = done.decisions
    assert decision.outcome is Outcome.EXPIRED
    assert "send horizon" in decision.reason.text
    assert done.actions == []
    # A fresh one for the same customer is decided normally, with no budget used up.
    fresh = horizon + timedelta(hours=1)
    later = orch.on_step(done.state, step(fresh, candidate("promo", fresh)), horizon)
    assert [d.outcome for d in later.decisions] == [Outcome.SENT]


def _simulate(events: list[dict[str, object]], tmp_path: Path) -> list[dict[str, object]]:
    import io

    import orjson

    from streams.core.engine import load_engine
    from streams.playbook import DEFAULT_RULES
    from streams.simulator import simulate

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = io.BytesIO()
    simulate(path, load_engine(DEFAULT_RULES.read_text()), None, out)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def _event(n: int, kind: str, at: datetime, **props: object) -> dict[str, object]:
    return {
        "event_id": f"e{n}",
        "type": kind,
        "customer_id": "c-9",
        "occurred_at": at.isoformat(),
        "properties": props,
    }


def _opted_in(at: datetime) -> list[dict[str, object]]:
    return [
        _event(1, "registered", at, email="c9@example.org", timezone="Europe/Berlin"),
        _event(2, "email_confirmed", at + timedelta(minutes=1)),
        _event(3, "consent_changed", at + timedelta(minutes=2), channel="push", granted=True),
        _event(4, "consent_changed", at + timedelta(minutes=2), channel="email", granted=True),
    ]


def test_a_timer_due_before_the_next_event_is_decided_as_live_before_it(tmp_path: Path) -> None:
    # Cart at 20:00 Berlin: abandoned_cart is due at 21:00, in quiet hours, so deferred to
    # 08:00; the order at 22:00 then cancels it. Deciding the overdue timer together with
    # the order (after it) would send a cart reminder to a customer who bought.
    start = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
    cart_at = datetime(2026, 6, 10, 18, 0, tzinfo=UTC)
    items = [{"sku": "oil", "category": "motor_oil", "quantity": 1, "price": 40.0}]
    events = [
        *_opted_in(start),
        _event(5, "cart_updated", cart_at, items=items),
        _event(
            6, "order_placed", cart_at + timedelta(hours=2), order_id="o1", amount=40.0, items=items
        ),
    ]
    cart = [d for d in _simulate(events, tmp_path) if d["rule_id"] == "abandoned_cart"]
    assert [(d["outcome"], d["reason"]["code"]) for d in cart] == [  # type: ignore[index]
        ("deferred", "quiet_hours"),
        ("suppressed", "cancelled_by_event"),
    ]


def test_an_overdue_timer_is_decided_with_the_consent_of_its_due_time(tmp_path: Path) -> None:
    start = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
    cart_at = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)  # 10:00 Berlin: due 11:00 Berlin
    items = [{"sku": "oil", "category": "motor_oil", "quantity": 1, "price": 40.0}]
    events = [
        *_opted_in(start),
        _event(5, "cart_updated", cart_at, items=items),
        _event(6, "consent_changed", cart_at + timedelta(hours=2), channel="push", granted=False),
    ]
    cart = [d for d in _simulate(events, tmp_path) if d["rule_id"] == "abandoned_cart"]
    # At 11:00 push was still allowed: a live worker sent it on push, its first channel.
    assert [(d["outcome"], d["channel"]) for d in cart] == [("sent", "push")]


def test_deferrals_due_at_one_instant_are_decided_in_one_order_however_batched() -> None:
    # Two marketing messages deferred by quiet hours to 08:00 Berlin; the 2 h minimum gap
    # lets only the first through. Whether the cart reminder's step ran on its own at
    # 22:00 (the simulator) or late, in the same run that releases the morning's
    # deferrals (a timer fired after a restart), the same one must be sent.
    orch = orchestrator()
    review = candidate("review_request", NIGHT)
    cart = candidate("abandoned_cart", NIGHT + timedelta(minutes=30))
    morning = datetime(2026, 6, 11, 7, 0, tzinfo=UTC)

    def at_morning(decisions: list[Decision]) -> list[tuple[str, Outcome]]:
        return [(d.rule_id, d.outcome) for d in decisions if d.decided_at >= morning - HOUR]

    first = orch.on_step(None, step(NIGHT, review)).state
    on_its_own = orch.on_step(first, step(NIGHT + timedelta(minutes=30), cart))
    separately = at_morning(orch.advance(on_its_own.state, morning).decisions)

    first = orch.on_step(None, step(NIGHT, review)).state
    together = at_morning(orch.on_step(first, step(morning, cart)).decisions)

    assert together == separately
    (_, sent), (_, second) = separately
    assert sent is Outcome.SENT and second is not Outcome.SENT
