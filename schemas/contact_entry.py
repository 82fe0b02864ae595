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
from schemas.record_schema import record_schema
from schemas.timestamps import checked_utc

if TYPE_CHECKING:
    from schemas.decision import ContactRecord


class ContactEntry:
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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContactEntry):
            return NotImplemented
        return (
            self.at == other.at
            and self.channel == other.channel
            and self.category == other.category
            and self.rule_id == other.rule_id
            and self.action_id == other.action_id
            and self.holdout == other.holdout
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled and copied (`copy.deepcopy` of a state) like the model it stands for:
        # a compiled class is neither unless it says how.
        return _rebuild, (
            self.at,
            self.channel,
            self.category,
            self.rule_id,
            self.action_id,
            self.holdout,
        )

    def __repr__(self) -> str:
        return (
            f"ContactEntry(at={self.at!r}, channel={self.channel!r}, "
            f"category={self.category!r}, rule_id={self.rule_id!r}, "
            f"action_id={self.action_id!r}, holdout={self.holdout!r})"
        )

    @staticmethod
    def of(model: ContactRecord) -> ContactEntry:
        return ContactEntry(
            at=model.at,
            channel=model.channel,
            category=model.category,
            rule_id=model.rule_id,
            action_id=model.action_id,
            holdout=model.holdout,
        )

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


def _rebuild(
    at: datetime, channel: str, category: Category, rule_id: str, action_id: str, holdout: bool
) -> ContactEntry:
    return ContactEntry(
        at=at,
        channel=channel,
        category=category,
        rule_id=rule_id,
        action_id=action_id,
        holdout=holdout,
    )
