"""What the contact policy reads of a customer, as the core holds it: a native class,
compiled with mypyc (setup.py).

The contract is `schemas.step.ProfileSnapshot`: a step's `profile` on `crm.candidates`
and an orchestrator state's `profile` on the contacts changelog. The core holds a
`ProfileRecord` instead, converted at the edges by pydantic (`schemas.record_schema`),
as `TimerRecord` is: JSON goes through the contract, a record is written as the
contract's fields (same bytes).

Why: a snapshot is taken at every journey step the orchestrator takes (consent,
double opt-in, timezone events; every step with candidates). Built as a model, each
was a validation (~1.3 µs: the consent entries, the time) and each read a generic
attribute lookup.
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
    from schemas.state import ConsentEntry, CustomerState
    from schemas.step import ProfileSnapshot


class ProfileRecord(NativeRecord):
    FIELDS = ("timezone", "consent", "email_confirmed_at")

    timezone: str | None
    consent: dict[str, ConsentEntry]
    """Latest consent entry per channel (entries are replaced, never changed)."""
    email_confirmed_at: datetime | None
    """Double opt-in confirmation."""

    def __init__(
        self,
        *,
        timezone: str | None = None,
        consent: dict[str, ConsentEntry] | None = None,
        email_confirmed_at: datetime | None = None,
    ) -> None:
        self.timezone = timezone
        self.consent = {} if consent is None else consent
        self.email_confirmed_at = (
            None
            if email_confirmed_at is None
            else checked_utc(email_confirmed_at, "email_confirmed_at")
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return record_schema(ProfileRecord, _contract(), ProfileRecord.of, _fields, handler)


def profile_of(state: CustomerState) -> ProfileRecord:
    """The snapshot of `state` the contact policy decides on."""
    # A copy of the consent dict is a snapshot: its entries are replaced, never mutated.
    return ProfileRecord(
        timezone=state.profile.timezone,
        consent=dict(state.consent),
        email_confirmed_at=state.email_confirmed_at,
    )


def _fields(record: ProfileRecord, info: SerializationInfo) -> dict[str, Any]:
    """The contract's fields in its order; those at their defaults are left out where
    defaults are (the changelog)."""
    everything = not info.exclude_defaults
    fields: dict[str, Any] = {}
    if record.timezone is not None or everything:
        fields["timezone"] = record.timezone
    if record.consent or everything:
        fields["consent"] = record.consent
    if record.email_confirmed_at is not None or everything:
        fields["email_confirmed_at"] = record.email_confirmed_at
    return fields


def _contract() -> type[ProfileSnapshot]:
    # Imported when first needed: `schemas.step` imports this module to declare its fields.
    from schemas.step import ProfileSnapshot

    return ProfileSnapshot
