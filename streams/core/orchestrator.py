"""The orchestrator: journey steps in, one decision per candidate out (pure).

It applies the contact policy (`contact_policy.decide_window`) in event time:
the candidates of a step are decided at their `triggered_at`, deferred ones at
their `deliver_at`, all in time order, so replaying a history gives the same
decisions as living through it, and the simulator the same as the workers.

Within one step, candidates whose `triggered_at` lie within
`policy.decision_window` of the first of them compete (priority arbitration);
`decision_window: 0s` decides each alone.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.builders import builder
from schemas.candidate_record import CandidateRecord
from schemas.decision import Action, Decision, FeedbackKind, Outcome
from schemas.journey_step import JourneyStep
from schemas.policy import Policy
from schemas.profile_record import ProfileRecord, profile_of
from schemas.rules import InactivityRule, Rule
from schemas.state import CustomerState
from schemas.step import DeferredCandidate, OrchestratorState
from streams.core.contact_policy import (
    PolicyResult,
    ProfileView,
    arbitrate,
    cancel,
    decide_window,
    expire_stale,
    record_feedback,
)
from streams.core.engine import Step as EngineStep

# The contract models this module builds per event, built by their validators
# directly (`schemas.builders`: the same validation, without `BaseModel.__init__`).
_OrchestratorState = builder(OrchestratorState)
_DeferredCandidate = builder(DeferredCandidate)


# Heap ranks of what `Orchestrator._run` decides at one instant.
_NEW = 0
_REDELIVER = 1

PROFILE_EVENTS = frozenset({"registered", "email_confirmed", "consent_changed", "profile_updated"})
"""Events that change what the contact policy reads about a customer."""


@dataclass(slots=True, init=False)
class Orchestrated:
    state: OrchestratorState
    decisions: list[Decision]
    actions: list[Action]
    duplicates: int

    def __init__(self, state: OrchestratorState) -> None:
        # Written out, as `engine.Step`'s: a generated __init__ stays interpreted.
        self.state = state
        self.decisions = []
        self.actions = []
        self.duplicates = 0

    @property
    def changed(self) -> bool:
        return bool(self.decisions) or self.duplicates > 0


def _profile_view(snapshot: ProfileRecord | None) -> ProfileView:
    return ProfileView() if snapshot is None else ProfileView.from_snapshot(snapshot)


class Orchestrator:
    def __init__(self, policy: Policy, cancel_on: Mapping[str, Iterable[str]]) -> None:
        self.policy = policy
        self.cancel_on = {rule: sorted(set(types)) for rule, types in cancel_on.items()}
        self.exit_events = frozenset(t for types in self.cancel_on.values() for t in types)

    def wants(self, event_type: str | None, candidates: list[CandidateRecord]) -> bool:
        """Does this journey step concern the orchestrator? Candidates, an exit event, or
        a change of what the policy reads (consent, DOI, timezone): page views do not."""
        return bool(candidates) or event_type in self.exit_events or event_type in PROFILE_EVENTS

    def new_state(self, customer_id: str) -> OrchestratorState:
        return _OrchestratorState(customer_id=customer_id)

    def on_step(
        self,
        state: OrchestratorState | None,
        step: JourneyStep,
        horizon: datetime | None = None,
    ) -> Orchestrated:
        if state is None:
            state = self.new_state(step.customer_id)
        if step.profile is not None:
            state.profile = step.profile
        done = Orchestrated(state=state)
        if step.event_type in self.exit_events:
            self._exit(state, step.event_type, step.at, done)
        self._run(state, step.candidates, step.at, done, horizon)
        return done

    def advance(
        self, state: OrchestratorState, until: datetime, horizon: datetime | None = None
    ) -> Orchestrated:
        """Deliver what was deferred up to `until` (a tick)."""
        done = Orchestrated(state=state)
        self._run(state, [], until, done, horizon)
        return done

    @staticmethod
    def has_due(state: OrchestratorState | None, until: datetime) -> bool:
        """Would a tick at `until` decide anything (a deferral due by then)?"""
        return state is not None and any(d.deliver_at <= until for d in state.deferred)

    def on_feedback(
        self,
        state: OrchestratorState | None,
        customer_id: str,
        channel: str,
        kind: FeedbackKind,
        at: datetime,
    ) -> OrchestratorState:
        if state is None:
            state = self.new_state(customer_id)
        state.history = record_feedback(state.history, channel, kind, at)
        return state

    # ------------------------------------------------------------------
    def _clusters(self, candidates: list[CandidateRecord]) -> list[list[CandidateRecord]]:
        ordered = sorted(candidates, key=lambda c: (c.triggered_at, c.action_id))
        window = self.policy.decision_window
        clusters: list[list[CandidateRecord]] = []
        for candidate in ordered:
            if (
                clusters
                and window.total_seconds() > 0
                and candidate.triggered_at - clusters[-1][0].triggered_at <= window
            ):
                clusters[-1].append(candidate)
            else:
                clusters.append([candidate])
        return clusters

    def _run(
        self,
        state: OrchestratorState,
        candidates: list[CandidateRecord],
        until: datetime,
        done: Orchestrated,
        horizon: datetime | None = None,
    ) -> None:
        """Decide new clusters and due deferrals in time order, up to `until`. Anything to
        decide before `horizon` (when given) expires unsent."""
        # Ties at one instant: new clusters first (in the order `_clusters` gives), then
        # re-deliveries by action id. The order must not depend on whether a deferral was
        # made in this run or in an earlier one (the state's list is sorted by action id):
        # a timer fired late after a restart decides its candidate in the same run that
        # releases the customer's other deferrals, the simulator in a run of its own, and
        # under a cap the first of two decided at one instant is the one that is sent.
        queue: list[tuple[datetime, int, str, int, list[CandidateRecord]]] = []
        counter = 0
        for cluster in self._clusters(candidates):
            queue.append((max(c.triggered_at for c in cluster), _NEW, "", counter, cluster))
            counter += 1
        for deferred in self._take_due(state, until):
            candidate = deferred.candidate
            queue.append(
                (deferred.deliver_at, _REDELIVER, candidate.action_id, counter, [candidate])
            )
            counter += 1
        heapq.heapify(queue)
        profile: ProfileView | None = None  # the same for the whole run: built once, if needed
        while queue:
            at, _, _, _, cluster = heapq.heappop(queue)
            if horizon is not None and at < horizon:
                for candidate in cluster:
                    stale = expire_stale(candidate, state.history, self.policy, at, horizon)
                    state.history = stale.history
                    self._record(state, candidate, stale, done)
                continue
            if profile is None:
                profile = _profile_view(state.profile)
            for result, candidate in zip(
                decide_window(cluster, state.history, profile, self.policy, at),
                arbitrate(cluster),
                strict=True,
            ):
                state.history = result.history
                self._record(state, candidate, result, done)
                deliver_at = result.deliver_at
                if (
                    result.outcome is Outcome.DEFERRED
                    and deliver_at is not None
                    and deliver_at <= until
                ):
                    self._remove_deferred(state, candidate.action_id)
                    heapq.heappush(
                        queue,
                        (deliver_at, _REDELIVER, candidate.action_id, counter, [candidate]),
                    )
                    counter += 1

    def _record(
        self,
        state: OrchestratorState,
        candidate: CandidateRecord,
        result: PolicyResult,
        done: Orchestrated,
    ) -> None:
        if result.decision is None:
            done.duplicates += 1
            return
        done.decisions.append(result.decision)
        if result.action is not None:
            done.actions.append(result.action)
        self._remove_deferred(state, candidate.action_id)
        if result.outcome is Outcome.DEFERRED and result.deliver_at is not None:
            state.deferred.append(
                _DeferredCandidate(
                    candidate=candidate,
                    deliver_at=result.deliver_at,
                    cancel_on=self.cancel_on.get(candidate.rule_id, []),
                )
            )
            state.deferred.sort(key=lambda d: (d.deliver_at, d.candidate.action_id))

    @staticmethod
    def _remove_deferred(state: OrchestratorState, action_id: str) -> None:
        # Usually nothing is deferred: skip rebuilding and re-assigning the list (pydantic's
        # __setattr__ is not free, and this runs for every decision).
        if any(d.candidate.action_id == action_id for d in state.deferred):
            state.deferred = [d for d in state.deferred if d.candidate.action_id != action_id]

    @staticmethod
    def _take_due(state: OrchestratorState, until: datetime) -> list[DeferredCandidate]:
        due = [d for d in state.deferred if d.deliver_at <= until]
        if due:
            state.deferred = [d for d in state.deferred if d.deliver_at > until]
        return due

    def _exit(
        self, state: OrchestratorState, event_type: str, at: datetime, done: Orchestrated
    ) -> None:
        """Exit on conversion: an event in a rule's `cancel_on` cancels its deferred
        candidates triggered before it (and not yet due)."""
        kept = []
        for deferred in state.deferred:
            candidate = deferred.candidate
            if (
                event_type in deferred.cancel_on
                and candidate.triggered_at <= at < deferred.deliver_at
            ):
                result = cancel(candidate, state.history, self.policy, at, event_type)
                state.history = result.history
                if result.decision is not None:
                    done.decisions.append(result.decision)
                else:
                    done.duplicates += 1
            else:
                kept.append(deferred)
        state.deferred = kept


def step_message(
    state: CustomerState, at: datetime, event_type: str | None, candidates: list[CandidateRecord]
) -> JourneyStep:
    """What the journey hands to the orchestrator after one step of a customer."""
    # A copy of the list, as validating the message made one: the engine's step keeps its own.
    return JourneyStep(
        customer_id=state.customer_id,
        at=at,
        event_type=event_type,
        profile=profile_of(state),
        candidates=list(candidates),
    )


def event_steps(
    orchestrator: Orchestrator, step: EngineStep, at: datetime, event_type: str
) -> list[JourneyStep]:
    """The orchestrator's messages for one journey event: first the timers that came due
    before it (as a live worker would have fired them, with the profile of that time),
    then the event's own step, if it concerns the orchestrator at all."""
    messages = []
    if step.overdue and step.overdue_at is not None:
        messages.append(
            JourneyStep(
                customer_id=step.state.customer_id,
                at=step.overdue_at,
                event_type=None,
                profile=step.overdue_profile,
                candidates=list(step.overdue),
            )
        )
    if orchestrator.wants(event_type, step.candidates):
        messages.append(step_message(step.state, at, event_type, step.candidates))
    return messages


def cancel_on_of(engine_rules: Iterable[Rule]) -> dict[str, list[str]]:
    """Per rule, the events that end it: `cancel_on`, plus `unless` for inactivity rules."""
    result: dict[str, list[str]] = {}
    for rule in engine_rules:
        events = list(rule.cancel_on)
        if isinstance(rule, InactivityRule):
            events += rule.unless
        result[rule.id] = sorted(set(events))
    return result
