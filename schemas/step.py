"""Internal contract between the journey agent and the orchestrator (`crm.candidates`).

One message per journey step (an event, or timers coming due), keyed by
customer id: the candidates the step proposed, the event type (for exit on
conversion) and a snapshot of what the contact policy needs from the
customer's state, taken right after the step, so the orchestrator decides on
exactly the state the trigger saw. A message without candidates and profile is
a *tick*: "deliver what was deferred up to `at`".
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.builders import builder
from schemas.candidate import Candidate
from schemas.decision import ContactHistory
from schemas.in_place import UpdatedInPlace
from schemas.state import ConsentEntry, CustomerState
from schemas.timestamps import Rfc3339


class ProfileSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    timezone: str | None = None
    consent: dict[str, ConsentEntry] = Field(default_factory=dict)
    email_confirmed_at: Rfc3339 | None = None

    @classmethod
    def of(cls, state: CustomerState) -> ProfileSnapshot:
        # Consent entries are replaced, never mutated: a copy of the dict is a snapshot.
        return _ProfileSnapshot(
            timezone=state.profile.timezone,
            consent=dict(state.consent),
            email_confirmed_at=state.email_confirmed_at,
        )


_ProfileSnapshot = builder(ProfileSnapshot)
"""Built once per journey step: by its validator directly (`schemas.builders`)."""


class StepMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    at: Rfc3339 = Field(description="Event time of the step (or of the tick)")
    event_type: str | None = Field(default=None, description="The step's event, if any")
    profile: ProfileSnapshot | None = None
    candidates: list[Candidate] = Field(default_factory=list)


class DeferredCandidate(BaseModel):
    candidate: Candidate
    deliver_at: Rfc3339
    cancel_on: list[str] = Field(default_factory=list)


class OrchestratorState(UpdatedInPlace):
    """Per-customer state of the orchestrator (table `contacts`)."""

    customer_id: str
    history: ContactHistory = Field(default_factory=ContactHistory)
    profile: ProfileSnapshot | None = None
    deferred: list[DeferredCandidate] = Field(default_factory=list)

    def next_due(self) -> datetime | None:
        return min((d.deliver_at for d in self.deferred), default=None)
