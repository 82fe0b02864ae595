"""A pending timer as the core holds it: a native class, compiled with mypyc (setup.py).

The contract is `schemas.state.PendingTimer`: what a state's `timers` look like on
the changelog, in `--state-out` and in `customer-state.json`. A `CustomerState` holds
its timers as `TimerRecord`s instead, converted at the edges by pydantic
(`schemas.record_schema`): validating a state (from the changelog's JSON, or a dict)
validates each timer as a `PendingTimer`, then makes a record of it, and serializing a
state writes each record as that model would (same fields, same bytes).

Why: the engine builds ~7 timers per order and reads their fields on every event of a
customer (the due time of the head, the rule ids when it cancels or re-arms). A model
costs a validation per build and a generic attribute lookup per read; compiled code
reads a native class's fields from the object directly. Measured side by side
(`simulate --jobs 2`): 1.13x on an order-only history, 1.10x on an order-heavy one,
1.06x on the browsing-dominated bench history, decisions and states byte for byte the
same (bench/RESULTS.md, 2026-12-07 afternoon).

What validation did on the way in, `__init__` does: a due or anchor time must be aware,
within the years the contract allows, and is normalised to UTC (a yearly timer's next
date is computed in the customer's zone).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema
from pydantic_core.core_schema import SerializationInfo

from schemas.native_record import NativeRecord
from schemas.record_schema import record_schema
from schemas.timestamps import checked_utc

if TYPE_CHECKING:
    from schemas.state import PendingTimer


class TimerRecord(NativeRecord):
    FIELDS = ("timer_id", "rule_id", "due_at", "anchor_at", "occurrence", "context")

    timer_id: str
    """Unique per customer; rescheduling replaces it."""
    rule_id: str
    due_at: datetime
    anchor_at: datetime
    """Event time of what armed it."""
    occurrence: str
    """Identifies the trigger occurrence (-> action_id)."""
    context: dict[str, Any]

    def __init__(
        self,
        *,
        timer_id: str,
        rule_id: str,
        due_at: datetime,
        anchor_at: datetime,
        occurrence: str,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.timer_id = timer_id
        self.rule_id = rule_id
        self.due_at = checked_utc(due_at, "due_at")
        self.anchor_at = checked_utc(anchor_at, "anchor_at")
        self.occurrence = occurrence
        self.context = {} if context is None else context

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return record_schema(TimerRecord, _contract(), TimerRecord.of, _fields, handler)


def _fields(record: TimerRecord, info: SerializationInfo) -> dict[str, Any]:
    """The contract's fields in its order; pydantic writes the values (times as `...Z`,
    as for the model). An empty context is a default, left out where defaults are."""
    fields: dict[str, Any] = {
        "timer_id": record.timer_id,
        "rule_id": record.rule_id,
        "due_at": record.due_at,
        "anchor_at": record.anchor_at,
        "occurrence": record.occurrence,
    }
    if record.context or not info.exclude_defaults:
        fields["context"] = record.context
    return fields


def _contract() -> type[PendingTimer]:
    # Imported when first needed: `schemas.state` imports this module to declare its field.
    from schemas.state import PendingTimer

    return PendingTimer


def new_timer(
    timer_id: str,
    rule_id: str,
    due_at: datetime,
    anchor_at: datetime,
    occurrence: str,
    context: dict[str, Any],
) -> TimerRecord:
    """A record from its fields in order (how the engine writes them)."""
    return TimerRecord(
        timer_id=timer_id,
        rule_id=rule_id,
        due_at=due_at,
        anchor_at=anchor_at,
        occurrence=occurrence,
        context=context,
    )
