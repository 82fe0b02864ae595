"""A backlog of old events replayed into a running worker: the history's past-due
timers wait for the history, not for the wall clock (streams/core/replay_clock.py)."""

from __future__ import annotations

import asyncio
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
    produce,
    ts,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

RULES = """
version: 1
rules:
  - id: welcome
    kind: action
    on: registered
    channels: [email]
    template: welcome_v1
    category: service
  - id: first_order_nudge
    kind: inactivity
    after: registered
    unless: [order_placed]
    within: 30d
    channels: [email]
    template: nudge_v1
    category: marketing
"""


def fired(records: list[Any], rule_id: str, customer: bytes) -> bool:
    return any(orjson.loads(r.value)["rule_id"] == rule_id and r.key == customer for r in records)


async def test_a_paused_replay_does_not_fire_timers_its_later_events_cancel(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    deployment = Deployment(broker)
    registered = datetime.now(UTC) - timedelta(days=60)
    worker = WorkerProcess(deployment, tmp_path, CRM_RULES_FILE=str(rules))
    try:
        worker.wait_ready()
        # Two customers registered 60 days ago: both nudges were due 30 days ago.
        await produce(
            broker.bootstrap,
            deployment.events,
            [
                as_message(event("buyer", "registered", "b-1", ts(registered))),
                as_message(event("silent", "registered", "s-1", ts(registered))),
            ],
        )
        await consume_until(
            broker.bootstrap,
            [deployment.decisions],
            lambda r: fired(r, "welcome", b"buyer") and fired(r, "welcome", b"silent"),
        )
        # The replaying producer pauses (shorter than the idle grace, longer than a
        # few timer scans): the worker has processed everything it was given.
        await asyncio.sleep(1.0)
        order = event(
            "buyer",
            "order_placed",
            "b-2",
            ts(registered + timedelta(days=20)),
            order_id="o-1",
            amount=20.0,
        )
        await produce(broker.bootstrap, deployment.events, [as_message(order)])
        # Once the backlog is done the silent customer's nudge fires...
        records = await consume_until(
            broker.bootstrap,
            [deployment.decisions],
            lambda r: fired(r, "first_order_nudge", b"silent"),
            timeout=30,
        )
        assert fired(records, "first_order_nudge", b"silent"), worker.log_tail()
    finally:
        worker.stop()
    # ...and the buyer's, cancelled by the order 20 days after the registration, never.
    assert not fired(records, "first_order_nudge", b"buyer")
