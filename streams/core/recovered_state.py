"""What the worker needs of a stored table value without decoding it.

Recovery keeps each changelog record's bytes and the agents decode a customer's
state when they first touch it (`CoalescingChangelog.get`): decoding 1M pydantic
states up front was a third of a recovery's CPU and held ~5 KB of objects per
customer where the JSON is ~0.6-1.5 KB. After recovery the worker still needs,
for every customer, when its next timer is due (the due-time index), how many
timers it holds (the pending-timers gauge), its order times (the population's
typical gap between orders) and what RFM measures (the population's quintiles, when
learned): `Held` reads those from either form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.state import CustomerState
from schemas.step import OrchestratorState
from schemas.timestamps import MAX_YEAR, MIN_YEAR
from streams.core.customer_state import placed_order_times
from streams.core.rfm import measures
from streams.core.rfm_population import Measures


@dataclass(frozen=True, slots=True)
class Held:
    next_due: datetime | None
    """The earliest pending deadline (timer or deferred candidate)."""
    deadlines: int
    order_times: tuple[datetime, ...] = ()
    """Placed times of the recent orders that were not cancelled, oldest first."""
    rfm: Measures = (0, 0.0, None)
    """(orders_count, total_spent, last_order_at)."""


NOTHING = Held(None, 0)


class UnreadableState(ValueError):
    """A stored value that is not the JSON our codec writes."""


def _time(text: Any) -> datetime:
    # Our codec writes UTC as `...Z` (schemas.timestamps.format_utc), which
    # fromisoformat reads on 3.11+.
    if not isinstance(text, str):
        raise UnreadableState(f"expected an RFC 3339 string, got {type(text).__name__}")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            raise UnreadableState(f"{text!r} has no zone")
        utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise UnreadableState(f"{text!r}: {exc}") from exc
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise UnreadableState(f"{text!r} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return utc


def _object(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UnreadableState(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise UnreadableState(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _list(obj: dict[str, Any], field: str) -> list[dict[str, Any]]:
    # Fields at their default (empty lists) are left out by the codec.
    value = obj.get(field, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise UnreadableState(f"{field} must be a list of objects")
    return value


def customer_held(value: CustomerState | bytes) -> Held:
    """Timers are kept earliest first, so the next due one is the first."""
    if isinstance(value, CustomerState):
        return Held(
            value.timers[0].due_at if value.timers else None,
            len(value.timers),
            tuple(placed_order_times(value)),
            measures(value),
        )
    obj = _object(value)
    timers = _list(obj, "timers")
    try:
        orders = sorted(
            _time(order["placed_at"])
            for order in _list(obj, "recent_orders")
            if not order.get("cancelled", False)
        )
        return Held(
            _time(timers[0]["due_at"]) if timers else None,
            len(timers),
            tuple(orders),
            _measures(obj),
        )
    except KeyError as exc:
        raise UnreadableState(f"missing field {exc}") from exc


def _measures(obj: dict[str, Any]) -> Measures:
    # Fields at their default (0, none) are left out by the codec.
    orders, spent, last = (
        obj.get("orders_count", 0),
        obj.get("total_spent", 0.0),
        obj.get("last_order_at"),
    )
    if not isinstance(orders, int) or not isinstance(spent, int | float):
        raise UnreadableState("orders_count and total_spent must be numbers")
    return orders, float(spent), _time(last) if last is not None else None


def contacts_held(value: OrchestratorState | bytes) -> Held:
    if isinstance(value, OrchestratorState):
        return Held(value.next_due(), len(value.deferred))
    deferred = _list(_object(value), "deferred")
    try:
        due = [_time(item["deliver_at"]) for item in deferred]
    except KeyError as exc:
        raise UnreadableState(f"missing field {exc}") from exc
    return Held(min(due, default=None), len(deferred))
