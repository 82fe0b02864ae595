"""Learned RFM on a real broker: the population a worker learned is learned again by its
successor from the recovered states, so a rule on `rfm.*` decides the same after a
restart."""

from __future__ import annotations

import signal
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
settings:
  rfm: {learn: true, learn_min_customers: 5}
rules:
  - id: thanks
    kind: action
    on: order_placed
    channels: [email]
    template: thanks_v1
    category: transactional
  - id: top_spender
    kind: action
    on: visit
    when: rfm.m == 5
    channels: [email]
    template: top_v1
    category: transactional
  - id: low_spender
    kind: action
    on: visit
    when: rfm.m == 1
    channels: [email]
    template: low_v1
    category: transactional
"""


def seen(records: list[Any]) -> set[tuple[str, bytes]]:
    return {(orjson.loads(m.value)["rule_id"], m.key) for m in records}


# rocksdb-kept: the successor restarts on the RocksDB files its predecessor left, so its
# recovery reads only the changelog written since; the customers in the files must be
# counted too.
@pytest.mark.parametrize(
    ("store", "keep_data"),
    [("memory://", False), ("rocksdb://", False), ("rocksdb://", True)],
    ids=["memory", "rocksdb", "rocksdb-kept"],
)
async def test_a_successor_scores_rfm_against_the_population_its_predecessor_learned(
    broker: EmbeddedBroker, tmp_path: Path, store: str, keep_data: bool
) -> None:
    data_dir = tmp_path / "data" if keep_data else None
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    deployment = Deployment(broker)
    t0 = datetime.now(UTC)
    # Ten customers, one order each: 10, 20, ... 100. Learned, 100 is the top fifth's
    # spend (m 5); the default cut points (50, 150, 400, 1000) would give it 2.
    orders = [
        event(f"c-{n}", "order_placed", f"o-{n}", ts(t0), order_id=f"o-{n}", amount=10.0 * (n + 1))
        for n in range(10)
    ]
    first = WorkerProcess(
        deployment, tmp_path, data_dir, CRM_RULES_FILE=str(rules), CRM_STORE=store
    )
    try:
        first.wait_ready()
        await produce(broker.bootstrap, deployment.events, [as_message(e) for e in orders])
        records = await consume_until(
            broker.bootstrap,
            [deployment.decisions],
            lambda r: sum(rule == "thanks" for rule, _ in seen(r)) >= 10,
        )
        assert sum(rule == "thanks" for rule, _ in seen(records)) == 10, first.log_tail()
    finally:
        first.stop(signal.SIGKILL)

    # The successor learns only from the states it recovers (from the changelog, or
    # from the files kept and the changelog's tail).
    second = WorkerProcess(
        deployment, tmp_path, data_dir, CRM_RULES_FILE=str(rules), CRM_STORE=store
    )
    try:
        second.wait_ready()
        visits = [event(f"c-{n}", "visit", f"v-{n}", ts(t0 + timedelta(seconds=1))) for n in (0, 9)]
        await produce(broker.bootstrap, deployment.events, [as_message(e) for e in visits])
        wanted = {("top_spender", b"c-9"), ("low_spender", b"c-0")}
        records = await consume_until(
            broker.bootstrap, [deployment.decisions], lambda r: wanted <= seen(r), timeout=90
        )
        assert wanted <= seen(records), second.log_tail()
    finally:
        second.stop()
    assert ("top_spender", b"c-0") not in seen(records)
    assert ("low_spender", b"c-9") not in seen(records)
