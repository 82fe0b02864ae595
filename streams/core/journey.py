"""The journey step: one accepted event + the customer's state -> new state + candidates.

This is the single function the Faust journey agent and the offline simulator
both call, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.candidate import Candidate
from schemas.event import Event
from schemas.state import CustomerState
from streams.core.action_triggers import fire_action_triggers
from streams.core.customer_state import StateLimits, apply_event, is_duplicate, new_state


@dataclass(slots=True)
class JourneyOutcome:
    state: CustomerState
    duplicate: bool = False
    candidates: list[Candidate] = field(default_factory=list)


def journey_step(state: CustomerState | None, event: Event, limits: StateLimits) -> JourneyOutcome:
    if state is None:
        state = new_state(event.customer_id)
    elif is_duplicate(state, event.event_id):
        return JourneyOutcome(state=state, duplicate=True)
    apply_event(state, event, limits)
    return JourneyOutcome(state=state, candidates=fire_action_triggers(event, state))
