"""What the contact policy decided: `Decision` (every candidate) and `Action` (what is sent).

Both are contracts (DESIGN.md §3). A `Decision` goes to ``crm.decisions`` and
into the simulator's output for every candidate the orchestrator sees, whatever
the outcome; an `Action` goes to ``crm.actions.<channel>`` for each message that
is actually sent. A deferred candidate gets a `deferred` decision now and a
second, final decision when it is re-delivered at ``deliver_at``.

`ContactHistory` is what the orchestrator remembers per customer to make the
next decision (table ``contacts``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.candidate import Category, Reason
from schemas.contact_entry import ContactEntry
from schemas.timestamps import Rfc3339

__all__ = [
    "Action",
    "ChannelBlock",
    "ContactHistory",
    "ContactRecord",
    "Decision",
    "DecisionReason",
    "DeferredRecord",
    "FeedbackKind",
    "Outcome",
    "ReasonCode",
]


class Outcome(StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"
    HOLDOUT = "holdout"
    EXPIRED = "expired"


class ReasonCode(StrEnum):
    """Machine-readable reason of a decision (contract: codes are only ever added)."""

    SENT = "sent"
    """Passed every check."""
    DUPLICATE = "duplicate"
    """The action id was already decided. Never published: a duplicate produces no
    second decision; the code exists for logs and metrics."""
    EXPIRED = "expired"
    """Arrived (or was re-delivered) after its ``expires_at``."""
    NO_CONSENT = "no_consent"
    """No channel of the candidate has the consent its category needs."""
    NO_DOI = "no_doi"
    """Marketing email without a confirmed double opt-in (and no other channel allowed)."""
    NO_CHANNEL = "no_channel"
    """Every channel is undeliverable (hard bounce)."""
    CANCELLED_BY_EVENT = "cancelled_by_event"
    """A deferred message whose rule's ``cancel_on`` event happened meanwhile."""
    HOLDOUT = "holdout"
    """In the rule's control group: not sent, recorded for attribution."""
    QUIET_HOURS = "quiet_hours"
    """Inside the customer's local quiet hours."""
    FREQUENCY_CAP = "frequency_cap"
    """A frequency cap is reached."""
    MIN_GAP = "min_gap"
    """Too soon after the previous non-transactional message."""
    LOWER_PRIORITY = "lower_priority"
    """A higher-priority message decided in the same decision window used the budget."""


class DecisionReason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    text: str


class Decision(BaseModel):
    """The outcome for one candidate (published on ``crm.decisions``)."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    rule_id: str
    customer_id: str
    channel: str | None = Field(
        description="The channel used (sent), planned (deferred) or that would have been "
        "used (holdout); null when no channel was allowed or the candidate expired first"
    )
    outcome: Outcome
    reason: DecisionReason
    triggered_at: Rfc3339 = Field(description="Event time of the trigger")
    decided_at: Rfc3339
    deliver_at: Rfc3339 | None = Field(
        default=None, description="When a deferred candidate is re-delivered"
    )
    template: str
    category: Category
    priority: int
    expires_at: Rfc3339
    event_id: str | None = Field(default=None, description="The triggering event, if any")


class Action(BaseModel):
    """A message to send (published on ``crm.actions.<channel>``)."""

    model_config = ConfigDict(frozen=True)

    action_id: str = Field(description="Idempotency key: downstream dedupes by it")
    rule_id: str
    customer_id: str
    channel: str
    template: str
    category: Category
    priority: int
    payload: dict[str, Any] = Field(default_factory=dict)
    triggered_at: Rfc3339
    decided_at: Rfc3339
    expires_at: Rfc3339
    reason: Reason = Field(description="Why the trigger fired")


# --------------------------------------------------------------------------- contact history


class FeedbackKind(StrEnum):
    """Delivery feedback that changes whether a channel may be used."""

    UNSUBSCRIBED = "unsubscribed"
    """No more marketing or service messages on this channel."""
    COMPLAINED = "complained"
    """Marked as spam: treated like an unsubscribe."""
    BOUNCED = "bounced"
    """Hard bounce: the channel is undeliverable, for every category."""


class ContactRecord(BaseModel):
    """A message sent, or withheld because the customer is in the rule's holdout group."""

    model_config = ConfigDict(frozen=True)

    at: Rfc3339 = Field(description="decided_at of the send (or of the holdout decision)")
    channel: str
    category: Category
    rule_id: str
    action_id: str
    holdout: bool = Field(default=False, description="Not sent: control group (no cap used)")


class DeferredRecord(BaseModel):
    """A candidate deferred and not yet finally decided."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    deliver_at: Rfc3339
    expires_at: Rfc3339


class ChannelBlock(BaseModel):
    """Feedback that blocks a channel until a later consent grant on it."""

    model_config = ConfigDict(frozen=True)

    channel: str
    kind: FeedbackKind
    at: Rfc3339


class ContactHistory(BaseModel):
    """One customer's contact history (table ``contacts``); every list is bounded.

    - ``contacts``: sends and holdouts, oldest first, kept only as long as the
      longest window that reads them (caps, minimum gap, attribution), and at
      most `streams.core.contact_policy.MAX_CONTACTS` entries.
    - ``decided``: action ids with a final decision, oldest first (FIFO,
      ``policy.dedupe_window`` long), so a re-delivered candidate is recognised.
    - ``deferred``: candidates waiting for their ``deliver_at``.
    - ``blocks``: unsubscribes, complaints and bounces per channel.
    """

    model_config = ConfigDict(frozen=True)

    contacts: list[ContactEntry] = Field(default_factory=list)
    decided: list[str] = Field(default_factory=list)
    deferred: list[DeferredRecord] = Field(default_factory=list)
    blocks: list[ChannelBlock] = Field(default_factory=list)
