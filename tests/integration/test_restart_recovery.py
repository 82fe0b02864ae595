"""State survives a worker restart: the table is rebuilt from its changelog, completely."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streams.shell.embedded_broker import EmbeddedBroker
from tests.integration.kafka_io import (
    Deployment,
    WorkerProcess,
    as_message,
    consume_until,
    latest_by_key,
    produce,
    wait_for_gauge,
)
from tests.integration.test_journey_worker import valid_history

ACTIONS_ONLY = Path(__file__).with_name("actions_only.yaml")

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_restarted_worker_recovers_every_customer_and_keeps_deduping(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    deployment = Deployment(broker)
    history = valid_history(customers=300, total=6_000, rng=random.Random(3))
    first = WorkerProcess(deployment, tmp_path, CRM_RULES_FILE=str(ACTIONS_ONLY))
    try:
        await produce(broker.bootstrap, deployment.events, [as_message(e) for e in history])
        records = await consume_until(
            broker.bootstrap,
            [deployment.changelog],
            lambda r: sum(v.get("events_count", 0) for v in latest_by_key(r).values()) == 6_000,
        )
        before = latest_by_key(records)
        assert len(before) == 300
    finally:
        assert first.stop() == 0, first.log_tail()

    second = WorkerProcess(deployment, tmp_path, CRM_RULES_FILE=str(ACTIONS_ONLY))
    try:
        second.wait_ready()
        await wait_for_gauge(second, 'crm_table_keys{table="customers"}', 300.0, timeout=30)
        # Replay the last 200 events, the ones at the tail of each changelog partition where
        # the embedded broker's end-offset bug would lose state: all must be duplicates.
        await produce(broker.bootstrap, deployment.events, [as_message(e) for e in history[-200:]])
        await wait_for_gauge(second, "crm_events_duplicate_total", 200.0, timeout=30)
    finally:
        second.stop()
    after = latest_by_key(
        await consume_until(broker.bootstrap, [deployment.changelog], lambda r: False, timeout=3)
    )
    assert {k: v["events_count"] for k, v in after.items()} == {
        k: v["events_count"] for k, v in before.items()
    }
    assert after == before
