"""A candidate action as the core holds it: a native class, compiled with mypyc (setup.py).

The contract is `schemas.candidate.Candidate` (`candidate.json`): a step's candidates on
`crm.candidates` and a deferred candidate on the contacts changelog. The core holds a
`CandidateRecord` instead, converted at the edges by pydantic (`schemas.record_schema`),
as `TimerRecord` is: JSON goes through the contract, a record is written as the
contract's fields (same bytes).

Why: the engine proposes one for every trigger that fires, and the contact policy and
the orchestrator read its fields (action id, category, times) many times per decision.
Built as a model, each was a validation (~4.5 µs with its reason, ~1.2 µs of it the
`Reason`) and each read a generic attribute lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema
from pydantic_core.core_schema import SerializationInfo

from schemas.candidate import Category
from schemas.native_record import NativeRecord
from schemas.record_schema import record_schema
from schemas.timestamps import checked_utc

if TYPE_CHECKING:
    from schemas.candidate import Candidate


class ReasonRecord(NativeRecord):
    """Why a trigger fired (`schemas.candidate.Reason`)."""

    FIELDS = ("code", "text")

    code: str
    text: str

    def __init__(self, *, code: str, text: str) -> None:
        self.code = code
        self.text = text


class CandidateRecord(NativeRecord):
    FIELDS = (
        "action_id",
        "rule_id",
        "customer_id",
        "channels",
        "template",
        "category",
        "priority",
        "payload",
        "triggered_at",
        "expires_at",
        "reason",
        "event_id",
        "holdout",
    )

    action_id: str
    """Deterministic idempotency key of this trigger occurrence."""
    rule_id: str
    customer_id: str
    channels: list[str]
    """In fallback order; at least one."""
    template: str
    category: Category
    priority: int
    payload: dict[str, Any]
    triggered_at: datetime
    """Event time of the trigger."""
    expires_at: datetime
    reason: ReasonRecord
    event_id: str | None
    """The triggering event, if any."""
    holdout: bool
    """In the rule's control group (deterministic by customer and rule)."""

    def __init__(
        self,
        *,
        action_id: str,
        rule_id: str,
        customer_id: str,
        channels: list[str],
        template: str,
        category: Category,
        priority: int,
        triggered_at: datetime,
        expires_at: datetime,
        reason: Any,
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
        holdout: bool = False,
    ) -> None:
        if not channels:
            raise ValueError("channels: a candidate needs at least one channel")
        self.action_id = action_id
        self.rule_id = rule_id
        self.customer_id = customer_id
        self.channels = channels
        self.template = template
        self.category = category if type(category) is Category else Category(category)
        self.priority = priority
        self.payload = {} if payload is None else payload
        self.triggered_at = checked_utc(triggered_at, "triggered_at")
        self.expires_at = checked_utc(expires_at, "expires_at")
        # The contract's `Reason` (a validated message, a test) is taken as a record.
        self.reason = (
            reason
            if isinstance(reason, ReasonRecord)
            else ReasonRecord(code=reason.code, text=reason.text)
        )
        self.event_id = event_id
        self.holdout = holdout

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return record_schema(CandidateRecord, _contract(), CandidateRecord.of, _fields, handler)


def _fields(record: CandidateRecord, info: SerializationInfo) -> dict[str, Any]:
    """The contract's fields in its order; those at their defaults are left out where
    defaults are (the changelog)."""
    everything = not info.exclude_defaults
    fields: dict[str, Any] = {
        "action_id": record.action_id,
        "rule_id": record.rule_id,
        "customer_id": record.customer_id,
        "channels": record.channels,
        "template": record.template,
        "category": record.category,
        "priority": record.priority,
    }
    if record.payload or everything:
        fields["payload"] = record.payload
    fields["triggered_at"] = record.triggered_at
    fields["expires_at"] = record.expires_at
    fields["reason"] = record.reason.values()
    if record.event_id is not None or everything:
        fields["event_id"] = record.event_id
    if record.holdout or everything:
        fields["holdout"] = record.holdout
    return fields


def _contract() -> type[Candidate]:
    # Imported when first needed, as the other records' contracts are.
    from schemas.candidate import Candidate

    return Candidate
