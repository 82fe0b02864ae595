"""Deterministic, realistic customer journeys for an online car-parts shop.

`JourneyGenerator(seed, customers).next_event(now)` returns one event dict that
follows the event contract (schemas/event.py, schemas/properties.py). The same
seed gives the same sequence of customers, event types, properties and ids;
only `occurred_at` (and times derived from it) follows the `now` passed in,
because the worker runs on the wall clock.

Customers have personas: browsers who never buy, registrants who never order,
one-time buyers, repeat buyers, cart abandoners, and returning customers who
first show up through an order (no registration in this system). Page views
dominate, as on a real site. `malformed_message(rng)` makes invalid messages
for the dead-letter path.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from schemas.timestamps import format_utc

Json = dict[str, Any]


class Persona(StrEnum):
    BROWSER = "browser"  # visits and looks, never registers, never buys
    SILENT = "silent"  # registers, then (almost) nothing; never orders
    ONE_TIME = "one_time"  # registers (or checks out as a guest), orders once
    REPEAT = "repeat"  # registers, orders again and again
    ABANDONER = "abandoner"  # registers, fills carts, never checks out
    RETURNING = "returning"  # known from before: first seen through an order


PERSONA_SHARES: dict[Persona, float] = {
    Persona.BROWSER: 0.30,
    Persona.SILENT: 0.12,
    Persona.ONE_TIME: 0.18,
    Persona.REPEAT: 0.10,
    Persona.ABANDONER: 0.15,
    Persona.RETURNING: 0.15,
}

ACTIVITY: dict[Persona, float] = {
    Persona.BROWSER: 1.0,
    Persona.SILENT: 0.15,
    Persona.ONE_TIME: 1.0,
    Persona.REPEAT: 1.4,
    Persona.ABANDONER: 1.0,
    Persona.RETURNING: 0.9,
}
"""Relative chance that an active customer of this persona does the next thing."""

MAX_ACTIVITY = max(ACTIVITY.values())

KICKOFF: tuple[tuple[Persona, bool], ...] = (
    (Persona.ONE_TIME, False),
    (Persona.RETURNING, True),
    (Persona.REPEAT, False),
    (Persona.RETURNING, True),
    (Persona.ABANDONER, False),
    (Persona.ONE_TIME, True),
)
"""The first customers (persona, first seen through an order): registrations and
orders within the first few events, so a demo shows both kinds of decisions at once."""


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    category: str
    name: str
    price: float


CATALOG: tuple[Product, ...] = (
    Product("oil-castrol-edge-5w30-5l", "motor_oil", "Castrol EDGE 5W-30 5 l", 42.90),
    Product("oil-mobil1-0w20-4l", "motor_oil", "Mobil 1 ESP 0W-20 4 l", 39.50),
    Product("oil-liquimoly-10w40-1l", "motor_oil", "Liqui Moly 10W-40 1 l", 11.90),
    Product("filter-oil-mann-w712", "filters", "MANN oil filter W 712/95", 8.49),
    Product("filter-air-bosch-s0123", "filters", "Bosch air filter S 0123", 14.99),
    Product("filter-cabin-mahle-la109", "filters", "MAHLE cabin filter LA 109", 17.90),
    Product("tyre-michelin-ps4-205-55-r16", "tyres", "Michelin Primacy 4 205/55 R16", 96.00),
    Product("tyre-conti-wc-195-65-r15", "tyres", "Continental WinterContact 195/65 R15", 78.50),
    Product("tyre-goodyear-eg-225-45-r17", "tyres", "Goodyear EfficientGrip 225/45 R17", 104.00),
    Product("acc-wiper-bosch-aerotwin", "accessories", "Bosch Aerotwin wiper set", 24.90),
    Product("acc-phone-mount-magnetic", "accessories", "Magnetic phone mount", 15.99),
    Product("acc-floor-mats-rubber", "accessories", "Rubber floor mats (4)", 34.00),
)

CATEGORY_PAGES: dict[str, str] = {
    "motor_oil": "/c/motor-oil",
    "filters": "/c/filters",
    "tyres": "/c/tyres",
    "accessories": "/c/accessories",
}

CONTENT_PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Car parts, oil and tyres"),
    ("/c/motor-oil", "Motor oil"),
    ("/c/filters", "Filters"),
    ("/c/tyres", "Tyres"),
    ("/c/accessories", "Accessories"),
    ("/search?q=5w30", "Search: 5w30"),
    ("/blog/oil-change-intervals", "How often should you change your oil?"),
    ("/blog/winter-tyres-checklist", "Winter tyres: a checklist"),
    ("/service/tyre-change", "Book a tyre change"),
    ("/account", "My account"),
    ("/cart", "Cart"),
)

LOCALES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("de-DE", "Europe/Berlin", ("Lena", "Jonas", "Mia", "Felix", "Hannah", "Lukas")),
    ("de-AT", "Europe/Vienna", ("Anna", "Tobias", "Sophie", "David")),
    ("fr-FR", "Europe/Paris", ("Camille", "Louis", "Chloé", "Hugo")),
    ("nl-NL", "Europe/Amsterdam", ("Sanne", "Daan", "Fleur", "Bram")),
    ("en-GB", "Europe/London", ("Olivia", "George", "Amelia", "Harry")),
    ("it-IT", "Europe/Rome", ("Giulia", "Marco", "Sofia", "Luca")),
    ("pl-PL", "Europe/Warsaw", ("Zofia", "Jakub", "Maja", "Kacper")),
)
LOCALE_WEIGHTS = (40, 10, 12, 10, 12, 8, 8)

SOURCES = ("webshop", "webshop", "webshop", "ios_app", "android_app")
VISIT_CHANNELS = ("direct", "organic_search", "paid_search", "email", "social", "referral")
CONSENT_CHANNELS = ("email", "sms", "push", "whatsapp")
SERVICES = ("tyre_change", "oil_change", "inspection", "tyre_storage")
BRANCHES = ("Berlin-Mitte", "Hamburg-Altona", "Munich-Pasing", "Cologne-Deutz", "Vienna-Favoriten")
CANCEL_REASONS = ("changed_mind", "found_cheaper", "wrong_size", "delivery_too_slow")
REVIEW_TEXTS = (
    "Fast delivery, exactly as described.",
    "Good price, would order again.",
    "Packaging could be better.",
    "Fits perfectly.",
    "Took a week longer than promised.",
)


@dataclass(slots=True)
class Customer:
    customer_id: str
    persona: Persona
    first_name: str
    email: str
    locale: str
    timezone: str
    via_order: bool = False
    will_confirm: bool = True
    max_orders: int = 0
    registered: bool = False
    confirmed: bool = False
    consent_asked: bool = False
    session_id: str | None = None
    session_left: int = 0
    cart_id: str | None = None
    cart: dict[str, int] = field(default_factory=dict)
    last_viewed: Product | None = None
    orders: list[tuple[str, float, tuple[str, ...]]] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    reviewed: set[str] = field(default_factory=set)
    profile_updates: int = 0

    @property
    def can_order(self) -> bool:
        return len(self.orders) < self.max_orders


_BY_SKU = {product.sku: product for product in CATALOG}


class JourneyGenerator:
    """Events of `customers` customers, interleaved as on a busy site."""

    def __init__(self, seed: int = 7, customers: int = 2000) -> None:
        if customers < 1:
            raise ValueError("customers must be at least 1")
        self._rng = random.Random(seed)
        personas = list(PERSONA_SHARES)
        weights = list(PERSONA_SHARES.values())
        numbers = list(range(1, customers + 1))
        self._rng.shuffle(numbers)
        self._pending: list[Customer] = []
        for index, number in enumerate(numbers):
            if index < len(KICKOFF):
                persona, via_order = KICKOFF[index]
            else:
                persona = self._rng.choices(personas, weights)[0]
                via_order = persona is Persona.RETURNING or (
                    persona is Persona.ONE_TIME and self._rng.random() < 0.2
                )
            self._pending.append(self._new_customer(f"c-{number:06d}", persona, via_order))
        self._pending.reverse()  # pop() from the end keeps the kickoff order
        self._active: list[Customer] = []
        self.emitted = 0

    @property
    def active_customers(self) -> int:
        return len(self._active)

    def _new_customer(self, customer_id: str, persona: Persona, via_order: bool) -> Customer:
        rng = self._rng
        locale, timezone, names = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
        first_name = rng.choice(names)
        domain = rng.choice(("example.com", "example.org", "example.net"))
        max_orders = {
            Persona.ONE_TIME: 1,
            Persona.REPEAT: rng.randint(3, 12),
            Persona.RETURNING: rng.randint(1, 4),
        }.get(persona, 0)
        return Customer(
            customer_id=customer_id,
            persona=persona,
            first_name=first_name,
            email=f"{_ascii(first_name).lower()}.{customer_id[2:]}@{domain}",
            locale=locale,
            timezone=timezone,
            via_order=via_order,
            will_confirm=rng.random() < 0.75,
            max_orders=max_orders,
        )

    # -- choosing who acts -------------------------------------------------

    def _new_customer_chance(self) -> float:
        if not self._pending:
            return 0.0
        if self.emitted < len(KICKOFF) or not self._active:
            return 1.0
        if len(self._active) < 12:
            return 0.4
        return 0.1

    def _pick_active(self) -> Customer:
        for _ in range(32):
            customer = self._rng.choice(self._active)
            if self._rng.random() * MAX_ACTIVITY < ACTIVITY[customer.persona]:
                return customer
        return self._rng.choice(self._active)

    def next_event(self, now: datetime) -> Json:
        """The next event, stamped `now` (an aware datetime)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self._rng.random() < self._new_customer_chance():
            customer = self._pending.pop()
            self._active.append(customer)
            event = self._first_event(customer, now)
        else:
            event = self._step(self._pick_active(), now)
        self.emitted += 1
        return event

    # -- building events -----------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.UUID(int=self._rng.getrandbits(128), version=4).hex[:16]}"

    def _event(self, customer: Customer, event_type: str, now: datetime, **props: Any) -> Json:
        return {
            "event_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "type": event_type,
            "customer_id": customer.customer_id,
            "occurred_at": format_utc(now),
            "source": self._rng.choice(SOURCES),
            "properties": props,
        }

    def _first_event(self, customer: Customer, now: datetime) -> Json:
        if customer.via_order:
            products = self._rng.sample(CATALOG, self._rng.randint(1, 3))
            for product in products:
                customer.cart[product.sku] = self._quantity(product)
            return self._order(customer, now)
        if customer.persona is Persona.BROWSER:
            return self._visit(customer, now)
        return self._register(customer, now)

    def _step(self, customer: Customer, now: datetime) -> Json:
        rng = self._rng
        persona = customer.persona
        if (
            customer.registered
            and customer.will_confirm
            and not customer.confirmed
            and rng.random() < 0.6
        ):
            customer.confirmed = True
            return self._event(customer, "email_confirmed", now, email=customer.email)
        if customer.session_left <= 0:
            return self._visit(customer, now)
        customer.session_left -= 1

        choices: list[tuple[float, Callable[[Customer, datetime], Json]]] = [
            (60.0, self._page_view),
            (20.0 if persona is not Persona.SILENT else 4.0, self._product_viewed),
        ]
        cart_weight = {
            Persona.ABANDONER: 10.0,
            Persona.ONE_TIME: 8.0 if customer.can_order else 1.0,
            Persona.REPEAT: 8.0,
            Persona.RETURNING: 5.0,
        }.get(persona, 0.0)
        choices.append((cart_weight, self._cart_updated))
        if customer.cart and customer.can_order:
            choices.append((7.0, self._order))
        if any(o[0] not in customer.reviewed for o in customer.orders):
            choices.append((2.5, self._review))
        if customer.orders and customer.orders[-1][0] not in customer.cancelled:
            choices.append((0.4, self._cancel))
        if customer.registered:
            # Most shops ask for marketing consent right after signup, then rarely.
            choices.append((1.0 if customer.consent_asked else 25.0, self._consent))
            choices.append((0.8 if customer.profile_updates < 3 else 0.1, self._profile))
        elif persona is Persona.RETURNING:
            choices.append((1.0, self._register))
        if customer.orders:
            bought_tyres = any("tyres" in o[2] for o in customer.orders)
            choices.append((2.0 if bought_tyres else 0.3, self._appointment))
        weights = [weight for weight, _ in choices]
        action = rng.choices([make for _, make in choices], weights)[0]
        return action(customer, now)

    def _register(self, customer: Customer, now: datetime) -> Json:
        customer.registered = True
        props: Json = {
            "email": customer.email,
            "first_name": customer.first_name,
            "locale": customer.locale,
            "timezone": customer.timezone,
            "source": self._rng.choice(("web_signup", "app_signup", "checkout", "newsletter")),
        }
        if self._rng.random() < 0.3:
            props["phone"] = (
                f"+49 15{self._rng.randint(10, 79)} {self._rng.randint(1000000, 9999999)}"
            )
        return self._event(customer, "registered", now, **props)

    def _visit(self, customer: Customer, now: datetime) -> Json:
        customer.session_id = self._id("s")
        customer.session_left = self._rng.randint(3, 14)
        channel = self._rng.choice(VISIT_CHANNELS)
        url, _ = self._rng.choice(CONTENT_PAGES[:9])
        return self._event(
            customer,
            "visit",
            now,
            session_id=customer.session_id,
            channel=channel,
            url=f"https://shop.example.com{url}",
        )

    def _page_view(self, customer: Customer, now: datetime) -> Json:
        if customer.last_viewed is not None and self._rng.random() < 0.3:
            product = customer.last_viewed
            url, title = f"/p/{product.sku}", product.name
        else:
            url, title = self._rng.choice(CONTENT_PAGES)
        return self._event(
            customer, "page_view", now, url=url, title=title, session_id=customer.session_id
        )

    def _product_viewed(self, customer: Customer, now: datetime) -> Json:
        product = self._rng.choice(CATALOG)
        customer.last_viewed = product
        return self._event(
            customer,
            "product_viewed",
            now,
            sku=product.sku,
            category=product.category,
            price=product.price,
            name=product.name,
        )

    def _quantity(self, product: Product) -> int:
        if product.category == "tyres":
            return self._rng.choice((2, 4, 4, 4))
        return self._rng.choice((1, 1, 1, 2))

    def _cart_updated(self, customer: Customer, now: datetime) -> Json:
        rng = self._rng
        if customer.cart_id is None:
            customer.cart_id = self._id("cart")
        if customer.cart and rng.random() < 0.2:
            customer.cart.pop(rng.choice(sorted(customer.cart)))
        else:
            product = customer.last_viewed or rng.choice(CATALOG)
            customer.cart[product.sku] = customer.cart.get(product.sku, 0) + self._quantity(product)
        items = _line_items(customer.cart)
        return self._event(
            customer,
            "cart_updated",
            now,
            cart_id=customer.cart_id,
            items=items,
            value=_total(items),
            currency="EUR",
        )

    def _order(self, customer: Customer, now: datetime) -> Json:
        items = _line_items(customer.cart)
        amount = _total(items)
        if amount >= 60 and self._rng.random() < 0.15:
            amount = round(amount - 5.0, 2)  # a voucher
        order_id = f"o-{self._rng.randint(10_000_000, 99_999_999)}"
        categories = tuple(sorted({item["category"] for item in items}))
        customer.orders.append((order_id, amount, categories))
        customer.cart.clear()
        customer.cart_id = None
        return self._event(
            customer,
            "order_placed",
            now,
            order_id=order_id,
            amount=amount,
            currency="EUR",
            items=items,
            payment_method=self._rng.choice(("card", "paypal", "klarna", "invoice")),
        )

    def _cancel(self, customer: Customer, now: datetime) -> Json:
        order_id, amount, _ = customer.orders[-1]
        customer.cancelled.add(order_id)
        return self._event(
            customer,
            "order_cancelled",
            now,
            order_id=order_id,
            amount=amount,
            reason=self._rng.choice(CANCEL_REASONS),
        )

    def _review(self, customer: Customer, now: datetime) -> Json:
        order_id, _, _ = next(o for o in customer.orders if o[0] not in customer.reviewed)
        customer.reviewed.add(order_id)
        rating = self._rng.choices((1, 2, 3, 4, 5), (3, 4, 10, 33, 50))[0]
        props: Json = {"rating": rating, "order_id": order_id}
        if self._rng.random() < 0.4:
            props["text"] = self._rng.choice(REVIEW_TEXTS)
        return self._event(customer, "review_submitted", now, **props)

    def _consent(self, customer: Customer, now: datetime) -> Json:
        customer.consent_asked = True
        channel = self._rng.choice(CONSENT_CHANNELS)
        granted = self._rng.random() < (0.7 if channel == "email" else 0.5)
        return self._event(
            customer,
            "consent_changed",
            now,
            channel=channel,
            granted=granted,
            category=self._rng.choices(("marketing", "service", "all"), (8, 1, 1))[0],
            source="preference_center",
        )

    def _profile(self, customer: Customer, now: datetime) -> Json:
        customer.profile_updates += 1
        rng = self._rng
        birthday = date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
        props: Json = {"birthday": birthday.isoformat()}
        if rng.random() < 0.3:
            props["timezone"] = customer.timezone
        if rng.random() < 0.2:
            props["tier"] = rng.choice(("silver", "gold"))
        return self._event(customer, "profile_updated", now, **props)

    def _appointment(self, customer: Customer, now: datetime) -> Json:
        rng = self._rng
        day = (now + timedelta(days=rng.randint(1, 21))).astimezone(UTC)
        starts_at = day.replace(hour=rng.randint(7, 15), minute=rng.choice((0, 15, 30, 45)))
        starts_at = starts_at.replace(second=0, microsecond=0)
        bought_tyres = any("tyres" in o[2] for o in customer.orders)
        service = "tyre_change" if bought_tyres and rng.random() < 0.7 else rng.choice(SERVICES)
        return self._event(
            customer,
            "appointment_scheduled",
            now,
            appointment_id=self._id("apt"),
            starts_at=format_utc(starts_at),
            service=service,
            location=rng.choice(BRANCHES),
        )


def _ascii(name: str) -> str:
    return name.replace("é", "e")


def _line_items(cart: dict[str, int]) -> list[Json]:
    items: list[Json] = []
    for sku, quantity in cart.items():
        product = _BY_SKU[sku]
        items.append(
            {
                "sku": sku,
                "category": product.category,
                "quantity": quantity,
                "price": product.price,
            }
        )
    return items


def _total(items: list[Json]) -> float:
    return round(sum(float(item["price"]) * int(item["quantity"]) for item in items), 2)


# -- malformed messages --------------------------------------------------------


def _valid(rng: random.Random, now: datetime) -> tuple[str, Json]:
    customer_id = f"c-{rng.randint(1, 999_999):06d}"
    event: Json = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": "order_placed",
        "customer_id": customer_id,
        "occurred_at": format_utc(now),
        "properties": {
            "order_id": f"o-{rng.randint(10_000_000, 99_999_999)}",
            "amount": 42.9,
            "currency": "EUR",
            "items": [{"sku": "oil-castrol-edge-5w30-5l", "category": "motor_oil", "price": 42.9}],
        },
    }
    return customer_id, event


def _broken(
    rng: random.Random, now: datetime
) -> list[Callable[[str, Json], tuple[bytes | None, bytes]]]:
    def dumps(event: Json) -> bytes:
        return orjson.dumps(event)

    def not_json(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        return cid.encode(), rng.choice(
            (b"customer=c-1&type=visit", b"<event type='visit'/>", b"\xff\xfe\x00garbage")
        )

    def truncated(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        text = dumps(event)
        return cid.encode(), text[: rng.randint(5, len(text) - 2)]

    def array(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        return cid.encode(), orjson.dumps([event])

    def scalar(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        return cid.encode(), rng.choice((b'"order_placed"', b"42", b"null"))

    def missing_customer(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        del event["customer_id"]
        return cid.encode(), dumps(event)

    def key_mismatch(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        return f"c-{rng.randint(1, 999_999):06d}x".encode(), dumps(event)

    def missing_key(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        return None, dumps(event)

    def bad_timestamp(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["occurred_at"] = rng.choice(
            (
                now.strftime("%Y-%m-%d %H:%M"),  # no zone
                int(now.timestamp() * 1000),  # epoch millis
                now.strftime("%Y-%m-%d"),  # a date alone
                "yesterday",
            )
        )
        return cid.encode(), dumps(event)

    def future(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["occurred_at"] = format_utc(now + timedelta(days=rng.randint(2, 30)))
        return cid.encode(), dumps(event)

    def amount_as_string(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["properties"]["amount"] = "42,90"
        return cid.encode(), dumps(event)

    def missing_order_id(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        del event["properties"]["order_id"]
        return cid.encode(), dumps(event)

    def bad_quantity(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["properties"]["items"][0]["quantity"] = rng.choice((0, "2", 1.5))
        return cid.encode(), dumps(event)

    def bad_review(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["type"] = "review_submitted"
        event["properties"] = {"rating": rng.choice((0, 7, "five"))}
        return cid.encode(), dumps(event)

    def bad_timezone(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["type"] = "profile_updated"
        event["properties"] = {"timezone": rng.choice(("Mars/Olympus_Mons", "CEST+1"))}
        return cid.encode(), dumps(event)

    def future_version(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        event["schema_version"] = 2
        return cid.encode(), dumps(event)

    def missing_event_id(cid: str, event: Json) -> tuple[bytes | None, bytes]:
        del event["event_id"]
        return cid.encode(), dumps(event)

    return [
        not_json,
        truncated,
        array,
        scalar,
        missing_customer,
        key_mismatch,
        missing_key,
        bad_timestamp,
        future,
        amount_as_string,
        missing_order_id,
        bad_quantity,
        bad_review,
        bad_timezone,
        future_version,
        missing_event_id,
    ]


def malformed_message(
    rng: random.Random, now: datetime | None = None
) -> tuple[bytes | None, bytes]:
    """One invalid message (key, value) of a randomly chosen kind.

    Kinds: not JSON, truncated JSON, a JSON array or scalar, no customer_id, a
    key that is not the customer id, no key, a bad or far-future timestamp,
    wrongly typed or missing properties (amount as a string, rating out of
    range, unknown timezone), an unsupported schema_version, no event_id.
    """
    when = now or datetime.now(UTC)
    customer_id, event = _valid(rng, when)
    make = rng.choice(_broken(rng, when))
    return make(customer_id, event)
