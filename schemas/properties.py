"""Typed `properties` of the core event types (the event contract, DESIGN.md §3).

Each model is strict about types (a string where a number belongs is rejected,
not coerced) and allows extra fields, so producers can send more than we read
without a contract change. Unknown event types keep free-form properties.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from schemas.timestamps import Rfc3339

Id = Annotated[str, Field(min_length=1, max_length=256)]
ShortText = Annotated[str, Field(max_length=1024)]
Money = Annotated[float, Field(ge=0, le=1e12)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Channel = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder
        raise ValueError(f"unknown IANA timezone {name!r}") from exc
    return name


Timezone = Annotated[str, Field(max_length=64), AfterValidator(_valid_timezone)]
Birthday = Annotated[date, Strict(False)]


class Properties(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class LineItem(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    sku: Id
    category: Id | None = None
    quantity: Annotated[int, Field(ge=1, le=100_000)] = 1
    price: Money | None = None


class RegisteredProperties(Properties):
    email: ShortText | None = None
    phone: ShortText | None = None
    first_name: ShortText | None = None
    locale: Annotated[str, Field(max_length=35)] | None = None
    timezone: Timezone | None = None
    birthday: Birthday | None = None
    source: ShortText | None = None
    tariff: ShortText | None = None


class EmailConfirmedProperties(Properties):
    email: ShortText | None = None


class VisitProperties(Properties):
    session_id: ShortText | None = None
    channel: Annotated[str, Field(max_length=32)] | None = None
    url: ShortText | None = None


class PageViewProperties(Properties):
    url: ShortText | None = None
    title: ShortText | None = None
    session_id: ShortText | None = None


class ProductViewedProperties(Properties):
    sku: Id
    category: Id | None = None
    price: Money | None = None


class CartUpdatedProperties(Properties):
    cart_id: Id | None = None
    items: Annotated[list[LineItem], Field(max_length=500)] = Field(default_factory=list)
    value: Money | None = None
    currency: Currency | None = None


class OrderPlacedProperties(Properties):
    order_id: Id
    amount: Money
    currency: Currency | None = None
    items: Annotated[list[LineItem], Field(max_length=500)] = Field(default_factory=list)
    tariff: ShortText | None = None


class OrderCancelledProperties(Properties):
    order_id: Id
    amount: Money | None = None
    reason: ShortText | None = None


class ReviewSubmittedProperties(Properties):
    rating: Annotated[int, Field(ge=1, le=5)]
    order_id: Id | None = None
    sku: Id | None = None
    text: Annotated[str, Field(max_length=10_000)] | None = None


class SupportTicketProperties(Properties):
    ticket_id: Id
    subject: ShortText | None = None
    status: Annotated[str, Field(max_length=32)] | None = None
    severity: Annotated[str, Field(max_length=32)] | None = None


class AppointmentScheduledProperties(Properties):
    appointment_id: Id
    starts_at: Rfc3339
    service: ShortText | None = None
    location: ShortText | None = None


class ProfileUpdatedProperties(Properties):
    timezone: Timezone | None = None
    birthday: Birthday | None = None
    locale: Annotated[str, Field(max_length=35)] | None = None
    tier: Annotated[str, Field(max_length=64)] | None = None
    email: ShortText | None = None
    phone: ShortText | None = None
    first_name: ShortText | None = None


class ConsentChangedProperties(Properties):
    channel: Channel
    granted: bool
    category: Literal["marketing", "service", "all"] = "marketing"
    source: ShortText | None = None


PROPERTIES_BY_TYPE: dict[str, type[Properties]] = {
    "registered": RegisteredProperties,
    "email_confirmed": EmailConfirmedProperties,
    "visit": VisitProperties,
    "page_view": PageViewProperties,
    "product_viewed": ProductViewedProperties,
    "cart_updated": CartUpdatedProperties,
    "order_placed": OrderPlacedProperties,
    "order_cancelled": OrderCancelledProperties,
    "review_submitted": ReviewSubmittedProperties,
    "support_ticket": SupportTicketProperties,
    "appointment_scheduled": AppointmentScheduledProperties,
    "profile_updated": ProfileUpdatedProperties,
    "consent_changed": ConsentChangedProperties,
}
"""The core event types (a contract) and the model their `properties` must match."""

CORE_EVENT_TYPES: frozenset[str] = frozenset(PROPERTIES_BY_TYPE)
