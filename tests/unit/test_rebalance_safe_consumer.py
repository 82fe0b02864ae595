"""The drain loop of streams/shell/rebalance_safe_consumer.py, driven without a broker.

Each test scripts what aiokafka hands out per fetch and what happens meanwhile (a
seek, a rebalance), and checks which offsets reach the streams and which offsets
count as read or acked. Faust's own `getmany` and the consumer thread run as in a
worker; only aiokafka is replaced (`FakeKafka`, and the thread's calls run inline).
The stock Faust loop is run on the same script where it loses input, so the day
upstream fixes it these tests say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from streams.shell.direct_delivery import DirectDelivery
from streams.shell.kafka_consumer import CrmTransport
from streams.shell.rebalance_safe_consumer import ActivePartitions, RebalanceSafeConsumer

EVENTS = TP("events", 0)
CHANGELOG = TP("customers-changelog", 0)
COMMITTED = 2040
Batch = list[int | tuple[TP, int]]
Step = Callable[[Any], Awaitable[None]] | None


class FakeKafka:
    """What the consumer thread uses of aiokafka's consumer. The events partition has a
    committed offset (COMMITTED), the changelog none, as on a broker."""

    _max_poll_records = None

    def __init__(self) -> None:
        self.committed_offsets: dict[TP, int | None] = {EVENTS: COMMITTED, CHANGELOG: None}
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.committed_offsets)

    async def committed(self, tp: TP) -> int | None:
        await asyncio.sleep(0)  # a request to the broker: other tasks run meanwhile
        return self.committed_offsets[tp]

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def seek_to_committed(self) -> dict[TP, int | None]:
        # aiokafka's, for Faust's own consumer thread
        committed = {}
        for tp in self.assignment():
            committed[tp] = offset = await self.committed(tp)
            if offset and offset > 0:
                self.seek(tp, offset)
        return committed

    def highwater(self, tp: TP) -> int:
        return 0

    async def position(self, tp: TP) -> int:
        return 0


def record(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"c", b"{}", None, 1, 2, ())


async def drain(
    consumer_class: type[aiokafka_driver.Consumer],
    script: list[tuple[Step, Batch]],
    on_delivery: Callable[[Any, Any], Awaitable[None]] | None = None,
    read_offset: int | None = None,
    direct: bool = False,
) -> tuple[list[int], Any]:
    """Run the consumer's drain loop over `script`: per fetch, what happens while the
    fetch waits in aiokafka (`step`, given the consumer) and the records it then hands
    out (offsets of EVENTS, or (tp, offset)). `on_delivery(consumer, message)` runs as
    each message is handed to the streams. Returns the EVENTS offsets delivered and
    the consumer (`.changelog`: the changelog offsets delivered). With `direct`, EVENTS
    has a direct route (`direct_delivery`) to a handler doing the same, and CHANGELOG
    a route to it as to recovery."""
    changelog: list[int] = []
    app = faust.App("drain-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    transport = CrmTransport(app.conf.broker_consumer, app)
    delivered: list[int] = []

    async def callback(msg: Any) -> None:
        (changelog if msg.topic == CHANGELOG.topic else delivered).append(msg.offset)
        if on_delivery is not None:
            await on_delivery(consumer, msg)

    async def ignore(*args: Any, **kwargs: Any) -> None:
        return None

    consumer: Any = consumer_class(
        transport,
        callback=callback,
        on_partitions_revoked=ignore,
        on_partitions_assigned=ignore,
    )
    if direct:
        app.direct = DirectDelivery()  # type: ignore[attr-defined]
        app.direct.route([EVENTS.topic], callback)  # type: ignore[attr-defined]
        app.direct.recover([CHANGELOG.topic], callback)  # type: ignore[attr-defined]
        app.flow_control.resume()  # as after the first recovery
    consumer._read_offset[EVENTS] = read_offset
    consumer._active_partitions = {EVENTS, CHANGELOG}
    app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    steps = iter(script)
    thread = consumer._thread
    thread._consumer = consumer.kafka = FakeKafka()

    async def inline(fun: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    async def fetch_records(*args: Any, **kwargs: Any) -> dict[TP, list[Any]]:
        step, offsets = next(steps, (None, []))
        if step is not None:
            await step(consumer)
        if not offsets:
            fetcher._stopped.set()
        records: dict[TP, list[Any]] = {}
        for item in offsets:
            tp, offset = item if isinstance(item, tuple) else (EVENTS, item)
            records.setdefault(tp, []).append(record(tp, offset))
        return records

    thread.call_thread = inline
    thread._fetch_records = fetch_records
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
    consumer.changelog = changelog
    return delivered, consumer


async def seek_to_committed(consumer: Any) -> None:
    await consumer.perform_seek()


async def seek_on_changelog_5(consumer: Any, message: Any) -> None:
    if message.topic == CHANGELOG.topic and message.offset == 5:
        await consumer.perform_seek()


# After recovery Faust resumes the partitions, then seeks them to the committed offset
# (2040). A batch aiokafka handed out before the seek holds records from where the
# last generation stopped reading (2043); the seek lands while the loop hands it over.
# The fetch after the seek returns 2040 on. The changelog, read by recovery
# meanwhile, was not seeked: its records are all good.
BATCH_TAKEN_BEFORE_A_SEEK: list[tuple[Step, Batch]] = [
    (None, [(CHANGELOG, 5), 2043, (CHANGELOG, 6), 2044]),
    (None, [2040, 2041, 2042, 2043, 2044, (CHANGELOG, 7)]),
]


@pytest.mark.asyncio
async def test_a_batch_taken_before_a_seek_is_dropped_and_read_again() -> None:
    delivered, consumer = await drain(
        RebalanceSafeConsumer, BATCH_TAKEN_BEFORE_A_SEEK, on_delivery=seek_on_changelog_5
    )
    assert consumer.kafka.seeks == [(EVENTS, COMMITTED)]
    assert delivered == [2040, 2041, 2042, 2043, 2044]
    assert consumer.changelog == [5, 6, 7]
    assert not consumer._gap.get(EVENTS)
    assert consumer._read_offset[EVENTS] == 2044


@pytest.mark.asyncio
async def test_with_direct_routes_too_a_batch_taken_before_a_seek_is_read_again() -> None:
    tracked: dict[str, set[bool]] = {}

    async def note_tracking(consumer: Any, message: Any) -> None:
        tracked.setdefault(message.topic, set()).add(message.tracked)
        await seek_on_changelog_5(consumer, message)

    delivered, consumer = await drain(
        RebalanceSafeConsumer, BATCH_TAKEN_BEFORE_A_SEEK, on_delivery=note_tracking, direct=True
    )
    assert delivered == [2040, 2041, 2042, 2043, 2044]
    assert consumer.changelog == [5, 6, 7]
    assert consumer._read_offset[EVENTS] == 2044
    # Changelog records are not input: nothing would ack them, so they are not tracked.
    assert tracked == {EVENTS.topic: {True}, CHANGELOG.topic: {False}}


@pytest.mark.asyncio
async def test_faust_loop_counts_the_stale_jump_as_acked_and_drops_the_real_input() -> None:
    delivered, consumer = await drain(
        aiokafka_driver.Consumer, BATCH_TAKEN_BEFORE_A_SEEK, on_delivery=seek_on_changelog_5
    )
    # 2041-2042 recorded as a gap (acked: the commit moves past them) and the
    # records read from the committed offset dropped as already read.
    assert [(i.begin, i.end) for i in consumer._gap[EVENTS]] == [(2041, 2044)]
    assert not {2040, 2041, 2042} & set(delivered)


@pytest.mark.asyncio
async def test_a_batch_taken_after_a_seek_is_delivered() -> None:
    # The loop waits in aiokafka for records (up to a second) while recovery seeks the
    # partition to its committed offset; aiokafka then hands out records fetched from
    # there. They are the input from the committed offset on, not stale: aiokafka's
    # position is past them, so nothing would read them again (the broker-stall loss,
    # where a worker skipped its whole backlog this way).
    delivered, consumer = await drain(
        RebalanceSafeConsumer,
        [(seek_to_committed, [2040, 2041, 2042, (CHANGELOG, 5)]), (None, [2043, 2044])],
    )
    assert consumer.kafka.seeks == [(EVENTS, COMMITTED)]
    assert delivered == [2040, 2041, 2042, 2043, 2044]
    assert consumer.changelog == [5]
    assert not consumer._gap.get(EVENTS)
    assert consumer._read_offset[EVENTS] == 2044


async def recovery_seeks_changelog_back_to_6(consumer: Any, message: Any) -> None:
    if message.topic == CHANGELOG.topic and message.offset == 9 and not consumer.kafka.seeks:
        await consumer.seek_wait({CHANGELOG: 6})


# Recovery seeks a changelog partition back to the last offset it applied (6) while
# the loop hands over a batch aiokafka took from further on (9-11). Handed over,
# 10-11 would be applied (above 6) and 7-9, read again after the seek, skipped as
# below them: three records of the table lost.
CHANGELOG_SEEKED_BACK: list[tuple[Step, Batch]] = [
    (None, [(CHANGELOG, 9), (CHANGELOG, 10), (CHANGELOG, 11)]),
    (None, [(CHANGELOG, o) for o in range(6, 12)]),
]


@pytest.mark.asyncio
async def test_changelog_records_taken_before_recoverys_seek_are_read_again_in_order() -> None:
    _, consumer = await drain(
        RebalanceSafeConsumer, CHANGELOG_SEEKED_BACK, on_delivery=recovery_seeks_changelog_back_to_6
    )
    assert consumer.kafka.seeks == [(CHANGELOG, 6)]
    # 9 was handed over before the seek; after it, only what aiokafka reads from 6 on.
    assert consumer.changelog == [9, 6, 7, 8, 9, 10, 11]


@pytest.mark.asyncio
async def test_faust_loop_hands_over_changelog_records_from_before_the_seek() -> None:
    _, consumer = await drain(
        aiokafka_driver.Consumer,
        CHANGELOG_SEEKED_BACK,
        on_delivery=recovery_seeks_changelog_back_to_6,
    )
    assert consumer.changelog[:3] == [9, 10, 11]


def rebalance_at(offset: int) -> Callable[[Any, Any], Awaitable[None]]:
    async def on_delivery(consumer: Any, message: Any) -> None:
        if message.offset == offset:
            consumer.app.consumer_generation_id += 1
            # On revoke Faust forgets the partition's read offset (consumer.py).
            consumer._read_offset.pop(EVENTS, None)

    return on_delivery


@pytest.mark.asyncio
async def test_a_message_whose_hand_over_a_rebalance_interrupted_is_not_marked_read() -> None:
    delivered, consumer = await drain(
        RebalanceSafeConsumer,
        [(None, [10, 11, 12]), (None, [])],
        on_delivery=rebalance_at(11),
        read_offset=9,
    )
    # The rest of the batch is left for the next generation, from the committed offset.
    assert delivered == [10, 11]
    assert consumer._read_offset[EVENTS] is None


@pytest.mark.asyncio
async def test_a_direct_delivery_that_waits_through_a_rebalance_finishes_its_message() -> None:
    finished: list[int] = []
    held: list[Any] = []  # as the changelog holds them until a flush acks them

    async def rebalance_while_sending(consumer: Any, message: Any) -> None:
        held.append(message)
        if message.offset == 11:
            consumer.stop_flow()  # the rebalance begins while the handler waits on a send
            asyncio.get_running_loop().call_soon(consumer.resume_flow)  # and ends
            consumer.app.consumer_generation_id += 1
            consumer._read_offset.pop(EVENTS, None)
            await asyncio.sleep(0.01)
        finished.append(message.offset)

    delivered, consumer = await drain(
        RebalanceSafeConsumer,
        [(None, [10, 11, 12]), (None, [])],
        on_delivery=rebalance_while_sending,
        read_offset=9,
        direct=True,
    )
    # Not cancelled half-way (its state changed, its outputs unsent): finished, still
    # tracked for the flush to ack, and not marked read; 12 is not started.
    assert delivered == [10, 11] and finished == [10, 11]
    assert {m.offset for m in consumer._unacked_messages} == {10, 11}
    assert all(m in consumer._unacked_messages for m in held)
    assert consumer._read_offset[EVENTS] is None


@pytest.mark.asyncio
async def test_a_direct_delivery_waits_for_the_apps_flow_control_like_the_conductor() -> None:
    handled_while_suspended: list[int] = []

    async def suspend_after_10(consumer: Any, message: Any) -> None:
        flow = consumer.app.flow_control
        if not flow.is_active():
            handled_while_suspended.append(message.offset)
        if message.offset == 10:
            flow.suspend()
            asyncio.get_running_loop().call_soon(flow.resume)

    delivered, consumer = await drain(
        RebalanceSafeConsumer,
        [(None, [10, 11, 12]), (None, [])],
        on_delivery=suspend_after_10,
        read_offset=9,
        direct=True,
    )
    assert delivered == [10, 11, 12] and handled_while_suspended == []
    assert consumer._read_offset[EVENTS] == 12


@pytest.mark.asyncio
async def test_faust_loop_marks_it_read_for_the_next_generation() -> None:
    delivered, consumer = await drain(
        aiokafka_driver.Consumer,
        [(None, [10, 11, 12]), (None, [])],
        on_delivery=rebalance_at(11),
        read_offset=9,
    )
    # Read offset 11 survives the revoke: the next generation drops re-read input.
    assert delivered == [10, 11]
    assert consumer._read_offset[EVENTS] == 11


@pytest.mark.asyncio
async def test_recovery_never_seeks_a_changelog_to_a_negative_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeks: list[dict[TP, int]] = []

    async def record(consumer: Any, partitions: dict[TP, int]) -> None:
        seeks.append(dict(partitions))

    monkeypatch.setattr(aiokafka_driver.Consumer, "seek_wait", record)
    _, consumer = await drain(RebalanceSafeConsumer, [])
    standby = TP("contacts-changelog", 0)
    await consumer.seek_wait({CHANGELOG: -2, standby: None, EVENTS: 5})
    assert seeks == [{CHANGELOG: 0, standby: 0, EVENTS: 5}]


class PartitionState:
    paused = False

    def __init__(self) -> None:
        self.position = 0

    def consumed_to(self, position: int) -> None:
        self.position = position


class Fetched:
    """aiokafka's PartitionRecords for records 0-2 of a partition."""

    def __init__(self, tp: TP) -> None:
        self.next_fetch_offset = 0
        self._records = iter([record(tp, offset) for offset in range(3)])

    def __iter__(self) -> Fetched:
        return self

    def __next__(self) -> Any:
        item = next(self._records)
        self.next_fetch_offset = item.offset + 1
        return item


def fetcher_holding(*tps: TP) -> Any:
    """aiokafka's fetcher holding records 0-2 of each of `tps`."""
    states = {tp: PartitionState() for tp in tps}
    assignment = SimpleNamespace(active=True, state_value=states.__getitem__)
    return SimpleNamespace(
        _subscriptions=SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda tp: True),
        _records={
            tp: FetchResult(tp, assignment=assignment, partition_records=Fetched(tp), backoff=0)
            for tp in tps
        },
        _notify=lambda future: None,
        _wait_consume_future=None,
    )


async def hand_out(partitions: Any, fetcher: Any = None) -> dict[Any, list[Any]]:
    """What aiokafka's fetcher hands out when it holds records of EVENTS (or what
    `fetcher` holds), for `partitions` as Faust passes them."""
    fetcher = fetcher_holding(EVENTS) if fetcher is None else fetcher
    return await Fetcher.fetched_records(fetcher, partitions, timeout=0)


@pytest.mark.asyncio
async def test_no_record_of_a_paused_partition_is_handed_out_while_none_is_active() -> None:
    # During recovery Faust's set of active partitions is empty for a while (stream
    # partitions paused, standby changelogs not yet resumed). aiokafka takes an empty
    # set for "every partition"; Faust's getmany then drops the records as not active,
    # after aiokafka moved past them.
    assert [r.offset for r in (await hand_out(set()))[EVENTS]] == [0, 1, 2]
    assert await hand_out(ActivePartitions(set())) == {}
    assert [r.offset for r in (await hand_out(ActivePartitions({EVENTS})))[EVENTS]] == [0, 1, 2]


@pytest.mark.asyncio
async def test_stream_records_stay_in_aiokafka_until_the_rebalance_ends() -> None:
    # Recovery resumes the stream partitions and seeks them, then clears the agents'
    # queues, then ends the rebalance. Records handed out in between were counted as
    # read and then cleared from the queues: the chaos suite's 1-3-1 scaling lost
    # the candidates of a whole batch that way (committed offset stuck below them).
    _, consumer = await drain(RebalanceSafeConsumer, [])
    table = consumer.app.Table("customers", partitions=1)
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    active = ActivePartitions({EVENTS, changelog}, consumer._withheld)
    fetcher = fetcher_holding(EVENTS, changelog)

    consumer.app.rebalancing = True
    during = await hand_out(active, fetcher)
    consumer.app.rebalancing = False
    after = await hand_out(active, fetcher)

    assert {tp: [r.offset for r in rs] for tp, rs in during.items()} == {changelog: [0, 1, 2]}
    assert {tp: [r.offset for r in rs] for tp, rs in after.items()} == {EVENTS: [0, 1, 2]}


def livelock_report(consumer: Any, seconds_later: float) -> list[str]:
    """What Faust's livelock check logs for EVENTS `seconds_later` than now, with
    aiokafka fetching it and lag on it (highwater past the position)."""
    now = monotonic()
    # aiokafka fetched it just now, at the time of the check.
    fetching = SimpleNamespace(
        timestamp=(now + seconds_later) * 1000, highwater=COMMITTED + 10, position=COMMITTED
    )
    assignment = SimpleNamespace(active=True, state_value=lambda tp: fetching)
    thread = consumer._thread
    thread._consumer._fetcher = SimpleNamespace(
        _subscriptions=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    )
    logged: list[str] = []
    thread.log = SimpleNamespace(error=lambda msg, *args: logged.append(msg % args))
    thread.time_started = now - 3600  # started an hour ago: every timeout has passed
    thread.tp_last_committed_at[EVENTS] = now  # and commits, as acked events make it
    thread.verify_event_path(now + seconds_later, EVENTS)
    return logged


@pytest.mark.asyncio
async def test_a_worker_taking_messages_directly_is_not_reported_as_never_started() -> None:
    # Direct delivery bypasses the stream that tells Faust's monitor when a partition
    # last took an event in: a busy worker logged "Stream has not started processing"
    # as an ERROR every few seconds from five minutes after its start.
    _, consumer = await drain(RebalanceSafeConsumer, [(None, [2040, 2041])], direct=True)
    assert livelock_report(consumer, seconds_later=1) == []


@pytest.mark.asyncio
async def test_a_handler_that_stopped_taking_messages_is_still_reported() -> None:
    _, consumer = await drain(RebalanceSafeConsumer, [(None, [2040, 2041])], direct=True)
    timeout = consumer.app.conf.stream_processing_timeout
    (report,) = livelock_report(consumer, seconds_later=timeout + 1)
    assert report.startswith("Stream stopped processing, or is slow for")
