"""A seeded history of customer journeys over N days, for the simulator and tests.

Unlike the live demo generator (events at the wall clock), this one spreads
journeys over a past period: registrations, consent, double opt-in, visits and
page views, carts (some abandoned), first and repeat orders at personal
rhythms, reviews, appointments, birthdays, consent withdrawals, in a few
timezones. `grid` rounds every timestamp to a multiple of that duration from
`end`, so that times computed from them (timers, quiet hours) are predictable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

TIMEZONES = ("Europe/Berlin", "Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo")


@dataclass(frozen=True)
class Mix:
    """How much browsing surrounds the purchase journeys."""

    browsers: float = 0.0
    """Share of customers who only browse (no registration, no order)."""
    browse_sessions: float = 0.0
    """Mean number of extra sessions without a cart of every other customer."""


JOURNEYS = Mix()
"""Every customer registers or orders: a history dense in triggers (the tests' default)."""
REALISTIC = Mix(browsers=0.5, browse_sessions=1.5)
"""A shop's traffic, mostly browsing: page views and visits are ~80% of events."""
CATEGORIES = (("motor_oil", 39.9), ("filters", 14.5), ("wiper_blades", 19.0), ("tyres", 89.0))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Customer:
    def __init__(self, n: int, rng: random.Random, start: datetime, days: int) -> None:
        self.id = f"h-{n}"
        self.rng = rng
        self.start = start + timedelta(minutes=rng.randrange(days * 24 * 60))
        self.count = 0

    def event(self, kind: str, at: datetime, **properties: Any) -> dict[str, Any]:
        self.count += 1
        return {
            "event_id": f"{self.id}-{self.count}",
            "type": kind,
            "customer_id": self.id,
            "occurred_at": at,
            "properties": properties,
        }


def _journey(customer: _Customer, end: datetime) -> Iterator[dict[str, Any]]:
    rng = customer.rng
    at = customer.start
    registers = rng.random() < 0.8
    if registers:
        yield customer.event(
            "registered",
            at,
            email=f"{customer.id}@example.org",
            first_name="Kim",
            timezone=rng.choice(TIMEZONES),
            locale="de-DE",
        )
        if rng.random() < 0.75:
            yield customer.event(
                "email_confirmed", at + timedelta(hours=rng.choice([1, 5, 30, 60]))
            )
        for channel in ("email", "push", "sms"):
            if rng.random() < 0.6:
                yield customer.event(
                    "consent_changed",
                    at + timedelta(minutes=5),
                    channel=channel,
                    granted=True,
                    category="marketing",
                )
        if rng.random() < 0.4:
            birthday = (
                f"19{rng.randrange(60, 99)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            )
            yield customer.event("profile_updated", at + timedelta(days=1), birthday=birthday)
    orders = rng.choice([0, 0, 1, 1, 2, 3, 5, 8])
    rhythm = timedelta(days=rng.choice([7, 14, 30, 45, 90]))
    for n in range(orders):
        at = at + rhythm * rng.uniform(0.6, 1.4) if n else at + timedelta(days=rng.uniform(0, 40))
        if at >= end:
            return
        category, price = rng.choice(CATEGORIES)
        quantity = rng.randrange(1, 3)
        yield customer.event("visit", at - timedelta(minutes=40), channel="web")
        for page in range(rng.randrange(1, 6)):
            yield customer.event("page_view", at - timedelta(minutes=35 - page), url=f"/p/{page}")
        items = [
            {"sku": f"{category}-1", "category": category, "quantity": quantity, "price": price}
        ]
        yield customer.event("cart_updated", at - timedelta(minutes=20), items=items)
        if rng.random() < 0.25:
            continue  # abandoned cart: no order this time
        yield customer.event(
            "order_placed",
            at,
            order_id=f"{customer.id}-o{n}",
            amount=round(price * quantity, 2),
            currency="EUR",
            items=items,
        )
        if rng.random() < 0.05:
            yield customer.event(
                "order_cancelled", at + timedelta(hours=3), order_id=f"{customer.id}-o{n}"
            )
        if rng.random() < 0.35:
            yield customer.event(
                "review_submitted",
                at + timedelta(days=rng.randrange(2, 12)),
                order_id=f"{customer.id}-o{n}",
                rating=rng.choice([2, 4, 5, 5]),
            )
        if rng.random() < 0.1:
            starts = at + timedelta(days=rng.randrange(2, 10))
            yield customer.event(
                "appointment_scheduled",
                at + timedelta(hours=2),
                appointment_id=f"{customer.id}-a{n}",
                starts_at=_iso(starts),
                service="oil change",
            )
    if registers and rng.random() < 0.05:
        yield customer.event(
            "consent_changed",
            at + timedelta(days=3),
            channel="email",
            granted=False,
            category="marketing",
        )


def _browsing(
    customer: _Customer, sessions: int, start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """Sessions that end without a cart: a visit and a few page views, minutes apart."""
    rng = customer.rng
    span = max(int((end - start).total_seconds()) // 60, 1)
    for s in range(sessions):
        at = start + timedelta(minutes=rng.randrange(span))
        session = f"{customer.id}-s{s}"
        yield customer.event("visit", at, channel="web", session_id=session)
        for page in range(rng.randrange(1, 9)):
            yield customer.event(
                "page_view", at + timedelta(minutes=page + 1), url=f"/c/{page}", session_id=session
            )


def generate_history(
    customers: int,
    days: int,
    end: datetime,
    seed: int = 7,
    grid: timedelta | None = None,
    mix: Mix = JOURNEYS,
) -> list[dict[str, Any]]:
    """Events of `customers` journeys between `end - days` and `end`, in time order.

    With `JOURNEYS` (no browsing) the journeys are exactly those of earlier versions
    for the same seed.
    """
    rng = random.Random(seed)
    start = end - timedelta(days=days)
    events: list[dict[str, Any]] = []
    for n in range(customers):
        customer = _Customer(n, random.Random(rng.random()), start, days)
        journey: Iterator[dict[str, Any]]
        if mix.browsers and customer.rng.random() < mix.browsers:
            journey = _browsing(customer, customer.rng.randrange(1, 4), customer.start, end)
        elif mix.browse_sessions:
            # Geometric count with the given mean: most customers browse a little, a few a lot.
            extra = 0
            while customer.rng.random() < mix.browse_sessions / (1 + mix.browse_sessions):
                extra += 1
            journey = chain(
                _journey(customer, end), _browsing(customer, extra, customer.start, end)
            )
        else:
            journey = _journey(customer, end)
        for event in journey:
            at: datetime = event["occurred_at"]
            if grid is not None:
                at = end - ((end - at) // grid) * grid
            if start <= at < end:
                event["occurred_at"] = _iso(at)
                events.append(event)
    events.sort(key=lambda e: e["occurred_at"])
    return events
