"""The contact policy as a customer and a CRM manager notice it.

Consent and double opt-in, channel fallback, quiet hours in the customer's
timezone (also on daylight-saving days), frequency caps and the minimum gap,
deferral and expiry, holdouts, priority between triggers firing together, and
at-least-once redelivery that must never produce a second message.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from schemas.candidate import Category
from schemas.candidate_record import CandidateRecord, ReasonRecord
from schemas.decision import (
    Action,
    ContactHistory,
    Decision,
    FeedbackKind,
    Outcome,
    ReasonCode,
)
from schemas.policy import Cap, Policy, format_duration
from schemas.state import ConsentEntry, CustomerState, Profile
from streams.core.contact_policy import (
    ChannelConsent,
    PolicyResult,
    ProfileView,
    arbitrate,
    attributable,
    cancel,
    cancelled_by,
    decide,
    decide_window,
    record_feedback,
)
from streams.core.quiet_hours import in_quiet_hours, local_instant, quiet_hours_end

BERLIN = "Europe/Berlin"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday 11:00 in Berlin
EMPTY = ContactHistory()
_ids = itertools.count(1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def granted(*channels: str, category: str = "all") -> dict[str, ChannelConsent]:
    return {ch: ChannelConsent(True, category, T0 - timedelta(days=30)) for ch in channels}


def profile(
    *,
    consent: dict[str, ChannelConsent] | None = None,
    doi: bool = True,
    timezone: str | None = BERLIN,
) -> ProfileView:
    return ProfileView(
        timezone=timezone,
        consent=granted("email", "push", "sms") if consent is None else consent,
        email_confirmed_at=T0 - timedelta(days=30) if doi else None,
    )


def cand(
    *,
    now: datetime = T0,
    category: Category = Category.MARKETING,
    channels: tuple[str, ...] = ("email",),
    rule_id: str = "promo",
    priority: int = 50,
    ttl: timedelta = timedelta(days=1),
    holdout: bool = False,
    action_id: str | None = None,
) -> CandidateRecord:
    return CandidateRecord(
        action_id=action_id or f"{rule_id}-{next(_ids)}",
        rule_id=rule_id,
        customer_id="c-1",
        channels=list(channels),
        template=f"{rule_id}_v1",
        category=category,
        priority=priority,
        payload={"first_name": "Ada"},
        triggered_at=now,
        expires_at=now + ttl,
        reason=ReasonRecord(code="test", text="test trigger"),
        holdout=holdout,
    )


def policy(**fields: Any) -> Policy:
    """A policy without caps/gap/quiet hours unless the test adds them."""
    base: dict[str, Any] = {"caps": [], "min_gap": "0s", "quiet_hours": None}
    base.update(fields)
    return Policy.model_validate(base)


def run(
    candidate: CandidateRecord,
    history: ContactHistory = EMPTY,
    pol: Policy | None = None,
    now: datetime | None = None,
    view: ProfileView | None = None,
) -> PolicyResult:
    return decide(
        candidate,
        history,
        view if view is not None else profile(),
        pol if pol is not None else policy(),
        now if now is not None else candidate.triggered_at,
    )


def outcome(result: PolicyResult) -> tuple[Outcome | None, ReasonCode]:
    return result.outcome, result.reason.code


# --------------------------------------------------------------------------- 1. dedupe


def test_a_redelivered_candidate_produces_no_second_decision_or_message() -> None:
    c = cand(category=Category.TRANSACTIONAL)
    first = run(c)
    assert outcome(first) == (Outcome.SENT, ReasonCode.SENT)
    again = run(c, first.history, now=T0 + timedelta(minutes=5))
    assert again.duplicate and again.decision is None and again.action is None
    assert again.reason.code is ReasonCode.DUPLICATE
    assert again.history == first.history


def test_a_deferred_candidate_resent_early_is_a_duplicate_but_its_redelivery_is_decided() -> None:
    pol = policy(quiet_hours={})
    c = cand(now=at("2026-03-02T22:30:00+01:00"), category=Category.SERVICE)
    deferred = run(c, pol=pol)
    assert outcome(deferred) == (Outcome.DEFERRED, ReasonCode.QUIET_HOURS)
    assert deferred.deliver_at == at("2026-03-03T08:00:00+01:00")
    early = run(c, deferred.history, pol, now=at("2026-03-02T23:00:00+01:00"))
    assert early.duplicate
    assert deferred.deliver_at is not None
    redelivered = run(c, deferred.history, pol, now=deferred.deliver_at)
    assert outcome(redelivered) == (Outcome.SENT, ReasonCode.SENT)
    assert redelivered.history.deferred == []
    assert run(c, redelivered.history, pol, now=deferred.deliver_at).duplicate


def test_the_dedupe_memory_is_bounded_fifo() -> None:
    pol = policy(dedupe_window=3)
    history = EMPTY
    first = cand(category=Category.TRANSACTIONAL)
    history = run(first, history, pol).history
    for _ in range(3):
        history = run(cand(category=Category.TRANSACTIONAL), history, pol).history
    assert len(history.decided) == 3 and first.action_id not in history.decided


# --------------------------------------------------------------------------- 2. expiry


def test_a_candidate_arriving_after_it_expired_is_expired() -> None:
    c = cand(ttl=timedelta(hours=1))
    result = run(c, now=T0 + timedelta(hours=1, seconds=1))
    assert outcome(result) == (Outcome.EXPIRED, ReasonCode.EXPIRED)
    assert result.decision is not None and result.decision.channel is None
    assert c.action_id in result.history.decided
    assert outcome(run(cand(ttl=timedelta(hours=1)), now=T0 + timedelta(hours=1)))[0] is (
        Outcome.SENT
    )


# --------------------------------------------------------------------------- 3. consent


def test_falls_back_from_push_to_email_when_push_consent_is_off() -> None:
    consent = granted("email") | {"push": ChannelConsent(False, "all", T0 - timedelta(days=1))}
    result = run(cand(channels=("push", "email")), view=profile(consent=consent))
    assert outcome(result) == (Outcome.SENT, ReasonCode.SENT)
    assert result.action is not None and result.action.channel == "email"
    assert result.decision is not None and result.decision.channel == "email"


def test_marketing_email_without_double_opt_in_is_suppressed() -> None:
    result = run(cand(channels=("email",)), view=profile(doi=False))
    assert outcome(result) == (Outcome.SUPPRESSED, ReasonCode.NO_DOI)
    assert result.action is None
    # ...but a service email needs no DOI, and push marketing is not email.
    assert run(cand(category=Category.SERVICE), view=profile(doi=False)).action is not None
    push = run(cand(channels=("email", "push")), view=profile(doi=False))
    assert push.action is not None and push.action.channel == "push"
    # the DOI requirement can be switched off
    relaxed = policy(require_doi_for_marketing_email=False)
    assert run(cand(), pol=relaxed, view=profile(doi=False)).action is not None


def test_marketing_needs_an_explicit_opt_in_service_and_transactional_do_not() -> None:
    nobody = profile(consent={})
    assert outcome(run(cand(), view=nobody)) == (Outcome.SUPPRESSED, ReasonCode.NO_CONSENT)
    assert run(cand(category=Category.SERVICE), view=nobody).action is not None
    assert run(cand(category=Category.TRANSACTIONAL), view=nobody).action is not None
    opt_out_world = policy(marketing_requires_opt_in=False)
    assert run(cand(), pol=opt_out_world, view=profile(consent={})).action is not None


def test_revocations_by_category() -> None:
    def revoked(category: str) -> ProfileView:
        return profile(consent={"email": ChannelConsent(False, category, T0)})

    # revoking marketing keeps service messages
    assert run(cand(category=Category.SERVICE), view=revoked("marketing")).action is not None
    # revoking service or all stops marketing and service, never transactional
    for scope in ("service", "all"):
        assert run(cand(), view=revoked(scope)).reason.code is ReasonCode.NO_CONSENT
        assert run(cand(category=Category.SERVICE), view=revoked(scope)).action is None
        assert run(cand(category=Category.TRANSACTIONAL), view=revoked(scope)).action is not None
    # a service-only grant is no marketing opt-in
    service_only = profile(consent=granted("email", category="service"))
    assert run(cand(), view=service_only).reason.code is ReasonCode.NO_CONSENT


def test_feedback_blocks_a_channel_until_a_later_grant() -> None:
    history = record_feedback(EMPTY, "email", FeedbackKind.UNSUBSCRIBED, T0 - timedelta(days=1))
    assert run(cand(), history).reason.code is ReasonCode.NO_CONSENT
    assert run(cand(category=Category.SERVICE), history).action is None
    assert run(cand(category=Category.TRANSACTIONAL), history).action is not None
    regrant = profile(consent={"email": ChannelConsent(True, "marketing", T0)})
    assert run(cand(), history, view=regrant).action is not None

    bounced = record_feedback(EMPTY, "email", FeedbackKind.BOUNCED, T0 - timedelta(hours=1))
    result = run(cand(category=Category.TRANSACTIONAL), bounced)
    assert outcome(result) == (Outcome.SUPPRESSED, ReasonCode.NO_CHANNEL)
    fallback = run(cand(category=Category.TRANSACTIONAL, channels=("email", "sms")), bounced)
    assert fallback.action is not None and fallback.action.channel == "sms"


# --------------------------------------------------------------------------- 4. exit on conversion


def test_a_deferred_candidate_is_cancelled_by_its_exit_event() -> None:
    pol = policy(quiet_hours={})
    c = cand(now=at("2026-03-02T23:00:00+01:00"), category=Category.SERVICE, rule_id="cart")
    deferred = run(c, pol=pol)
    assert deferred.outcome is Outcome.DEFERRED
    assert cancelled_by("order_placed", ["order_placed"]) and not cancelled_by("visit", [])
    cancelled = cancel(c, deferred.history, pol, at("2026-03-03T07:00:00+01:00"), "order_placed")
    assert outcome(cancelled) == (Outcome.SUPPRESSED, ReasonCode.CANCELLED_BY_EVENT)
    assert deferred.deliver_at is not None
    assert run(c, cancelled.history, pol, now=deferred.deliver_at).duplicate


# --------------------------------------------------------------------------- 5. holdout


def test_holdout_is_recorded_for_attribution_and_uses_no_budget() -> None:
    pol = policy(caps=[{"name": "daily", "category": "marketing", "max": 1, "per": "24h"}])
    held = run(cand(holdout=True, channels=("push", "email")), pol=pol)
    assert outcome(held) == (Outcome.HOLDOUT, ReasonCode.HOLDOUT)
    assert held.action is None
    assert held.decision is not None and held.decision.channel == "push"
    later = run(cand(now=T0 + timedelta(hours=1)), held.history, pol)
    assert later.action is not None  # the holdout did not use the daily cap
    touches = attributable(later.history, T0 + timedelta(days=2), pol)
    assert [t.holdout for t in touches] == [True, False]
    assert attributable(later.history, T0 + timedelta(days=8), pol) == []


def test_a_holdout_without_consent_is_suppressed_not_held_out() -> None:
    result = run(cand(holdout=True), view=profile(consent={}))
    assert result.outcome is Outcome.SUPPRESSED


# --------------------------------------------------------------------------- 6. quiet hours


def test_marketing_at_night_waits_for_the_morning_in_the_customers_timezone() -> None:
    pol = policy(quiet_hours={})
    night = at("2026-03-02T22:15:00+01:00")
    result = run(cand(now=night), pol=pol)
    assert outcome(result) == (Outcome.DEFERRED, ReasonCode.QUIET_HOURS)
    assert result.deliver_at == at("2026-03-03T08:00:00+01:00")
    assert result.decision is not None and result.decision.channel == "email"
    # the same instant is 16:15 in New York: no quiet hours there
    ny = run(cand(now=night), pol=pol, view=profile(timezone="America/New_York"))
    assert ny.outcome is Outcome.SENT
    # no (or an unknown) timezone: the policy's default
    ny_pol = policy(quiet_hours={}, default_timezone="America/New_York")
    assert run(cand(now=night), pol=ny_pol, view=profile(timezone=None)).outcome is Outcome.SENT
    assert run(cand(now=night), pol=ny_pol, view=profile(timezone="Mars/Base")).outcome is (
        Outcome.SENT
    )


def test_a_transactional_message_during_quiet_hours_is_sent() -> None:
    pol = policy(quiet_hours={})
    result = run(
        cand(now=at("2026-03-02T03:00:00+01:00"), category=Category.TRANSACTIONAL), pol=pol
    )
    assert outcome(result) == (Outcome.SENT, ReasonCode.SENT)


def test_quiet_hours_apply_only_to_the_configured_categories() -> None:
    pol = policy(quiet_hours={"start": "22:00", "end": "07:00", "applies_to": ["marketing"]})
    night = at("2026-03-02T23:00:00+01:00")
    assert run(cand(now=night, category=Category.SERVICE), pol=pol).outcome is Outcome.SENT
    assert run(cand(now=night), pol=pol).deliver_at == at("2026-03-03T07:00:00+01:00")


def test_quiet_hours_that_outlast_the_ttl_expire_the_message_at_once() -> None:
    pol = policy(quiet_hours={})
    result = run(cand(now=at("2026-03-02T23:00:00+01:00"), ttl=timedelta(hours=2)), pol=pol)
    assert outcome(result) == (Outcome.EXPIRED, ReasonCode.QUIET_HOURS)
    assert result.deliver_at is None


# --------------------------------------------------------------------------- 6b. DST


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Saturday evening before the spring switch (CET, +01:00): wakes at 08:00 CEST
        ("2026-03-28T22:00:00+01:00", "2026-03-29T06:00:00Z"),
        # switch day, after 02:00 -> 03:00: 21:30 CEST is quiet; 08:00 CEST next day
        ("2026-03-29T21:30:00+02:00", "2026-03-30T06:00:00Z"),
        ("2026-03-29T07:30:00+02:00", "2026-03-29T06:00:00Z"),
        # evening before the autumn switch (CEST): wakes at 08:00 CET = 07:00Z
        ("2026-10-24T22:00:00+02:00", "2026-10-25T07:00:00Z"),
        ("2026-10-25T07:30:00+01:00", "2026-10-25T07:00:00Z"),
        ("2026-10-25T21:00:00+01:00", "2026-10-26T07:00:00Z"),
    ],
)
def test_quiet_hours_on_daylight_saving_switch_days_in_berlin(now: str, expected: str) -> None:
    result = run(cand(now=at(now)), pol=policy(quiet_hours={}))
    assert result.outcome is Outcome.DEFERRED
    assert result.deliver_at == at(expected)
    assert result.deliver_at is not None
    assert result.deliver_at.astimezone(ZoneInfo(BERLIN)).time() == time(8, 0)


@pytest.mark.parametrize(
    "now",
    [
        "2026-03-29T20:30:00+02:00",  # an hour before: 19:30 local the day before was CET
        "2026-03-29T08:00:00+02:00",
        "2026-10-25T08:00:00+01:00",
        "2026-10-25T20:59:00+01:00",
    ],
)
def test_daytime_on_switch_days_is_not_quiet(now: str) -> None:
    assert run(cand(now=at(now)), pol=policy(quiet_hours={})).outcome is Outcome.SENT


def test_a_quiet_end_inside_the_spring_gap_or_the_autumn_fold() -> None:
    pol = policy(quiet_hours={"start": "22:00", "end": "02:30"})
    spring = run(cand(now=at("2026-03-28T23:00:00+01:00")), pol=pol)
    assert spring.deliver_at == at("2026-03-29T01:00:00Z")  # 02:30 does not exist: 03:00 CEST
    autumn = run(cand(now=at("2026-10-24T23:00:00+02:00")), pol=pol)
    assert autumn.deliver_at == at("2026-10-25T00:30:00Z")  # first of the two 02:30s (CEST)
    # inside the repeated hour, after the first 02:30 but before the second: not quiet
    assert not in_quiet_hours(at("2026-10-25T00:45:00Z"), ZoneInfo(BERLIN), time(22), time(2, 30))


def test_a_quiet_end_seen_from_the_second_pass_of_the_repeated_hour_is_its_second_pass() -> None:
    # 01:15Z is 02:15 CET, the clock's second pass through 02:00-03:00: quiet until it
    # reads 02:30 again (01:30Z). The first 02:30 (00:30Z) is in the past.
    tz = ZoneInfo(BERLIN)
    assert in_quiet_hours(at("2026-10-25T01:15:00Z"), tz, time(22), time(2, 30))
    end = quiet_hours_end(at("2026-10-25T01:15:00Z"), tz, time(22), time(2, 30))
    assert end == at("2026-10-25T01:30:00Z")


def test_a_gap_ending_in_the_repeated_hour_defers_to_the_quiet_end_after_it() -> None:
    # Held by the gap until 01:15Z, which is quiet (02:15 CET): the first 02:30 was
    # behind it, and the policy crashed ("did not converge") going back and forth.
    pol = policy(
        quiet_hours={"start": "22:00", "end": "02:30", "applies_to": ["marketing"]},
        min_gap="2h",
        when_capped={"marketing": "defer"},
    )
    first = run(cand(now=at("2026-10-24T23:15:00Z"), category=Category.SERVICE), pol=pol)
    assert first.outcome is Outcome.SENT
    later = run(cand(now=at("2026-10-25T00:45:00Z")), first.history, pol)
    assert later.outcome is Outcome.DEFERRED
    assert later.deliver_at == at("2026-10-25T01:30:00Z")


def test_local_instant_resolves_gaps_and_folds() -> None:
    tz = ZoneInfo(BERLIN)
    assert local_instant(date(2026, 3, 29), time(2, 0), tz) == at("2026-03-29T01:00:00Z")
    assert local_instant(date(2026, 3, 29), time(2, 59), tz) == at("2026-03-29T01:00:00Z")
    assert local_instant(date(2026, 3, 29), time(3, 0), tz) == at("2026-03-29T01:00:00Z")
    assert local_instant(date(2026, 10, 25), time(2, 0), tz) == at("2026-10-25T00:00:00Z")
    assert local_instant(date(2026, 10, 25), time(3, 0), tz) == at("2026-10-25T02:00:00Z")


# --------------------------------------------------------------------------- 7. caps, gap


DAILY = {"name": "marketing_daily", "category": "marketing", "max": 1, "per": "24h"}


def test_a_second_marketing_message_the_same_day_is_suppressed() -> None:
    pol = policy(caps=[DAILY])
    first = run(cand(), pol=pol)
    second = run(cand(now=T0 + timedelta(hours=5)), first.history, pol)
    assert outcome(second) == (Outcome.SUPPRESSED, ReasonCode.FREQUENCY_CAP)
    assert "marketing_daily" in second.reason.text
    third = run(cand(now=T0 + timedelta(hours=24)), second.history, pol)
    assert third.outcome is Outcome.SENT  # the window is (now - 24h, now]


def test_a_capped_service_message_is_deferred_until_the_cap_frees() -> None:
    pol = policy(caps=[{"name": "svc", "category": "service", "max": 2, "per": "1d"}])
    history = EMPTY
    for minutes in (0, 30):
        c = cand(now=T0 + timedelta(minutes=minutes), category=Category.SERVICE)
        history = run(c, history, pol).history
    capped = run(cand(now=T0 + timedelta(hours=1), category=Category.SERVICE), history, pol)
    assert outcome(capped) == (Outcome.DEFERRED, ReasonCode.FREQUENCY_CAP)
    assert capped.deliver_at == T0 + timedelta(days=1)  # the oldest of the two leaves the window


def test_rule_override_defers_marketing_instead_of_suppressing() -> None:
    pol = policy(caps=[DAILY], rule_overrides={"birthday": {"when_capped": "defer"}})
    first = run(cand(), pol=pol)
    later = T0 + timedelta(hours=3)
    plain = run(cand(now=later), first.history, pol)
    birthday = run(cand(now=later, rule_id="birthday", ttl=timedelta(days=3)), first.history, pol)
    assert plain.outcome is Outcome.SUPPRESSED
    assert outcome(birthday) == (Outcome.DEFERRED, ReasonCode.FREQUENCY_CAP)
    assert birthday.deliver_at == T0 + timedelta(days=1)


def test_min_gap_between_any_two_non_transactional_messages() -> None:
    pol = policy(min_gap="2h")
    first = run(cand(channels=("push",)), pol=pol)
    soon = run(cand(now=T0 + timedelta(minutes=90), category=Category.SERVICE), first.history, pol)
    assert outcome(soon) == (Outcome.DEFERRED, ReasonCode.MIN_GAP)
    assert soon.deliver_at == T0 + timedelta(hours=2)
    receipt = run(
        cand(now=T0 + timedelta(minutes=5), category=Category.TRANSACTIONAL), first.history, pol
    )
    assert receipt.outcome is Outcome.SENT


def test_transactional_messages_neither_use_nor_are_blocked_by_other_caps() -> None:
    pol = policy(
        caps=[DAILY, {"name": "email_any", "channel": "email", "max": 1, "per": "7d"}],
        min_gap="2h",
    )
    history = EMPTY
    for minutes in range(0, 50, 10):
        c = cand(now=T0 + timedelta(minutes=minutes), category=Category.TRANSACTIONAL)
        result = run(c, history, pol)
        assert result.outcome is Outcome.SENT
        history = result.history
    assert run(cand(now=T0 + timedelta(hours=1)), history, pol).outcome is Outcome.SENT


def test_a_transactional_cap_limits_only_transactional_messages() -> None:
    cap = {"name": "sms_tx", "channel": "sms", "category": "transactional", "max": 1, "per": "1h"}
    pol = policy(caps=[cap])
    first = run(cand(category=Category.TRANSACTIONAL, channels=("sms",)), pol=pol)
    second_sms = cand(
        now=T0 + timedelta(minutes=1), category=Category.TRANSACTIONAL, channels=("sms", "email")
    )
    fallback = run(second_sms, first.history, pol)
    assert fallback.action is not None and fallback.action.channel == "email"
    assert run(cand(channels=("sms",)), first.history, pol).outcome is Outcome.SENT


def test_a_channel_cap_falls_back_to_another_channel() -> None:
    pol = policy(caps=[{"name": "sms_monthly", "channel": "sms", "max": 1, "per": "30d"}])
    first = run(cand(category=Category.SERVICE, channels=("sms",)), pol=pol)
    second = run(
        cand(now=T0 + timedelta(days=1), category=Category.SERVICE, channels=("sms", "email")),
        first.history,
        pol,
    )
    assert second.action is not None and second.action.channel == "email"


# --------------------------------------------------------------------------- interplay


def test_a_capped_marketing_message_is_deferred_past_quiet_hours_then_expires() -> None:
    pol = policy(quiet_hours={}, min_gap="2h", when_capped={"marketing": "defer"})
    evening = at("2026-03-02T20:00:00+01:00")
    first = run(cand(now=evening, channels=("push",)), pol=pol)
    assert first.outcome is Outcome.SENT
    # 20:30: the gap frees at 22:00, inside quiet hours -> the first allowed instant is 08:00
    offer = cand(now=evening + timedelta(minutes=30), ttl=timedelta(hours=13))
    deferred = run(offer, first.history, pol)
    assert outcome(deferred) == (Outcome.DEFERRED, ReasonCode.MIN_GAP)
    assert deferred.deliver_at == at("2026-03-03T08:00:00+01:00")
    # the worker was down over night; the offer comes back at 10:00, after it expired
    late = run(offer, deferred.history, pol, now=at("2026-03-03T10:00:00+01:00"))
    assert outcome(late) == (Outcome.EXPIRED, ReasonCode.EXPIRED)
    # with a TTL ending before 08:00 it expires at once instead of waiting for the morning
    short = cand(now=evening + timedelta(minutes=30), ttl=timedelta(hours=6))
    expired = run(short, first.history, pol)
    assert outcome(expired) == (Outcome.EXPIRED, ReasonCode.MIN_GAP)
    assert "after expiry" in expired.reason.text


def test_a_deferred_message_is_rechecked_at_delivery() -> None:
    pol = policy(quiet_hours={}, caps=[DAILY], when_capped={"marketing": "defer"})
    night = at("2026-03-02T23:00:00+01:00")
    a = cand(now=night, ttl=timedelta(days=3), priority=10)
    b = cand(now=night + timedelta(minutes=1), ttl=timedelta(days=3), priority=90)
    ra = run(a, EMPTY, pol)
    rb = run(b, ra.history, pol)
    assert ra.deliver_at == rb.deliver_at == at("2026-03-03T08:00:00+01:00")
    morning = at("2026-03-03T08:00:00+01:00")
    window = decide_window([a, b], rb.history, profile(), pol, morning)
    assert [r.decision.action_id for r in window if r.decision] == [b.action_id, a.action_id]
    assert [r.outcome for r in window] == [Outcome.SENT, Outcome.DEFERRED]
    assert window[1].reason.code is ReasonCode.LOWER_PRIORITY
    assert window[1].deliver_at == morning + timedelta(days=1)


# --------------------------------------------------------------------------- 8. arbitration


def test_the_higher_priority_trigger_wins_when_two_fire_on_one_event() -> None:
    pol = policy(min_gap="2h", caps=[DAILY])
    second_order = cand(rule_id="second_order", priority=60, channels=("email", "push"))
    vip = cand(rule_id="vip_threshold", priority=80, channels=("email", "push"))
    results = decide_window([second_order, vip], EMPTY, profile(), pol, T0)
    winner, loser = results
    assert winner.action is not None and winner.action.rule_id == "vip_threshold"
    assert loser.outcome is Outcome.SUPPRESSED
    assert loser.reason.code is ReasonCode.LOWER_PRIORITY
    # an order confirmation firing on the same event is not affected
    receipt = cand(rule_id="order_thanks", priority=10, category=Category.TRANSACTIONAL)
    results = decide_window([second_order, vip, receipt], EMPTY, profile(), pol, T0)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SUPPRESSED, Outcome.SENT]


def test_arbitrate_orders_by_priority_then_time_then_id() -> None:
    a = cand(priority=50, now=T0 + timedelta(seconds=2), action_id="a")
    b = cand(priority=50, now=T0, action_id="b")
    c = cand(priority=50, now=T0, action_id="c")
    d = cand(priority=90, now=T0 + timedelta(seconds=3), action_id="d")
    assert [x.action_id for x in arbitrate([a, b, c, d])] == ["d", "b", "c", "a"]


def test_a_decision_window_holds_one_customer() -> None:
    other = CandidateRecord(**{**cand().values(), "customer_id": "c-2"})
    with pytest.raises(ValueError, match="one customer"):
        decide_window([cand(), other], EMPTY, profile(), policy(), T0)


# --------------------------------------------------------------------------- contracts


def test_decision_and_action_follow_the_contract() -> None:
    result = run(cand(channels=("push",)))
    assert result.decision is not None and result.action is not None
    decision = result.decision.model_dump(mode="json")
    assert set(decision) >= {
        "action_id",
        "rule_id",
        "customer_id",
        "channel",
        "outcome",
        "reason",
        "triggered_at",
        "decided_at",
        "deliver_at",
    }
    assert decision["outcome"] == "sent" and decision["reason"]["code"] == "sent"
    assert decision["decided_at"] == "2026-03-02T10:00:00Z"
    action = result.action.model_dump(mode="json")
    assert set(action) == {
        "action_id",
        "rule_id",
        "customer_id",
        "channel",
        "template",
        "category",
        "priority",
        "payload",
        "triggered_at",
        "decided_at",
        "expires_at",
        "reason",
    }
    assert Action.model_validate_json(result.action.model_dump_json()) == result.action
    assert Decision.model_validate_json(result.decision.model_dump_json()) == result.decision
    restored = ContactHistory.model_validate_json(result.history.model_dump_json())
    assert restored == result.history


def test_profile_view_from_customer_state() -> None:
    state = CustomerState(
        customer_id="c-1",
        profile=Profile(timezone=BERLIN),
        consent={"email": ConsentEntry(granted=True, category="marketing", changed_at=T0)},
        email_confirmed_at=T0,
    )
    view = ProfileView.from_state(state)
    assert view.timezone == BERLIN and view.email_confirmed_at == T0
    assert view.consent["email"] == ChannelConsent(True, "marketing", T0)


def test_naive_clock_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(cand(), EMPTY, profile(), policy(), datetime(2026, 3, 2, 10))


# --------------------------------------------------------------------------- policy file


POLICY_YAML = """
require_doi_for_marketing_email: true
default_timezone: Europe/Berlin
quiet_hours: {start: "21:00", end: "08:00", applies_to: [marketing, service]}
caps:
  - {name: marketing_daily, category: marketing, max: 1, per: 24h}
  - {name: marketing_weekly, category: marketing, max: 3, per: 7d}
  - {name: sms_monthly, channel: sms, max: 2, per: 30d}
min_gap: 2h
when_capped: {marketing: suppress, service: defer}
rule_overrides:
  appointment_reminder: {when_capped: defer}
decision_window: 3s
dedupe_window: 256
attribution_window: 7d
"""


def test_the_policy_section_parses_and_round_trips() -> None:
    pol = Policy.model_validate(yaml.safe_load(POLICY_YAML))
    assert pol.caps[1].per == timedelta(days=7)
    assert pol.min_gap == timedelta(hours=2)
    assert pol.quiet_hours is not None and pol.quiet_hours.start == time(21, 0)
    assert pol.history_horizon == timedelta(days=30)
    assert pol.when_capped_for("appointment_reminder", Category.MARKETING).value == "defer"
    assert pol.when_capped_for("welcome", Category.MARKETING).value == "suppress"
    assert pol.unknown_rule_overrides(["welcome"]) == ["appointment_reminder"]
    dumped = pol.model_dump(mode="json")
    assert dumped["caps"][1]["per"] == "7d" and dumped["quiet_hours"]["start"] == "21:00"
    assert Policy.model_validate(dumped) == pol
    assert Policy() == Policy.model_validate({})  # sensible defaults
    assert format_duration(timedelta(seconds=1.5)) == "1.5s"
    assert format_duration(timedelta(minutes=90)) == "90m"
    assert format_duration(timedelta(0)) == "0s"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"min_gap": "2 hours"}, "invalid duration"),
        ({"min_gap": 7200}, "quoted duration"),
        ({"caps": [{"name": "x", "max": 1, "per": "0s"}]}, "longer than 0s"),
        ({"caps": [{"name": "x", "max": 0, "per": "1d"}]}, "greater than or equal to 1"),
        ({"caps": [DAILY, DAILY]}, "duplicate cap name"),
        ({"quiet_hours": {"start": "9pm"}}, "HH:MM"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "start != end"),
        ({"quiet_hours": {"applies_to": ["transactional"]}}, "never held"),
        ({"default_timezone": "Mars/Base"}, "unknown IANA timezone"),
        ({"when_capped": {"marketing": "drop"}}, "suppress"),
        ({"max_per_day": 3}, "Extra inputs"),
    ],
)
def test_policy_errors_are_reported(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(section)


def test_cap_matching() -> None:
    any_channel = Cap.model_validate({"name": "all", "max": 1, "per": "1d"})
    assert any_channel.applies("sms", Category.SERVICE)
    assert not any_channel.applies("sms", Category.TRANSACTIONAL)


# --------------------------------------------------------------------------- property


def _simulate(seed: int, n: int = 5000) -> dict[str, Any]:
    """Feed ``n`` random candidates over 90 days for one customer, re-delivering deferrals."""
    rng = random.Random(seed)
    pol = Policy.model_validate(
        {
            "default_timezone": BERLIN,
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "caps": [
                {"name": "marketing_daily", "category": "marketing", "max": 1, "per": "24h"},
                {"name": "marketing_weekly", "category": "marketing", "max": 3, "per": "7d"},
                {"name": "sms_monthly", "channel": "sms", "max": 2, "per": "30d"},
                {"name": "service_daily", "category": "service", "max": 2, "per": "1d"},
                {"name": "push_any", "channel": "push", "max": 4, "per": "3d"},
            ],
            "min_gap": "2h",
            "when_capped": {"marketing": "suppress", "service": "defer"},
            "rule_overrides": {"m_defer": {"when_capped": "defer"}},
        }
    )
    view = profile()
    start = at("2026-02-15T00:00:00Z")  # spans the March DST switch
    span = timedelta(days=90).total_seconds()
    seq = itertools.count()
    queue: list[tuple[datetime, int, CandidateRecord]] = []
    originals: list[CandidateRecord] = []
    for i in range(n):
        now = start + timedelta(seconds=int(rng.random() * span))
        if originals and rng.random() < 0.1:
            now = originals[-1].triggered_at  # fires on the same event as the previous one
        category = rng.choice(list(Category))
        rule_id = {
            Category.MARKETING: rng.choice(["m_suppress", "m_defer"]),
            Category.SERVICE: "s",
            Category.TRANSACTIONAL: "t",
        }[category]
        channels = rng.sample(["push", "email", "sms"], k=rng.randint(1, 3))
        c = cand(
            now=now,
            category=category,
            channels=tuple(channels),
            rule_id=rule_id,
            priority=rng.randint(0, 100),
            ttl=timedelta(minutes=rng.randint(30, 4 * 24 * 60)),
            holdout=category is not Category.TRANSACTIONAL and rng.random() < 0.05,
            action_id=f"{rule_id}-{i}",
        )
        originals.append(c)
        heapq.heappush(queue, (now, next(seq), c))
        if rng.random() < 0.05:  # at-least-once: the same candidate delivered again later
            later = now + timedelta(minutes=rng.randint(0, 3 * 24 * 60))
            heapq.heappush(queue, (later, next(seq), c))

    history = EMPTY
    decisions: list[Decision] = []
    actions: list[Action] = []
    duplicates = 0
    while queue:
        now = queue[0][0]
        batch: list[CandidateRecord] = []
        while queue and queue[0][0] == now:
            batch.append(heapq.heappop(queue)[2])
        for result in decide_window(batch, history, view, pol, now):
            history = result.history
            if result.decision is None:
                duplicates += 1
                continue
            decisions.append(result.decision)
            if result.action is not None:
                actions.append(result.action)
            if result.decision.outcome is Outcome.DEFERRED:
                assert result.deliver_at is not None and result.deliver_at > now
                deferred = next(c for c in batch if c.action_id == result.decision.action_id)
                heapq.heappush(queue, (result.deliver_at, next(seq), deferred))
    return {
        "policy": pol,
        "originals": originals,
        "decisions": decisions,
        "actions": actions,
        "duplicates": duplicates,
    }


def test_caps_gap_and_quiet_hours_are_never_violated_by_what_is_sent() -> None:
    run_ = _simulate(seed=20261122)
    pol: Policy = run_["policy"]
    originals: list[CandidateRecord] = run_["originals"]
    decisions: list[Decision] = run_["decisions"]
    actions: list[Action] = run_["actions"]
    by_id = {c.action_id: c for c in originals}
    tz = ZoneInfo(BERLIN)
    assert run_["duplicates"] > 0

    # Checked from the emitted actions alone, not from the policy's history.
    sent = sorted(actions, key=lambda a: a.decided_at)
    for cap in pol.caps:
        matching = [a.decided_at for a in sent if cap.applies(a.channel, a.category)]
        for i, t in enumerate(matching):
            in_window = sum(1 for s in matching[: i + 1] if s > t - cap.per)
            assert in_window <= cap.max, (cap.name, t)
    non_tx = [a.decided_at for a in sent if a.category is not Category.TRANSACTIONAL]
    for earlier, later in itertools.pairwise(non_tx):
        assert later - earlier >= pol.min_gap
    for a in sent:
        assert a.decided_at <= a.expires_at
        if a.category is not Category.TRANSACTIONAL:
            local = a.decided_at.astimezone(tz).time()
            assert time(8, 0) <= local < time(21, 0), a

    # Transactional messages are never blocked: sent on their first channel at arrival.
    tx_sent = {a.action_id: a for a in sent if a.category is Category.TRANSACTIONAL}
    tx = [c for c in originals if c.category is Category.TRANSACTIONAL]
    assert len(tx) > 1000
    for c in tx:
        assert tx_sent[c.action_id].decided_at == c.triggered_at
        assert tx_sent[c.action_id].channel == c.channels[0]

    # Exactly one final decision per candidate, at most one message; deferrals re-decided.
    finals: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        if d.outcome is not Outcome.DEFERRED:
            finals[d.action_id].append(d)
        else:
            assert d.deliver_at is not None and d.deliver_at <= by_id[d.action_id].expires_at
    assert set(finals) == set(by_id)
    assert all(len(v) == 1 for v in finals.values())
    assert len({a.action_id for a in actions}) == len(actions)

    # The run exercised every path.
    codes = {d.reason.code for d in decisions}
    assert {
        ReasonCode.SENT,
        ReasonCode.HOLDOUT,
        ReasonCode.QUIET_HOURS,
        ReasonCode.FREQUENCY_CAP,
        ReasonCode.MIN_GAP,
        ReasonCode.LOWER_PRIORITY,
    } <= codes
    assert {Outcome.SENT, Outcome.SUPPRESSED, Outcome.DEFERRED, Outcome.EXPIRED} <= {
        d.outcome for d in decisions
    }


def test_the_same_input_gives_the_same_decisions() -> None:
    first = _simulate(seed=7, n=800)
    second = _simulate(seed=7, n=800)
    assert first["decisions"] == second["decisions"]
    assert first["actions"] == second["actions"]
