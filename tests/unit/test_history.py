"""The generated histories: the browsing mix the benchmark replays looks like a shop's
traffic, and every event of it is one the engine accepts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import orjson

from schemas.event import Event
from streams.core.decoding import DecodeLimits, decode_event
from streams.demo.history import REALISTIC, generate_history

END = datetime(2026, 11, 1, tzinfo=UTC)


def test_browsing_mix_is_dominated_by_page_views_and_visits() -> None:
    events = generate_history(2_000, 90, END, seed=3, mix=REALISTIC)
    kinds = Counter(e["type"] for e in events)
    browsing = (kinds["page_view"] + kinds["visit"]) / len(events)
    assert 0.75 <= browsing <= 0.9
    # Purchases still happen, and half the customers never register or order.
    assert kinds["order_placed"] > 0 and kinds["registered"] > 0
    buyers = {e["customer_id"] for e in events if e["type"] in ("registered", "order_placed")}
    customers = {e["customer_id"] for e in events}
    assert 0.4 <= 1 - len(buyers) / len(customers) <= 0.6


def test_every_generated_event_is_valid() -> None:
    for event in generate_history(300, 90, END, seed=9, mix=REALISTIC):
        decoded = decode_event(
            event["customer_id"].encode(), orjson.dumps(event), DecodeLimits(), END
        )
        assert isinstance(decoded, Event), decoded
