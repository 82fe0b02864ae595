"""Lifecycle stages (see README "Lifecycle") as pure functions of state and time.

Event-driven changes (registration, orders, cancellations) are computed after
each event; lapses (at_risk, dormant, churned) are computed when the lifecycle
timers armed after every order come due, never from the next event.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from schemas.rules import LifecycleSettings
from schemas.state import CustomerState

LAPSED = ("at_risk", "dormant", "churned")
SEASON_WINDOW_DAYS = 92
SEASONAL_SHIFT = timedelta(days=300)
"""Seasonal customers are expected to be silent off-season: their lapse clock starts later."""


def is_seasonal(state: CustomerState, settings: LifecycleSettings) -> bool:
    placed = [o.placed_at for o in state.recent_orders if not o.cancelled]
    if len({at.year for at in placed}) < settings.seasonal_min_years:
        return False
    days = sorted(at.timetuple().tm_yday for at in placed)
    # Smallest circular arc of the year containing every order day.
    gaps = [b - a for a, b in itertools.pairwise(days)] + [days[0] + 365 - days[-1]]
    return 365 - max(gaps) <= SEASON_WINDOW_DAYS


def active_stage(state: CustomerState, settings: LifecycleSettings) -> str | None:
    """The stage from orders alone, for a customer who has not lapsed."""
    if state.orders_count == 0:
        return "prospect" if state.registered_at is not None else None
    if is_seasonal(state, settings):
        return "seasonal"
    if state.orders_count >= settings.regular_min_orders:
        return "regular"
    return "new"


def stage_after_event(
    state: CustomerState, event_type: str, settings: LifecycleSettings
) -> str | None:
    current = state.lifecycle_stage
    if event_type == "order_placed" and current in ("dormant", "churned"):
        return "reactivated"
    if event_type in ("registered", "order_placed", "order_cancelled") or current is None:
        if current == "reactivated" and event_type != "order_placed":
            return current
        if current in LAPSED and event_type != "order_placed":
            return current
        return active_stage(state, settings)
    return current


def lapse_thresholds(
    state: CustomerState, settings_at_risk: timedelta, dormant: timedelta, churned: timedelta
) -> list[tuple[str, timedelta]]:
    """(stage, age of last order) pairs in order; at_risk only if it comes before dormant."""
    pairs = []
    if settings_at_risk < dormant:
        pairs.append(("at_risk", settings_at_risk))
    pairs += [("dormant", dormant), ("churned", max(churned, dormant))]
    if state.lifecycle_stage == "seasonal":
        pairs = [(stage, age + SEASONAL_SHIFT) for stage, age in pairs]
    return pairs


def lapsed_stage(
    state: CustomerState, now: datetime, thresholds: list[tuple[str, timedelta]]
) -> str | None:
    if state.last_order_at is None:
        return None
    age = now - state.last_order_at
    reached = [stage for stage, after in thresholds if age >= after]
    return reached[-1] if reached else None
