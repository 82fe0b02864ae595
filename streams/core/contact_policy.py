"""The contact policy: whether, when and on which channel a candidate is sent.

Pure and deterministic: the clock (``now``) is an argument, there is no I/O, and
the same candidates, profile views and histories in the same order give the same
decisions. The orchestrator agent and the offline simulator both call it.

Evaluation order of `decide` (the first check that applies decides):

1. **Dedupe.** An action id already finally decided, or deferred and re-sent
   before its ``deliver_at``, is a *duplicate*: the result carries no decision
   (``result.decision is None``) and nothing must be published. A deferred
   candidate re-delivered at or after its ``deliver_at`` is decided normally.
2. **Expiry.** ``now > expires_at``: outcome ``expired`` (code ``expired``).
3. **Consent, with channel fallback.** The channels allowed for the candidate's
   category are kept in the candidate's fallback order; none allowed: outcome
   ``suppressed`` with code ``no_doi`` (some channel lacked only the double
   opt-in), else ``no_consent`` (some channel lacked consent), else
   ``no_channel`` (every channel hard-bounced). Per channel:

   - *transactional*: always allowed (no consent needed: contract performance),
     unless the channel hard-bounced. Revocations do not stop an order
     confirmation.
   - *service*: allowed unless revoked: a consent record revoking ``service`` or
     ``all`` on the channel, or an unsubscribe/complaint/bounce feedback.
   - *marketing*: needs an explicit, unrevoked opt-in (``granted`` with category
     ``marketing`` or ``all``) on the channel (GDPR/ePrivacy: silence is not
     consent; ``marketing_requires_opt_in: false`` relaxes this to "unless
     revoked"); revoking ``service`` or ``all`` revokes marketing too; and on
     ``email`` the double opt-in must be confirmed when
     ``require_doi_for_marketing_email``.

   Feedback blocks (`record_feedback`) hold until a later consent grant on the
   same channel.
4. **Exit on conversion** is the caller's: when an event arrives for a customer
   with deferred candidates, it asks `cancelled_by(event_type, rule.cancel_on)`
   and, if true, finalises the candidate with `cancel` (outcome ``suppressed``,
   code ``cancelled_by_event``) instead of re-delivering it.
5. **Holdout.** ``candidate.holdout``: outcome ``holdout`` with the channel that
   would have been used; recorded in the history for attribution, uses no cap.
6. **Quiet hours**, in the customer's timezone (``profile.timezone``, else
   ``policy.default_timezone``), DST-correct: marketing and service (as
   configured) are deferred to the window's end; transactional always passes.
7. **Frequency caps and minimum gap**, over rolling windows of the messages
   actually sent, checked at the instant of delivery (the end of quiet hours
   for a message arriving inside them). A capped candidate is ``suppressed`` or, with
   ``when_capped: defer``, ``deferred`` to the earliest instant at which every
   cap, the gap and the quiet hours allow it (on the allowed channel that frees
   first; ties go to the earlier channel in the fallback order). If that instant
   is after ``expires_at``, the outcome is ``expired`` at once (code: what held
   it back). Caps without a category, and the minimum gap, count and limit
   marketing and service messages only; transactional messages are counted and
   limited only by caps with ``category: transactional``.
8. **Priority arbitration** (`decide_window`): candidates of *one* customer that
   arrive within ``policy.decision_window`` of each other are buffered by the
   caller and decided together, in `arbitrate` order (highest priority first,
   then earliest ``triggered_at``, then ``action_id``). A candidate held back by a
   cap or the gap only because a higher-priority candidate of the same window
   was just sent gets code ``lower_priority`` (its outcome is still suppressed or
   deferred per ``when_capped``).

Otherwise the outcome is ``sent``, with an `Action` for ``crm.actions.<channel>``.

Caps count a send at ``t`` in a window ``(now - per, now]`` (sends recorded after
``now``, possible when the caller replays out of order, are counted too, which
errs on the safe side); a cap of ``max`` per ``per`` therefore frees exactly
``per`` after the oldest send that fills it.

A deferred candidate reserves no budget: at ``deliver_at`` it is decided again
from step 1 and may be deferred again, suppressed or expire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.builders import builder
from schemas.candidate import Category
from schemas.candidate_record import CandidateRecord
from schemas.contact_entry import ContactEntry
from schemas.decision import (
    Action,
    ChannelBlock,
    ContactHistory,
    Decision,
    DecisionReason,
    DeferredRecord,
    FeedbackKind,
    Outcome,
    ReasonCode,
)
from schemas.policy import Policy, WhenCapped, format_duration
from schemas.profile_record import ProfileRecord, profile_of
from schemas.state import CustomerState
from schemas.timestamps import format_utc
from streams.core.quiet_hours import quiet_hours_end, resolve_timezone

# The contract models this module builds per event, built by their validators
# directly (`schemas.builders`: the same validation, without `BaseModel.__init__`).
_ChannelBlock = builder(ChannelBlock)
_Decision = builder(Decision)
_DecisionReason = builder(DecisionReason)
_Action = builder(Action)
_DeferredRecord = builder(DeferredRecord)


__all__ = [
    "DOI_CHANNEL",
    "MAX_BLOCKS",
    "MAX_CONTACTS",
    "ChannelConsent",
    "PolicyResult",
    "ProfileView",
    "arbitrate",
    "attributable",
    "cancel",
    "cancelled_by",
    "decide",
    "decide_window",
    "record_feedback",
]

DOI_CHANNEL = "email"
"""The channel whose marketing needs the double opt-in."""
MAX_CONTACTS = 1024
"""Hard bound on remembered sends/holdouts per customer (beyond the time horizon)."""
MAX_BLOCKS = 64
"""Hard bound on remembered channel blocks per customer."""

_MARKETING_GRANTS = frozenset({"marketing", "all"})
_REVOKES: Mapping[Category, frozenset[str]] = {
    Category.SERVICE: frozenset({"service", "all"}),
    Category.MARKETING: frozenset({"marketing", "service", "all"}),
}


# --------------------------------------------------------------------------- inputs / outputs


@dataclass(frozen=True, slots=True)
class ChannelConsent:
    """The latest consent record of one channel."""

    granted: bool
    category: str
    """``marketing``, ``service`` or ``all``."""
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class ProfileView:
    """What the policy needs from the customer's state (and nothing else)."""

    timezone: str | None = None
    consent: Mapping[str, ChannelConsent] = field(default_factory=dict)
    """Latest consent record per channel."""
    email_confirmed_at: datetime | None = None
    """Double opt-in confirmation."""

    @classmethod
    def from_state(cls, state: CustomerState) -> ProfileView:
        return cls.from_snapshot(profile_of(state))

    @classmethod
    def from_snapshot(cls, snapshot: ProfileRecord) -> ProfileView:
        return cls(
            timezone=snapshot.timezone,
            consent={
                channel: ChannelConsent(entry.granted, entry.category, entry.changed_at)
                for channel, entry in snapshot.consent.items()
            },
            email_confirmed_at=snapshot.email_confirmed_at,
        )


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The decision on one candidate and the customer's history after it."""

    decision: Decision | None
    """None for a duplicate: publish nothing."""
    action: Action | None
    """The message to send, when the outcome is ``sent``."""
    history: ContactHistory
    reason: DecisionReason
    """The decision's reason, or code ``duplicate`` (for logs and metrics)."""

    @property
    def duplicate(self) -> bool:
        return self.decision is None

    @property
    def outcome(self) -> Outcome | None:
        return None if self.decision is None else self.decision.outcome

    @property
    def deliver_at(self) -> datetime | None:
        """When to re-deliver a deferred candidate (to `decide` again)."""
        return None if self.decision is None else self.decision.deliver_at


@dataclass(frozen=True, slots=True)
class _Hold:
    """A cap or the minimum gap holding a message back until ``free_at``."""

    free_at: datetime
    code: ReasonCode
    text: str


# --------------------------------------------------------------------------- public API


def decide(
    candidate: CandidateRecord,
    history: ContactHistory,
    profile: ProfileView,
    policy: Policy,
    now: datetime,
) -> PolicyResult:
    """Decide one candidate at ``now`` (steps 1-7 of the module docstring)."""
    return _decide(candidate, history, profile, policy, _utc(now), frozenset())


def arbitrate(candidates: Iterable[CandidateRecord]) -> list[CandidateRecord]:
    """Decision order: highest priority first, then earliest triggered_at, then action_id."""
    return sorted(candidates, key=lambda c: (-c.priority, c.triggered_at, c.action_id))


def decide_window(
    candidates: Sequence[CandidateRecord],
    history: ContactHistory,
    profile: ProfileView,
    policy: Policy,
    now: datetime,
) -> list[PolicyResult]:
    """Decide the candidates of one customer buffered within one decision window.

    Results come in `arbitrate` order; each one's ``history`` includes the ones
    before it, so the last result's history is the one to store.
    """
    customers = {c.customer_id for c in candidates}
    if len(customers) > 1:
        raise ValueError(f"a decision window holds one customer's candidates, got {customers}")
    now = _utc(now)
    winners: set[str] = set()
    results: list[PolicyResult] = []
    for candidate in arbitrate(candidates):
        result = _decide(candidate, history, profile, policy, now, frozenset(winners))
        if result.action is not None:
            winners.add(candidate.action_id)
        history = result.history
        results.append(result)
    return results


def cancelled_by(event_type: str, cancel_on: Iterable[str]) -> bool:
    """Does an event of ``event_type`` cancel a deferred candidate of a rule with ``cancel_on``?"""
    return event_type in cancel_on


def cancel(
    candidate: CandidateRecord,
    history: ContactHistory,
    policy: Policy,
    now: datetime,
    event_type: str,
) -> PolicyResult:
    """Finalise a deferred candidate that an exit event (``cancel_on``) made obsolete."""
    return _close(
        candidate,
        history,
        policy,
        now,
        Outcome.SUPPRESSED,
        ReasonCode.CANCELLED_BY_EVENT,
        f"cancelled by a {event_type} event before delivery",
    )


def expire_stale(
    candidate: CandidateRecord,
    history: ContactHistory,
    policy: Policy,
    now: datetime,
    horizon: datetime,
) -> PolicyResult:
    """Finalise a candidate decided before the send horizon (a replay of old history, or a
    backlog after an outage): `expired`, nothing sent, no budget used."""
    return _close(
        candidate,
        history,
        policy,
        now,
        Outcome.EXPIRED,
        ReasonCode.EXPIRED,
        f"decided at {format_utc(_utc(now))}, "
        f"before the send horizon {format_utc(horizon)}: not sent",
    )


def _close(
    candidate: CandidateRecord,
    history: ContactHistory,
    policy: Policy,
    now: datetime,
    outcome: Outcome,
    code: ReasonCode,
    text: str,
) -> PolicyResult:
    """A final decision without the policy steps (nothing sent, no budget used)."""
    if candidate.action_id in history.decided:
        return _duplicate(candidate, history)
    return _final(candidate, history, policy, _utc(now), outcome, code, text, channel=None)


def record_feedback(
    history: ContactHistory, channel: str, kind: FeedbackKind, at: datetime
) -> ContactHistory:
    """Remember an unsubscribe, complaint or hard bounce on ``channel`` (the latest per kind)."""
    at = _utc(at)
    blocks = [b for b in history.blocks if not (b.channel == channel and b.kind is kind)]
    previous = [b.at for b in history.blocks if b.channel == channel and b.kind is kind]
    blocks.append(_ChannelBlock(channel=channel, kind=kind, at=max([at, *previous])))
    return history.model_copy(update={"blocks": blocks[-MAX_BLOCKS:]})


def attributable(
    history: ContactHistory, conversion_at: datetime, policy: Policy
) -> list[ContactEntry]:
    """Sends and holdouts a conversion at ``conversion_at`` may be attributed to."""
    conversion_at = _utc(conversion_at)
    since = conversion_at - policy.attribution_window
    return [c for c in history.contacts if since <= c.at <= conversion_at]


# --------------------------------------------------------------------------- the steps


def _decide(
    candidate: CandidateRecord,
    history: ContactHistory,
    profile: ProfileView,
    policy: Policy,
    now: datetime,
    winners: frozenset[str],
) -> PolicyResult:
    # 1. dedupe
    if _is_duplicate(candidate.action_id, history, now):
        return _duplicate(candidate, history)

    # 2. expiry
    if now > candidate.expires_at:
        return _final(
            candidate,
            history,
            policy,
            now,
            Outcome.EXPIRED,
            ReasonCode.EXPIRED,
            f"expired at {format_utc(candidate.expires_at)}",
            channel=None,
        )

    # 3. consent with channel fallback
    allowed, refused = _allowed_channels(candidate, history, profile, policy)
    if not allowed:
        code = _refusal_code(refused)
        text = "; ".join(f"{channel}: {why}" for channel, (_, why) in refused.items())
        return _final(candidate, history, policy, now, Outcome.SUPPRESSED, code, text, channel=None)

    # 4. exit on conversion: the caller's (`cancelled_by` / `cancel`).

    # 5. holdout
    if candidate.holdout:
        return _final(
            candidate,
            history,
            policy,
            now,
            Outcome.HOLDOUT,
            ReasonCode.HOLDOUT,
            f"in the holdout group of {candidate.rule_id}",
            channel=allowed[0],
            record=True,
        )

    # 6. quiet hours
    tz = resolve_timezone(profile.timezone, policy.default_timezone)
    quiet_end = _quiet_end(candidate.category, now, tz, policy)
    base = now if quiet_end is None else quiet_end

    # 7. caps and minimum gap (8: `winners` are this window's higher-priority sends)
    # Caps never mix transactional and other messages, and the gap ignores transactional.
    transactional = candidate.category is Category.TRANSACTIONAL
    sends = [
        c
        for c in history.contacts
        if not c.holdout and (c.category is Category.TRANSACTIONAL) == transactional
    ]
    mode = policy.when_capped_for(candidate.rule_id, candidate.category)
    channel, at = _schedule(candidate.category, allowed, sends, policy, tz, base, mode)

    if channel is not None and at == now:
        return _sent(candidate, history, policy, now, channel)

    planned = channel if channel is not None else allowed[0]
    holds = _holds(planned, candidate.category, sends, policy, base)
    code = ReasonCode.FREQUENCY_CAP  # replaced below: a held candidate always has holds
    held = ""
    if holds:
        code = max(holds, key=lambda h: h.free_at).code
        held = "; ".join(h.text for h in holds)
        rivals_removed = [s for s in sends if s.action_id not in winners]
        if winners and not _holds(planned, candidate.category, rivals_removed, policy, base):
            code = ReasonCode.LOWER_PRIORITY
            held = f"a higher-priority message was just sent ({held})"
    if at is None:  # suppress mode, capped on every allowed channel
        return _final(
            candidate, history, policy, now, Outcome.SUPPRESSED, code, held, channel=planned
        )
    if quiet_end is not None:
        code = ReasonCode.QUIET_HOURS
        text = f"quiet hours until {format_utc(quiet_end)} ({tz.key})"
        if at > quiet_end:
            text += f"; then held until {format_utc(at)}" + (f": {held}" if held else "")
    else:
        text = held
    if at > candidate.expires_at:
        text += (
            f"; deliverable at {format_utc(at)}, after expiry at {format_utc(candidate.expires_at)}"
        )
        return _final(candidate, history, policy, now, Outcome.EXPIRED, code, text, channel=None)
    return _deferred(candidate, history, policy, now, planned, at, code, text)


def _is_duplicate(action_id: str, history: ContactHistory, now: datetime) -> bool:
    if action_id in history.decided:
        return True
    return any(d.action_id == action_id and now < d.deliver_at for d in history.deferred)


def _allowed_channels(
    candidate: CandidateRecord,
    history: ContactHistory,
    profile: ProfileView,
    policy: Policy,
) -> tuple[list[str], dict[str, tuple[ReasonCode, str]]]:
    allowed: list[str] = []
    refused: dict[str, tuple[ReasonCode, str]] = {}
    for channel in dict.fromkeys(candidate.channels):  # in order, without repeats
        refusal = _refusal(channel, candidate.category, history, profile, policy)
        if refusal is None:
            allowed.append(channel)
        else:
            refused[channel] = refusal
    return allowed, refused


def _refusal(
    channel: str,
    category: Category,
    history: ContactHistory,
    profile: ProfileView,
    policy: Policy,
) -> tuple[ReasonCode, str] | None:
    entry = profile.consent.get(channel)
    regranted_at = entry.changed_at if entry is not None and entry.granted else None
    blocks = {
        b.kind: b
        for b in history.blocks
        if b.channel == channel and (regranted_at is None or b.at >= regranted_at)
    }
    bounce = blocks.get(FeedbackKind.BOUNCED)
    if bounce is not None:
        return ReasonCode.NO_CHANNEL, f"hard bounce at {format_utc(bounce.at)}"
    if category is Category.TRANSACTIONAL:
        return None
    for kind in (FeedbackKind.UNSUBSCRIBED, FeedbackKind.COMPLAINED):
        block = blocks.get(kind)
        if block is not None:
            return ReasonCode.NO_CONSENT, f"{kind.value} at {format_utc(block.at)}"
    if entry is not None and not entry.granted and entry.category in _REVOKES[category]:
        return (
            ReasonCode.NO_CONSENT,
            f"{entry.category} consent revoked at {format_utc(entry.changed_at)}",
        )
    if category is Category.MARKETING:
        opted_in = entry is not None and entry.granted and entry.category in _MARKETING_GRANTS
        if policy.marketing_requires_opt_in and not opted_in:
            return ReasonCode.NO_CONSENT, "no marketing opt-in"
        if (
            channel == DOI_CHANNEL
            and policy.require_doi_for_marketing_email
            and profile.email_confirmed_at is None
        ):
            return ReasonCode.NO_DOI, "double opt-in not confirmed"
    return None


def _refusal_code(refused: Mapping[str, tuple[ReasonCode, str]]) -> ReasonCode:
    codes = {code for code, _ in refused.values()}
    for code in (ReasonCode.NO_DOI, ReasonCode.NO_CONSENT):
        if code in codes:
            return code
    return ReasonCode.NO_CHANNEL


def _quiet_end(category: Category, at: datetime, tz: ZoneInfo, policy: Policy) -> datetime | None:
    quiet = policy.quiet_hours
    if quiet is None or category not in quiet.applies_to:
        return None
    return quiet_hours_end(at, tz, quiet.start, quiet.end)


def _holds(
    channel: str,
    category: Category,
    sends: Sequence[ContactEntry],
    policy: Policy,
    at: datetime,
) -> list[_Hold]:
    """What keeps a message on ``channel`` of ``category`` from being sent at ``at``."""
    holds: list[_Hold] = []
    for cap in policy.caps:
        if not cap.applies(channel, category):
            continue
        since = at - cap.per
        times = sorted(s.at for s in sends if s.at > since and cap.applies(s.channel, s.category))
        if len(times) >= cap.max:
            holds.append(
                _Hold(
                    free_at=times[len(times) - cap.max] + cap.per,
                    code=ReasonCode.FREQUENCY_CAP,
                    text=f"cap {cap.name} ({cap.max} per {format_duration(cap.per)}) reached",
                )
            )
    if category is not Category.TRANSACTIONAL and policy.min_gap > timedelta(0):
        since = at - policy.min_gap
        recent = [s.at for s in sends if s.category is not Category.TRANSACTIONAL and s.at > since]
        if recent:
            holds.append(
                _Hold(
                    free_at=max(recent) + policy.min_gap,
                    code=ReasonCode.MIN_GAP,
                    text=f"less than {format_duration(policy.min_gap)} since the last message",
                )
            )
    return holds


def _earliest(
    channel: str,
    category: Category,
    sends: Sequence[ContactEntry],
    policy: Policy,
    tz: ZoneInfo,
    start: datetime,
) -> datetime:
    """The first instant >= ``start`` outside quiet hours and free of caps and gap.

    Converges in a few rounds: once the caps are free they stay free (no send is
    added meanwhile), so at most one more jump past quiet hours follows.
    """
    at = start
    for _ in range(16):
        moved = False
        quiet_end = _quiet_end(category, at, tz, policy)
        if quiet_end is not None:
            at, moved = quiet_end, True
        holds = _holds(channel, category, sends, policy, at)
        if holds:
            at, moved = max(h.free_at for h in holds), True
        if not moved:
            return at
    raise AssertionError("contact policy: the earliest delivery time did not converge")


def _schedule(
    category: Category,
    allowed: Sequence[str],
    sends: Sequence[ContactEntry],
    policy: Policy,
    tz: ZoneInfo,
    base: datetime,
    mode: WhenCapped,
) -> tuple[str | None, datetime | None]:
    """The channel and instant to deliver at (``base`` = now or the end of quiet hours).

    Suppress mode: the first channel free at ``base``, else (None, None). Defer
    mode: the channel that frees first (ties: fallback order) and when.
    """
    if mode is WhenCapped.SUPPRESS:
        for channel in allowed:
            if not _holds(channel, category, sends, policy, base):
                return channel, base
        return None, None
    best: tuple[str | None, datetime | None] = (None, None)
    for channel in allowed:
        at = _earliest(channel, category, sends, policy, tz, base)
        if best[1] is None or at < best[1]:
            best = (channel, at)
        if at == base:
            # Nothing is earlier than `base`, and a tie goes to the channel found first:
            # the later channels cannot win (the common case: the first channel is free).
            break
    return best


# --------------------------------------------------------------------------- results


def _decision(
    candidate: CandidateRecord,
    now: datetime,
    outcome: Outcome,
    reason: DecisionReason,
    channel: str | None,
    deliver_at: datetime | None = None,
) -> Decision:
    return _Decision(
        action_id=candidate.action_id,
        rule_id=candidate.rule_id,
        customer_id=candidate.customer_id,
        channel=channel,
        outcome=outcome,
        reason=reason,
        triggered_at=candidate.triggered_at,
        decided_at=now,
        deliver_at=deliver_at,
        template=candidate.template,
        category=candidate.category,
        priority=candidate.priority,
        expires_at=candidate.expires_at,
        event_id=candidate.event_id,
    )


def _duplicate(candidate: CandidateRecord, history: ContactHistory) -> PolicyResult:
    reason = _DecisionReason(
        code=ReasonCode.DUPLICATE, text=f"action {candidate.action_id} already decided"
    )
    return PolicyResult(decision=None, action=None, history=history, reason=reason)


def _final(
    candidate: CandidateRecord,
    history: ContactHistory,
    policy: Policy,
    now: datetime,
    outcome: Outcome,
    code: ReasonCode,
    text: str,
    *,
    channel: str | None,
    record: bool = False,
) -> PolicyResult:
    reason = _DecisionReason(code=code, text=text)
    contacts = history.contacts
    if record:
        assert channel is not None
        contacts = [
            *contacts,
            ContactEntry(
                at=now,
                channel=channel,
                category=candidate.category,
                rule_id=candidate.rule_id,
                action_id=candidate.action_id,
                holdout=outcome is Outcome.HOLDOUT,
            ),
        ]
    horizon = now - policy.history_horizon
    updated = history.model_copy(
        update={
            "contacts": [c for c in contacts if c.at > horizon][-MAX_CONTACTS:],
            "decided": [*history.decided, candidate.action_id][-policy.dedupe_window :],
            "deferred": [
                d
                for d in history.deferred
                if d.action_id != candidate.action_id and d.expires_at >= now
            ],
        }
    )
    return PolicyResult(
        decision=_decision(candidate, now, outcome, reason, channel),
        action=None,
        history=updated,
        reason=reason,
    )


def _sent(
    candidate: CandidateRecord,
    history: ContactHistory,
    policy: Policy,
    now: datetime,
    channel: str,
) -> PolicyResult:
    result = _final(
        candidate,
        history,
        policy,
        now,
        Outcome.SENT,
        ReasonCode.SENT,
        f"sent on {channel}",
        channel=channel,
        record=True,
    )
    action = _Action(
        action_id=candidate.action_id,
        rule_id=candidate.rule_id,
        customer_id=candidate.customer_id,
        channel=channel,
        template=candidate.template,
        category=candidate.category,
        priority=candidate.priority,
        payload=candidate.payload,
        triggered_at=candidate.triggered_at,
        decided_at=now,
        expires_at=candidate.expires_at,
        reason=candidate.reason.values(),
    )
    return PolicyResult(
        decision=result.decision, action=action, history=result.history, reason=result.reason
    )


def _deferred(
    candidate: CandidateRecord,
    history: ContactHistory,
    policy: Policy,
    now: datetime,
    channel: str,
    deliver_at: datetime,
    code: ReasonCode,
    text: str,
) -> PolicyResult:
    reason = _DecisionReason(code=code, text=f"{text}; deferred to {format_utc(deliver_at)}")
    pending = [
        d for d in history.deferred if d.action_id != candidate.action_id and d.expires_at >= now
    ]
    pending.append(
        _DeferredRecord(
            action_id=candidate.action_id, deliver_at=deliver_at, expires_at=candidate.expires_at
        )
    )
    updated = history.model_copy(update={"deferred": pending[-policy.dedupe_window :]})
    return PolicyResult(
        decision=_decision(candidate, now, Outcome.DEFERRED, reason, channel, deliver_at),
        action=None,
        history=updated,
        reason=reason,
    )


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the contact policy needs aware datetimes (got a naive one)")
    return at.astimezone(UTC)
