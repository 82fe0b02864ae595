"""A worker killed between two changelog flushes, restarted on the same local storage.

With `CRM_STORE=rocksdb://` on a persistent `CRM_DATA_DIR` (what the README advises for
large state), a restart recovers from its local files plus the changelog's tail. The
events processed since the last flush are not acked: they are read again, and what
they should have published (which may never have left the producer's buffer) must be
published then."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

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
    wait_for_gauge,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CUSTOMERS = 20


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_outputs_lost_in_a_kill_before_the_flush_are_published_after_the_restart(
    broker: EmbeddedBroker, tmp_path: Path, store: str
) -> None:
    deployment = Deployment(broker)
    data = tmp_path / "data"
    now = ts(datetime.now(UTC))
    registrations = [
        event(f"c-{n}", "registered", f"reg-{n}", now, email=f"c{n}@example.org")
        for n in range(CUSTOMERS)
    ]
    # No flush and no send before the kill: the state is written locally only, and the
    # welcomes wait in the producer's buffer.
    first = WorkerProcess(
        deployment,
        tmp_path,
        data_dir=data,
        CRM_STORE=store,
        CRM_CHANGELOG_FLUSH_INTERVAL_SECONDS="3600",
        CRM_PRODUCER_LINGER_MS="600000",
    )
    try:
        first.wait_ready()
        await produce(broker.bootstrap, deployment.events, [as_message(e) for e in registrations])
        await wait_for_gauge(first, "crm_events_consumed_total", CUSTOMERS, timeout=60)
    finally:
        first.stop(signal.SIGKILL)

    second = WorkerProcess(deployment, tmp_path, data_dir=data, CRM_STORE=store)
    try:
        second.wait_ready()

        def welcomed(records: list[object]) -> set[bytes]:
            return {
                m.key  # type: ignore[attr-defined]
                for m in records
                if orjson.loads(m.value)["rule_id"] == "welcome"  # type: ignore[attr-defined]
            }

        records = await consume_until(
            broker.bootstrap,
            [deployment.decisions],
            lambda r: len(welcomed(r)) >= CUSTOMERS,
            timeout=60,
        )
        missing = CUSTOMERS - len(welcomed(records))
        assert missing == 0, f"{missing} welcomes never published:\n{second.log_tail()}"
        # The gauge counts them (each once, however often rewritten).
        await wait_for_gauge(second, 'crm_table_keys{table="customers"}', CUSTOMERS, timeout=30)
    finally:
        second.stop()
