"""Per-customer state kept in the `customers` table (and written by `simulate --state-out`).

Everything a trigger may need to decide later lives here, bounded: collections
that grow with the customer's history keep only their most recent entries.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, Field, Strict

from schemas.in_place import UpdatedInPlace
from schemas.timer_record import TimerRecord
from schemas.timestamps import Rfc3339

Lax = Strict(False)


class Profile(UpdatedInPlace):
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    birthday: Annotated[date, Lax] | None = None
    tier: str | None = None
    tariff: str | None = None


class ConsentEntry(BaseModel):
    granted: bool
    category: str = "marketing"
    changed_at: Rfc3339
    source: str | None = None


class CartLine(BaseModel):
    sku: str
    category: str | None = None
    quantity: int = 1
    price: float | None = None


class Cart(BaseModel):
    cart_id: str | None = None
    items: list[CartLine] = Field(default_factory=list)
    value: float = 0.0
    currency: str | None = None
    updated_at: Rfc3339


class OrderRecord(UpdatedInPlace):
    order_id: str
    amount: float
    placed_at: Rfc3339
    cancelled: bool = False


class Appointment(BaseModel):
    appointment_id: str
    starts_at: Rfc3339
    service: str | None = None


class CustomEventStats(UpdatedInPlace):
    count: int = 0
    last_at: Rfc3339 | None = None


class PendingTimer(BaseModel):
    """A durable deadline owned by this customer (fires through the journey agent)."""

    timer_id: str = Field(description="Unique per customer; rescheduling replaces it")
    rule_id: str
    due_at: Rfc3339
    anchor_at: Rfc3339 = Field(description="Event time of what armed it")
    occurrence: str = Field(description="Identifies the trigger occurrence (-> action_id)")
    context: dict[str, Any] = Field(default_factory=dict)


class CustomerState(UpdatedInPlace):
    """State of one customer. Timestamps are event time (`occurred_at`), in UTC."""

    customer_id: str
    first_seen_at: Rfc3339 | None = None
    last_seen_at: Rfc3339 | None = None
    events_count: int = 0
    profile: Profile = Field(default_factory=Profile)
    consent: dict[str, ConsentEntry] = Field(
        default_factory=dict, description="Latest consent per channel"
    )
    registered_at: Rfc3339 | None = None
    email_confirmed_at: Rfc3339 | None = Field(
        default=None, description="Double opt-in confirmation"
    )
    visits_count: int = 0
    last_visit_at: Rfc3339 | None = None
    page_views_count: int = 0
    last_page_view_at: Rfc3339 | None = None
    last_product_viewed_at: Rfc3339 | None = None
    cart: Cart | None = None
    cart_cleared_at: Rfc3339 | None = Field(
        default=None, description="When the cart was last emptied or converted by an order"
    )
    orders_count: int = Field(default=0, description="Orders placed and not cancelled")
    cancelled_orders_count: int = 0
    first_order_at: Rfc3339 | None = None
    last_order_at: Rfc3339 | None = None
    previous_order_at: Rfc3339 | None = Field(
        default=None,
        description="The last order before the latest one (e.g. 'order after a long pause')",
    )
    total_spent: float = Field(default=0.0, description="Sum of non-cancelled order amounts")
    last_order_currency: str | None = None
    recent_orders: list[OrderRecord] = Field(
        default_factory=list, description="Most recent orders, oldest first (bounded)"
    )
    category_last_purchase: dict[str, Rfc3339] = Field(
        default_factory=dict, description="Last purchase time per product category (bounded)"
    )
    reviews_count: int = 0
    last_review_rating: int | None = None
    last_review_at: Rfc3339 | None = None
    support_tickets_count: int = 0
    last_support_ticket_at: Rfc3339 | None = None
    appointments: list[Appointment] = Field(
        default_factory=list, description="Scheduled appointments (bounded)"
    )
    custom_events: dict[str, CustomEventStats] = Field(
        default_factory=dict, description="Counters of non-core event types (bounded)"
    )
    lifecycle_stage: str | None = Field(default=None, description="See README: lifecycle")
    lifecycle_changed_at: Rfc3339 | None = None
    threshold_crossings: dict[str, int] = Field(
        default_factory=dict, description="How often each threshold rule's quantity crossed"
    )
    timers: list[TimerRecord] = Field(
        default_factory=list, description="Pending durable timers, earliest first (bounded)"
    )
    recent_event_ids: list[str] = Field(
        default_factory=list, description="Dedupe memory: the last N event ids, oldest first"
    )
