"""Seeded hostile messages for the events topic, each invalid by construction.

Every family an outside producer can get wrong: random bytes, truncated JSON,
huge strings, deep nesting, wrong types, wrong or missing keys, bad times.
Each message comes with the reject code the worker must give it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

Message = tuple[bytes | None, bytes | None]


def _valid(rng: random.Random, customer: str) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=rng.randint(1, 600))
    return {
        "event_id": f"fz-{rng.getrandbits(64):x}",
        "type": "order_placed",
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "properties": {"order_id": f"o-{rng.getrandbits(32)}", "amount": 10.0},
    }


def random_bytes(rng: random.Random, c: str) -> tuple[Message, str]:
    # A leading byte that no JSON text starts with keeps it non-JSON whatever follows.
    return (c.encode(), b"\x01" + rng.randbytes(rng.randint(0, 2000))), "invalid_json"


def truncated(rng: random.Random, c: str) -> tuple[Message, str]:
    text = orjson.dumps(_valid(rng, c))
    return (c.encode(), text[: rng.randint(1, len(text) - 1)]), "invalid_json"


def huge_string(rng: random.Random, c: str) -> tuple[Message, str]:
    event = _valid(rng, c)
    event["properties"]["note"] = "x" * rng.randint(
        300_000, 900_000
    )  # over our 256 KiB limit, under Kafka's 1 MB
    return (c.encode(), orjson.dumps(event)), "oversized"


def deep_nesting(rng: random.Random, c: str) -> tuple[Message, str]:
    # Below orjson's depth limit it parses (not an object), above it does not.
    depth = rng.randint(200, 5000)
    return (c.encode(), b"[" * depth + b"]" * depth), "deep"


def wrong_types(rng: random.Random, c: str) -> tuple[Message, str]:
    event = _valid(rng, c)
    event["properties"]["amount"] = rng.choice(["ten", [1], {"v": 1}, None, True])
    return (c.encode(), orjson.dumps(event)), "invalid_properties"


def not_an_object(rng: random.Random, c: str) -> tuple[Message, str]:
    value = rng.choice([[1, 2], "text", 42, None, 1.5])
    return (c.encode(), orjson.dumps(value)), "not_an_object"


def wrong_key(rng: random.Random, c: str) -> tuple[Message, str]:
    return (f"{c}-other".encode(), orjson.dumps(_valid(rng, c))), "key_mismatch"


def missing_key(rng: random.Random, c: str) -> tuple[Message, str]:
    return (None, orjson.dumps(_valid(rng, c))), "missing_key"


def bad_time(rng: random.Random, c: str) -> tuple[Message, str]:
    event = _valid(rng, c)
    event["occurred_at"] = rng.choice(["yesterday", 1795400000, "2026-13-45T99:00:00Z", ""])
    return (c.encode(), orjson.dumps(event)), "invalid_timestamp"


def empty(rng: random.Random, c: str) -> tuple[Message, str]:
    return (c.encode(), b""), "empty_value"


FAMILIES: list[Callable[[random.Random, str], tuple[Message, str]]] = [
    random_bytes,
    truncated,
    huge_string,
    deep_nesting,
    wrong_types,
    not_an_object,
    wrong_key,
    missing_key,
    bad_time,
    empty,
]


def hostile_messages(count: int, seed: int) -> Iterator[tuple[Message, str]]:
    """`count` invalid messages and the reject code of each (`deep`: `invalid_json` or
    `not_an_object` depending on the depth)."""
    rng = random.Random(seed)
    for i in range(count):
        family = FAMILIES[i % len(FAMILIES)] if i < len(FAMILIES) else rng.choice(FAMILIES)
        # Huge strings are expensive to produce: keep them to 1 in 50.
        if family is huge_string and rng.random() > 0.2:
            family = truncated
        yield family(rng, f"fuzz-{rng.randint(0, 999)}")
