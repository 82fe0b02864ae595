"""Faust's recovery bookkeeping made cheaper gives the same answers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import faust
import orjson
import pytest
from faust.tables.manager import TableManager
from faust.types import TP, Message
from mode.utils.queues import FlowControlEvent

from streams.settings import Settings
from streams.shell.app import create_app
from streams.shell.lean_recovery import (
    LeanTableManager,
    ReadyFirstQueue,
    records_remaining,
    recovery_take,
)


def upstream_need_recovery(highwaters: dict[TP, int | None], offsets: Counter[TP]) -> bool:
    """faust-streaming 0.15 `Recovery.need_recovery` over `active_remaining`."""
    remaining = Counter(
        {
            tp: highwater - offsets[tp]
            for tp, highwater in highwaters.items()
            if highwater is not None and offsets[tp] is not None
        }
    )
    return any(v > 0 for v in remaining.values())


def test_records_remaining_answers_as_upstream_on_random_positions() -> None:
    rng = random.Random(5)
    seen = Counter[bool]()
    for _ in range(2_000):
        tps = [TP("customers-changelog", p) for p in range(rng.randint(0, 8))]
        highwaters = {tp: rng.choice([None, rng.randint(-1, 50)]) for tp in tps}
        offsets: Counter[TP] = Counter(
            {tp: rng.randint(-1, 50) for tp in tps if rng.random() < 0.8}
        )
        answer = records_remaining(highwaters, offsets)
        assert answer == upstream_need_recovery(highwaters, offsets)
        seen[answer] += 1
    assert seen[True] > 100 and seen[False] > 100


@pytest.mark.asyncio
async def test_the_changelog_queue_hands_out_what_waits_at_once_and_waits_when_empty() -> None:
    flow = FlowControlEvent()
    flow.resume()
    queue = ReadyFirstQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    queue.put_nowait("a")
    queue.put_nowait("b")
    ready = queue.get()
    assert isinstance(ready, asyncio.Future) and ready.done()
    assert await asyncio.wait_for(ready, 1) == "a"
    assert await asyncio.wait_for(queue.get(), 1) == "b"
    waiting = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait("c")
    assert await waiting == "c"
    await queue.throw(RuntimeError("recovery stopped"))
    with pytest.raises(RuntimeError, match="recovery stopped"):
        await asyncio.wait_for(queue.get(), 1)


def changelog_record(tp: TP, offset: int, generation: int = 0) -> Any:
    """What recovery takes from the changelog queue: an event and its message (the
    consumer generation it was taken from aiokafka in)."""
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset, generation_id=generation))


def worker_app(manager: type[TableManager]) -> faust.App:
    return faust.App(
        "lean-recovery-test",
        broker="kafka://127.0.0.1:1",
        web_enabled=False,
        TableManager=manager,
    )


ACTIVE = TP("customers-changelog", 0)
STANDBY = TP("contacts-changelog", 1)


async def drain_queue(queue: Any) -> list[int]:
    taken = []
    while not queue.empty():
        taken.append((await asyncio.wait_for(queue.get(), 1)).message.offset)
    return taken


@pytest.mark.asyncio
async def test_records_waiting_in_the_changelog_queue_survive_flow_control_resuming() -> None:
    # Recovery resumes flow control mid-read (standbys starting, streams resuming): the
    # consumer has taken these records from aiokafka, nothing reads them again.
    app = worker_app(LeanTableManager)
    recovery = app.tables.recovery
    recovery.active_tps.add(ACTIVE)
    queue = app.tables.changelog_queue
    for offset in (171, 172, 173):
        queue.put_nowait(changelog_record(ACTIVE, offset))
    app.flow_control.resume()
    assert await drain_queue(queue) == [171, 172, 173]


@pytest.mark.asyncio
async def test_faust_queue_drops_them_when_flow_control_resumes() -> None:
    app = worker_app(TableManager)
    queue = app.tables.changelog_queue
    queue.put_nowait(changelog_record(ACTIVE, 171))
    app.flow_control.resume()
    assert queue.empty()


@pytest.mark.asyncio
async def test_an_assignment_drops_what_was_queued_for_the_one_before() -> None:
    app = worker_app(LeanTableManager)
    recovery = app.tables.recovery
    queue = app.tables.changelog_queue
    queue.put_nowait(changelog_record(ACTIVE, 5000))
    # A late call for an older generation leaves the current recovery's records alone.
    await recovery.on_rebalance(set(), set(), set(), generation_id=app.consumer_generation_id - 1)
    assert queue.qsize() == 1
    # The recovery of this one seeks every partition it reads and reads them again:
    # applied first, 5000 would make it skip the records from the start up to 5000.
    app.consumer_generation_id = 3
    await recovery.on_rebalance(set(), set(), set(), generation_id=3)
    assert queue.empty()
    recovery.active_tps.add(ACTIVE)  # as the assignor would have it
    # A put the conductor left waiting (for room, for flow control) lands afterwards.
    queue.put_nowait(changelog_record(ACTIVE, 5001, generation=2))
    queue.put_nowait(changelog_record(ACTIVE, 1, generation=3))
    assert await drain_queue(queue) == [1]


@pytest.mark.asyncio
async def test_a_revoke_drops_what_was_queued() -> None:
    # Upstream's revoke empties the queues flow control manages; ours too, so records
    # of the revoked partitions are not applied while the group rebalances.
    app = worker_app(LeanTableManager)
    queue = app.tables.changelog_queue
    queue.put_nowait(changelog_record(ACTIVE, 5000))
    app.tables.recovery.on_partitions_revoked({ACTIVE})
    assert queue.empty()


@pytest.mark.asyncio
async def test_the_queue_hands_out_only_records_of_partitions_recovery_reads() -> None:
    app = worker_app(LeanTableManager)
    recovery = app.tables.recovery
    recovery.active_tps.add(ACTIVE)
    recovery.standby_tps.add(STANDBY)
    queue = app.tables.changelog_queue
    revoked = TP("customers-changelog", 7)
    for tp, offset in [(revoked, 1), (ACTIVE, 2), (revoked, 3), (STANDBY, 4)]:
        queue.put_nowait(changelog_record(tp, offset))
    assert await drain_queue(queue) == [2, 4]
    assert queue.dropped == 2
    waiting = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    queue.put_nowait(changelog_record(revoked, 5))
    queue.put_nowait(changelog_record(ACTIVE, 6))
    assert (await waiting).message.offset == 6


# Direct delivery: the consumer hands changelog records to `LeanRecovery.take`.

CUSTOMERS_CHANGELOG = TP("crm-customers-changelog", 0)
CONTACTS_CHANGELOG = TP("crm-contacts-changelog", 1)
NOT_READ = TP("crm-customers-changelog", 5)


def message(tp: TP, offset: int, key: bytes, value: bytes | None, generation: int = 0) -> Any:
    return Message(
        tp.topic,
        tp.partition,
        offset,
        0.0,
        0,
        [],
        key,
        value,
        None,
        tp=tp,
        generation_id=generation,
    )


def state(customer: str, n: int) -> bytes:
    return orjson.dumps({"customer_id": customer, "orders_count": n})


# Customers (active) and contacts (standby) changelog records as a recovery meets them:
# interleaved, a tombstone, records read again after a seek (offset already applied),
# one taken in an earlier consumer generation and one of a partition not read.
SCRIPT = [
    message(CUSTOMERS_CHANGELOG, 0, b"c-1", state("c-1", 1)),
    message(CONTACTS_CHANGELOG, 0, b"c-7", state("c-7", 1)),
    message(CUSTOMERS_CHANGELOG, 1, b"c-2", state("c-2", 1)),
    message(CUSTOMERS_CHANGELOG, 2, b"c-1", state("c-1", 2)),
    message(NOT_READ, 3, b"c-9", state("c-9", 1)),
    message(CUSTOMERS_CHANGELOG, 3, b"c-2", None),
    message(CUSTOMERS_CHANGELOG, 1, b"c-2", state("c-2", 1)),
    message(CONTACTS_CHANGELOG, 1, b"c-7", state("c-7", 2)),
    message(CUSTOMERS_CHANGELOG, 4, b"c-3", state("c-3", 5), generation=-1),
    message(CUSTOMERS_CHANGELOG, 4, b"c-3", state("c-3", 1)),
    message(CONTACTS_CHANGELOG, 2, b"c-8", state("c-8", 1)),
    message(CUSTOMERS_CHANGELOG, 5, b"c-4", state("c-4", 1)),
]
LAST_OFFSET = {CUSTOMERS_CHANGELOG: 5, CONTACTS_CHANGELOG: 2}


def recovering_app() -> Any:
    """A worker app whose recovery reads the customers changelog's partition 0 (active)
    and the contacts changelog's partition 1 (standby), as after an assignment."""
    app = create_app(Settings(web_enabled=False, app_id="crm"))
    recovery = app.tables.recovery
    cast(Any, app.tables.changelog_queue).start_generation(0)
    for tp, name, tps, highwaters, offsets in (
        (
            CUSTOMERS_CHANGELOG,
            "customers",
            recovery.active_tps,
            recovery.active_highwaters,
            recovery.active_offsets,
        ),
        (
            CONTACTS_CHANGELOG,
            "contacts",
            recovery.standby_tps,
            recovery.standby_highwaters,
            recovery.standby_offsets,
        ),
    ):
        table = app.tables[name]
        table.recovery_buffer_size = table.standby_buffer_size = 2  # batches applied mid-way
        assert table.changelog_topic.get_topic_name() == tp.topic
        recovery.tp_to_table[tp] = table
        tps.add(tp)
        highwaters[tp] = LAST_OFFSET[tp]  # Faust's: the last record's offset
        offsets[tp] = -1  # nothing stored locally
    recovery._set_recovery_started()
    return app


def recovered(app: Any) -> dict[str, Any]:
    recovery = app.tables.recovery
    return {
        "customers": dict(app.tables["customers"].data.data),
        "contacts": dict(app.tables["contacts"].data.data),
        "active offsets": dict(recovery.active_offsets),
        "standby offsets": dict(recovery.standby_offsets),
        "in recovery": recovery.in_recovery,
        "ended": recovery._recovery_ended_at is not None,
        "dropped": app.tables.changelog_queue.dropped,
    }


@pytest.mark.asyncio
async def test_take_recovers_what_upstreams_reading_task_recovers() -> None:
    # Upstream: the conductor decodes each record into an Event through the table's
    # changelog topic and queues it; Faust's `_slurp_changelogs` applies the queue.
    upstream = recovering_app()
    queue = upstream.tables.changelog_queue
    topics = {
        tp.topic: upstream.tables[name].changelog_topic
        for tp, name in ((CUSTOMERS_CHANGELOG, "customers"), (CONTACTS_CHANGELOG, "contacts"))
    }
    for msg in SCRIPT:
        queue.put_nowait(await topics[msg.topic].decode(msg, propagate=True))
    recovery = upstream.tables.recovery
    ended = recovery.signal_recovery_end
    reading = asyncio.ensure_future(recovery._slurp_changelogs(recovery))  # a Service.task
    try:
        await asyncio.wait_for(ended.wait(), 5)
    finally:
        reading.cancel()
    expected = recovered(upstream)

    direct = recovering_app()
    take = recovery_take(direct.tables)
    for msg in SCRIPT:
        await take(msg)
    assert recovered(direct) == expected
    assert expected["customers"] == {
        b"c-1": state("c-1", 2),
        b"c-3": state("c-3", 1),
        b"c-4": state("c-4", 1),
    }
    assert expected["contacts"] == {b"c-7": state("c-7", 2), b"c-8": state("c-8", 1)}
    assert expected["ended"] and not expected["in recovery"]
    assert expected["dropped"] == 2
    assert direct.tables.recovery.signal_recovery_end.is_set()


@pytest.mark.asyncio
async def test_a_recovery_ended_by_take_does_not_end_the_next_one_early() -> None:
    app = recovering_app()
    take = recovery_take(app.tables)
    for msg in SCRIPT:
        await take(msg)
    recovery = app.tables.recovery
    assert recovery.signal_recovery_end.is_set()
    # Faust's next recovery waits for this event once it has resumed the partitions.
    recovery._set_recovery_started()
    assert not recovery.signal_recovery_end.is_set()


@pytest.mark.asyncio
async def test_a_record_that_fails_to_apply_is_logged_and_the_reading_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = recovering_app()
    take = recovery_take(app.tables)
    table = app.tables["customers"]
    table.recovery_buffer_size = 1
    failing = table.apply_changelog_batch

    def fail_once(batch: Any) -> None:
        table.apply_changelog_batch = failing
        raise OSError("disk full")

    table.apply_changelog_batch = fail_once
    for msg in SCRIPT:
        await take(msg)
    assert "disk full" in caplog.text
    # As upstream's loop: the failed batch stays buffered and goes with the next one.
    assert app.tables["customers"].data.data[b"c-1"] == state("c-1", 2)


def test_every_tables_changelog_is_routed_to_recovery_with_direct_delivery() -> None:
    app = create_app(Settings(web_enabled=False, app_id="crm"))
    assert (
        app.direct.changelogs
        == app.tables.changelog_topics
        == {
            "crm-customers-changelog",
            "crm-contacts-changelog",
        }
    )
    faust_path = create_app(Settings(web_enabled=False, app_id="crm", direct_delivery=False))
    assert not faust_path.direct.routes
