"""The journey worker on a real broker: valid events land in state, bad ones in the DLQ."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.shell.embedded_broker import EmbeddedBroker
from tests.integration.kafka_io import (
    Deployment,
    WorkerProcess,
    as_message,
    consume_until,
    event,
    latest_by_key,
    produce,
    ts,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def valid_history(customers: int, total: int, rng: random.Random) -> list[dict[str, Any]]:
    """`total` valid events: every customer registers, browses and some order."""
    start = datetime.now(UTC) - timedelta(days=2)
    events: list[dict[str, Any]] = []
    for n in range(customers):
        cid = f"c-{n}"
        events.append(event(cid, "registered", f"{cid}-reg", ts(start), email=f"{cid}@example.org"))
    n = 0
    while len(events) < total:
        cid = f"c-{rng.randrange(customers)}"
        at = ts(start + timedelta(seconds=len(events)))
        roll = rng.random()
        if roll < 0.08:
            events.append(
                event(
                    cid,
                    "order_placed",
                    f"ev-{n}",
                    at,
                    order_id=f"o-{n}",
                    amount=round(rng.uniform(5, 200), 2),
                    currency="EUR",
                    items=[{"sku": "oil-4l", "category": "motor_oil", "price": 20.0}],
                )
            )
        elif roll < 0.2:
            events.append(event(cid, "visit", f"ev-{n}", at, channel="web"))
        elif roll < 0.25:
            events.append(event(cid, "newsletter_opened", f"ev-{n}", at, campaign="nov"))
        else:
            events.append(event(cid, "page_view", f"ev-{n}", at, url=f"/p/{n % 50}"))
        n += 1
    return events


def malformed(count: int, rng: random.Random) -> list[tuple[bytes | None, bytes | None]]:
    now = ts(datetime.now(UTC))
    kinds: list[tuple[bytes | None, bytes | None]] = [
        (b"c-1", b"not json at all"),
        (b"c-1", b'{"event_id": "x", "type": "visit", '),  # truncated
        (b"c-1", b"[1, 2, 3]"),
        (b"c-1", b'"just a string"'),
        (b"c-1", orjson.dumps({"event_id": "x", "type": "visit", "occurred_at": now})),
        (b"c-1", orjson.dumps(event("", "visit", "x", now))),
        (b"c-2", orjson.dumps(event("c-1", "visit", "x", now))),
        (None, orjson.dumps(event("c-1", "visit", "x", now))),
        (b"c-1", orjson.dumps(event("c-1", "visit", "x", "2026-11-22 10:00"))),
        (b"c-1", orjson.dumps(event("c-1", "visit", "x", "yesterday"))),
        (b"c-1", orjson.dumps(event("c-1", "visit", "x", 1795400000))),
        (b"c-1", orjson.dumps(event("c-1", "order_placed", "x", now, order_id="o", amount="9.99"))),
        (b"c-1", orjson.dumps(event("c-1", "review_submitted", "x", now, rating=11))),
        (b"c-1", orjson.dumps(event("c-1", "visit", "x", now)) + b" " * (300 * 1024)),
        (b"c-1", b""),
        (b"\xff\xfe", orjson.dumps(event("c-1", "visit", "x", now))),
    ]
    return [kinds[i % len(kinds)] for i in range(count)] if rng else []


async def test_malformed_messages_go_to_dlq_and_valid_ones_to_state(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rng = random.Random(42)
    deployment = Deployment(broker)
    valid = valid_history(customers=400, total=10_000, rng=rng)
    bad = malformed(1_000, rng)
    messages = [as_message(e) for e in valid]
    for i, message in enumerate(bad):
        messages.insert((i * 11) % len(messages), message)

    worker = WorkerProcess(deployment, tmp_path)
    try:
        worker.wait_ready()
        assert await produce(broker.bootstrap, deployment.events, messages) == 11_000

        orders: Counter[str] = Counter()
        spent: Counter[str] = Counter()
        for e in valid:
            if e["type"] == "order_placed":
                orders[e["customer_id"]] += 1
                spent[e["customer_id"]] += e["properties"]["amount"]

        def state_complete(records: list[Any]) -> bool:
            # Every event counted, not only the orders: page views after a customer's
            # last order reach the changelog in a later flush.
            state = latest_by_key(records)
            return (
                len(state) == 400
                and all(state[c.encode()].get("orders_count", 0) == n for c, n in orders.items())
                and sum(s.get("events_count", 0) for s in state.values()) == 10_000
            )

        changelog = await consume_until(broker.bootstrap, [deployment.changelog], state_complete)
        state = latest_by_key(changelog)
        assert len(state) == 400
        for customer, count in orders.items():
            assert state[customer.encode()]["orders_count"] == count
            assert state[customer.encode()]["total_spent"] == pytest.approx(
                spent[customer], abs=0.02
            )
        assert sum(s.get("events_count", 0) for s in state.values()) == 10_000

        dlq = await consume_until(broker.bootstrap, [deployment.dlq], lambda r: len(r) >= 1_000)
        assert len(dlq) == 1_000
        letters = [orjson.loads(r.value) for r in dlq]
        assert all(letter["error_code"] and letter["error_message"] for letter in letters)
        codes = Counter(letter["error_code"] for letter in letters)
        assert set(codes) == {
            "invalid_json",
            "not_an_object",
            "missing_customer_id",
            "key_mismatch",
            "missing_key",
            "invalid_timestamp",
            "invalid_properties",
            "oversized",
            "empty_value",
        }
        positions = {(x["source"]["partition"], x["source"]["offset"]) for x in letters}
        assert len(positions) == 1_000, "each dead letter points at its own source message"

        assert worker.alive()
        status, body = worker.get("/metrics")
        assert status == 200
        rejected = sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("crm_events_rejected_total{")
        )
        assert rejected == 1_000
    finally:
        worker.stop()


@pytest.mark.parametrize("direct", ["true", "false"], ids=["direct-delivery", "faust-agents"])
async def test_registration_and_order_propose_actions_once(
    broker: EmbeddedBroker, tmp_path: Path, direct: str
) -> None:
    """Either way of handing messages to the handlers (CRM_DIRECT_DELIVERY) decides alike."""
    deployment = Deployment(broker)
    now = datetime.now(UTC)
    registered = event(
        "anna",
        "registered",
        "e-1",
        ts(now - timedelta(minutes=5)),
        first_name="Anna",
        email="anna@example.org",
    )
    order = event(
        "anna",
        "order_placed",
        "e-2",
        ts(now - timedelta(minutes=1)),
        order_id="o-1",
        amount=59.9,
        currency="EUR",
    )
    page = event("anna", "page_view", "e-3", ts(now), url="/")
    # Every event twice: the producer retried. Dedupe by event_id must hold.
    messages = [as_message(e) for e in (registered, order, page, registered, order)]
    worker = WorkerProcess(deployment, tmp_path, CRM_DIRECT_DELIVERY=direct)
    try:
        await produce(broker.bootstrap, deployment.events, messages)
        records = await consume_until(
            broker.bootstrap, [deployment.decisions], lambda r: len(r) >= 2, timeout=60
        )
        # Give a duplicate a chance to show up, bounded by a read of everything produced after.
        await produce(
            broker.bootstrap,
            deployment.events,
            [as_message(event("anna", "registered", "e-9", ts(now), email="x@y.z"))],
        )
        records = await consume_until(
            broker.bootstrap, [deployment.decisions], lambda r: len(r) >= 3, timeout=60
        )
        emails = await consume_until(
            broker.bootstrap, [deployment.actions_prefix + "email"], lambda r: len(r) >= 1
        )
    finally:
        worker.stop()
    decisions = [orjson.loads(r.value) for r in records]
    assert [d["rule_id"] for d in decisions] == ["welcome", "order_thanks", "welcome"]
    assert all(r.key == b"anna" for r in records)
    assert len({d["action_id"] for d in decisions}) == 3
    # A transactional thank-you is sent at once, whatever the hour or the caps.
    assert decisions[1]["outcome"] == "sent"
    thanks = next(orjson.loads(r.value) for r in emails if b"order_thanks" in r.value)
    assert thanks["action_id"] == decisions[1]["action_id"]
    assert thanks["category"] == "transactional"
    assert thanks["payload"]["event"]["order_id"] == "o-1"
    assert datetime.fromisoformat(thanks["triggered_at"]) == datetime.fromisoformat(
        order["occurred_at"]
    )
