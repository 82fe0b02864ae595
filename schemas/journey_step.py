"""One journey step handed to the orchestrator, as the core holds it: a native class,
compiled with mypyc (setup.py).

The contract is `schemas.step.StepMessage` (`crm.candidates`, `step.json`); a worker
hands its steps over in process, so a step is built for every event the orchestrator
takes and read once. As a model, each build was a validation (~2 µs, a fifth of the
per-decision models' building in the simulator's profile). A message read from the
topic is validated as the contract and then made a step (`from_message`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from schemas.native_record import NativeRecord
from schemas.profile_record import ProfileRecord
from schemas.timestamps import checked_utc

if TYPE_CHECKING:
    from schemas.candidate_record import CandidateRecord
    from schemas.step import StepMessage


class JourneyStep(NativeRecord):
    """What a journey step proposes, and the customer's profile right after it. A step
    without candidates and profile is a *tick*: "deliver what was deferred up to `at`"."""

    FIELDS = ("customer_id", "at", "event_type", "profile", "candidates")

    customer_id: str
    at: datetime
    """Event time of the step (or of the tick)."""
    event_type: str | None
    """The step's event, if any (exit on conversion)."""
    profile: ProfileRecord | None
    candidates: list[CandidateRecord]

    def __init__(
        self,
        *,
        customer_id: str,
        at: datetime,
        event_type: str | None = None,
        profile: ProfileRecord | None = None,
        candidates: list[CandidateRecord] | None = None,
    ) -> None:
        self.customer_id = customer_id
        self.at = checked_utc(at, "at")
        self.event_type = event_type
        self.profile = profile
        self.candidates = [] if candidates is None else candidates

    @property
    def is_tick(self) -> bool:
        return self.profile is None and not self.candidates


def from_message(message: StepMessage) -> JourneyStep:
    """The step a `crm.candidates` message (already validated) carries."""
    return JourneyStep(
        customer_id=message.customer_id,
        at=message.at,
        event_type=message.event_type,
        profile=message.profile,
        candidates=list(message.candidates),
    )
