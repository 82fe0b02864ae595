"""A candidate action: what a trigger proposes, before the contact policy decides.

Published on the internal `crm.candidates` topic, keyed by customer id. Its
fields are the Action contract's (DESIGN.md §3) less the decision, so the
orchestrator can turn it into an Action without looking anything up.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.timestamps import Rfc3339


class Category(StrEnum):
    TRANSACTIONAL = "transactional"
    SERVICE = "service"
    MARKETING = "marketing"


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    text: str


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    action_id: str = Field(description="Deterministic idempotency key of this trigger occurrence")
    rule_id: str
    customer_id: str
    channels: Annotated[list[str], Field(min_length=1)] = Field(
        description="Channels in fallback order"
    )
    template: str
    category: Category
    priority: int
    payload: dict[str, Any] = Field(default_factory=dict)
    triggered_at: Rfc3339 = Field(description="Event time of the trigger")
    expires_at: Rfc3339
    reason: Reason
    event_id: str | None = Field(default=None, description="The triggering event, if any")
    holdout: bool = Field(
        default=False,
        description="In the rule's control group (deterministic by customer and rule)",
    )
