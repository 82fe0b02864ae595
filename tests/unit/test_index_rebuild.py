"""After a recovery, a worker rebuilds its due-time index from the customers it holds
(on RocksDB, from its partitions' files), and lets the event loop run meanwhile: at
millions of customers the rebuild takes minutes, and a worker whose web server stops
answering fails its liveness probe and is restarted into the same rebuild."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP, Message
from prometheus_client import REGISTRY

from streams.settings import Settings
from streams.shell.app import REBUILD_CHUNK, create_app
from streams.shell.lean_recovery import recovery_take

CUSTOMERS = 2 * REBUILD_CHUNK + 10  # more than two chunks, over two partitions


def state(n: int) -> bytes:
    # What the index reads of a stored state: its earliest timer first.
    timers = [{"due_at": f"2026-12-{1 + n % 28:02d}T00:00:00Z"}, {"due_at": "2027-01-01T00:00:00Z"}]
    return orjson.dumps({"customer_id": f"c-{n}", "timers": timers})


def worker_with_stored_customers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings = Settings(store="rocksdb://", web_enabled=False, data_dir=tmp_path)
    app = create_app(settings)
    table = app.tables["customers"]
    for n in range(CUSTOMERS):
        table.data._db_for_partition(n % 2)[f"c-{n}".encode()] = state(n)
    owned = {TP(settings.events_topic, 0), TP(settings.events_topic, 1)}
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: owned)
    return app


@pytest.mark.asyncio
async def test_the_rebuild_indexes_every_stored_customer_and_lets_other_tasks_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = worker_with_stored_customers(tmp_path, monkeypatch)
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(other_task())
    with caplog.at_level(logging.INFO, logger="streams.shell.app"):
        await app.tables["customers"].call_recover_callbacks()
    running.cancel()
    assert f"index rebuilt: {CUSTOMERS} customers in 2 partitions" in caplog.text
    assert REGISTRY.get_sample_value("crm_timers_pending") == 2 * CUSTOMERS
    assert turns >= CUSTOMERS // REBUILD_CHUNK


@pytest.mark.asyncio
@pytest.mark.parametrize("overtaken_by", ["a new recovery", "a revoke"])
async def test_a_rebuild_overtaken_by_a_rebalance_stops(
    overtaken_by: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The recovery starts again and completes again: that rebuild is the one to keep.
    # A revoke comes a group join before the new recovery is signalled: the rebuild
    # must not go on indexing partitions that are now another worker's.
    app = worker_with_stored_customers(tmp_path, monkeypatch)
    restarted = asyncio.Event()
    app.tables._recovery = SimpleNamespace(signal_recovery_start=restarted)

    async def rebalance() -> None:
        await asyncio.sleep(0)  # once the rebuild has begun
        if overtaken_by == "a revoke":
            await app.on_partitions_revoked.send(revoked={TP(Settings().events_topic, 1)})
        else:
            restarted.set()

    begun = asyncio.create_task(rebalance())
    with caplog.at_level(logging.INFO, logger="streams.shell.app"):
        await app.tables["customers"].call_recover_callbacks()
    await begun
    assert "index rebuild abandoned: the recovery restarts" in caplog.text
    assert "index rebuilt" not in caplog.text


@pytest.mark.asyncio
async def test_the_memory_store_rebuild_indexes_the_owned_partitions_customers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The memory store knows a key's partition only from the changelog record that
    # brought it (`partition_of`): recover customers over three partitions, own two.
    settings = Settings(web_enabled=False)
    app = create_app(settings)
    table = app.tables["customers"]
    topic = table.changelog_topic.get_topic_name()
    recovery = app.tables.recovery
    app.tables.changelog_queue.start_generation(0)
    offsets = {0: 0, 1: 0, 2: 0}
    messages = []
    for n in range(CUSTOMERS):
        partition = n % 3
        tp = TP(topic, partition)
        key = f"c-{n}".encode()
        messages.append(
            Message(topic, partition, offsets[partition], 0.0, 0, [], key, state(n), None, tp=tp)
        )
        offsets[partition] += 1
    for partition, count in offsets.items():
        tp = TP(topic, partition)
        recovery.tp_to_table[tp] = table
        recovery.active_tps.add(tp)
        recovery.active_highwaters[tp] = count - 1
        recovery.active_offsets[tp] = -1
    recovery._set_recovery_started()
    take = recovery_take(app.tables)
    for message in messages:
        await take(message)
    owned = {TP(settings.events_topic, 0), TP(settings.events_topic, 1)}
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: owned)
    with caplog.at_level(logging.INFO, logger="streams.shell.app"):
        await table.call_recover_callbacks()
    indexed = offsets[0] + offsets[1]
    assert f"index rebuilt: {indexed} customers in 2 partitions" in caplog.text
    assert REGISTRY.get_sample_value("crm_timers_pending") == 2 * indexed
