"""Internal contract between the journey agent and the orchestrator (`crm.candidates`).

One message per journey step (an event, or timers coming due), keyed by
customer id: the candidates the step proposed, the event type (for exit on
conversion) and a snapshot of what the contact policy needs from the
customer's state, taken right after the step, so the orchestrator decides on
exactly the state the trigger saw. A message without candidates and profile is
a *tick*: "deliver what was deferred up to `at`".

The core holds a step as a `JourneyStep` and a snapshot as a `ProfileRecord`
(native records, `schemas.journey_step`, `schemas.profile_record`); these models are
their contracts on the topic and the contacts changelog.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.candidate_record import CandidateRecord
from schemas.decision import ContactHistory
from schemas.in_place import UpdatedInPlace
from schemas.profile_record import ProfileRecord
from schemas.state import ConsentEntry
from schemas.timestamps import Rfc3339


class ProfileSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    timezone: str | None = None
    consent: dict[str, ConsentEntry] = Field(default_factory=dict)
    email_confirmed_at: Rfc3339 | None = None


class StepMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    at: Rfc3339 = Field(description="Event time of the step (or of the tick)")
    event_type: str | None = Field(default=None, description="The step's event, if any")
    profile: ProfileRecord | None = None
    candidates: list[CandidateRecord] = Field(default_factory=list)


class DeferredCandidate(BaseModel):
    candidate: CandidateRecord
    deliver_at: Rfc3339
    cancel_on: list[str] = Field(default_factory=list)


class OrchestratorState(UpdatedInPlace):
    """Per-customer state of the orchestrator (table `contacts`)."""

    customer_id: str
    history: ContactHistory = Field(default_factory=ContactHistory)
    profile: ProfileRecord | None = None
    deferred: list[DeferredCandidate] = Field(default_factory=list)

    def next_due(self) -> datetime | None:
        return min((d.deliver_at for d in self.deferred), default=None)
