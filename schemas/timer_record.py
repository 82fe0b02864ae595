"""A pending timer as the core holds it: a native class, compiled with mypyc (setup.py).

The contract is `schemas.state.PendingTimer`: what a state's `timers` look like on
the changelog, in `--state-out` and in `customer-state.json`. A `CustomerState` holds
its timers as `TimerRecord`s instead, converted at the edges by pydantic through
`__get_pydantic_core_schema__`: validating a state (from the changelog's JSON, or a
dict) validates each timer as a `PendingTimer`, then makes a record of it, and
serializing a state writes each record as that model would (same fields, same bytes).

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

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema
from pydantic_core.core_schema import SerializationInfo

from schemas.timestamps import MAX_YEAR, MIN_YEAR, to_utc

if TYPE_CHECKING:
    from schemas.state import PendingTimer


class TimerRecord:
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
        self.due_at = _utc(due_at)
        self.anchor_at = _utc(anchor_at)
        self.occurrence = occurrence
        self.context = {} if context is None else context

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimerRecord):
            return NotImplemented
        return (
            self.timer_id == other.timer_id
            and self.rule_id == other.rule_id
            and self.due_at == other.due_at
            and self.anchor_at == other.anchor_at
            and self.occurrence == other.occurrence
            and self.context == other.context
        )

    def __repr__(self) -> str:
        return (
            f"TimerRecord(timer_id={self.timer_id!r}, rule_id={self.rule_id!r}, "
            f"due_at={self.due_at!r}, anchor_at={self.anchor_at!r}, "
            f"occurrence={self.occurrence!r}, context={self.context!r})"
        )

    # ------------------------------------------------------------ the contract
    @staticmethod
    def of(model: PendingTimer) -> TimerRecord:
        return TimerRecord(
            timer_id=model.timer_id,
            rule_id=model.rule_id,
            due_at=model.due_at,
            anchor_at=model.anchor_at,
            occurrence=model.occurrence,
            context=model.context,
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        contract = handler.generate_schema(_contract())
        from_contract = core_schema.no_info_after_validator_function(TimerRecord.of, contract)
        return core_schema.json_or_python_schema(
            # JSON (the changelog) is validated as the contract; so is the JSON Schema.
            json_schema=from_contract,
            # Python: a record as it is, or anything the contract takes (a dict, a model).
            python_schema=core_schema.union_schema(
                [core_schema.is_instance_schema(TimerRecord), from_contract],
                mode="left_to_right",
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _fields, info_arg=True, return_schema=core_schema.dict_schema()
            ),
        )


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


def _utc(value: datetime) -> datetime:
    if value.tzinfo is UTC and MIN_YEAR <= value.year <= MAX_YEAR:
        return value
    if value.tzinfo is None:
        raise ValueError(f"a timer's time must carry a zone, got {value.isoformat()}")
    return to_utc(value)
