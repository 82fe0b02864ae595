"""A send (or holdout) in a contact history as the core holds it: a native class,
compiled with mypyc (setup.py), like `schemas.timer_record.TimerRecord`.

The contract is `schemas.decision.ContactRecord`: what the `contacts` table's changelog
holds. `ContactHistory.contacts` holds `ContactEntry`s, converted at the edges by
pydantic (`schemas.record_schema`), so the changelog's bytes are those of the model.
The contact policy reads every entry of a history for each decision it takes (caps,
minimum gap, attribution, the history's horizon), and adds one per send.
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
    from schemas.decision import ContactRecord


class ContactEntry(NativeRecord):
    FIELDS = ("at", "channel", "category", "rule_id", "action_id", "holdout")

    at: datetime
    """decided_at of the send (or of the holdout decision)."""
    channel: str
    category: Category
    rule_id: str
    action_id: str
    holdout: bool
    """Not sent: control group (no cap used)."""

    def __init__(
        self,
        *,
        at: datetime,
        channel: str,
        category: Category,
        rule_id: str,
        action_id: str,
        holdout: bool = False,
    ) -> None:
        self.at = checked_utc(at, "at")
        self.channel = channel
        self.category = category
        self.rule_id = rule_id
        self.action_id = action_id
        self.holdout = holdout

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return record_schema(ContactEntry, _contract(), ContactEntry.of, _fields, handler)


def _fields(entry: ContactEntry, info: SerializationInfo) -> dict[str, Any]:
    """The contract's fields in its order; `holdout` is left out where defaults are."""
    fields: dict[str, Any] = {
        "at": entry.at,
        "channel": entry.channel,
        "category": entry.category,
        "rule_id": entry.rule_id,
        "action_id": entry.action_id,
    }
    if entry.holdout or not info.exclude_defaults:
        fields["holdout"] = entry.holdout
    return fields


def _contract() -> type[ContactRecord]:
    # Imported when first needed: `schemas.decision` imports this module for its field.
    from schemas.decision import ContactRecord

    return ContactRecord
