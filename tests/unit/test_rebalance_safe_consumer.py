"""The drain loop of streams/shell/rebalance_safe_consumer.py, driven without a broker.

Each test scripts what `getmany` returns and what happens meanwhile (a seek, a
rebalance), and checks which offsets reach the streams and which offsets count as
read or acked. The stock Faust loop is run on the same script where it loses input,
so the day upstream fixes it these tests say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from streams.shell.kafka_consumer import CrmTransport
from streams.shell.rebalance_safe_consumer import RebalanceSafeConsumer

EVENTS = TP("events", 0)
CHANGELOG = TP("customers-changelog", 0)
Batch = list[int | tuple[TP, int]]
Step = Callable[[Any], Awaitable[None]] | None


def message(tp: TP, offset: int) -> Any:
    return SimpleNamespace(
        topic=tp.topic, partition=tp.partition, offset=offset, key=b"c", value=b"{}"
    )


async def drain(
    consumer_class: type[aiokafka_driver.Consumer],
    script: list[tuple[Step, Batch]],
    on_delivery: Callable[[Any, int], None] = lambda consumer, offset: None,
    read_offset: int | None = None,
) -> tuple[list[int], Any]:
    """Run the consumer's drain loop over `script`: per fetch, what happens while the
    fetch is in flight (`step`, given the consumer) and the offsets it returns (of
    EVENTS, or (tp, offset)). Returns the EVENTS offsets delivered and the consumer
    (`.changelog`: the changelog offsets delivered)."""
    changelog: list[int] = []
    app = faust.App("drain-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    transport = CrmTransport(app.conf.broker_consumer, app)
    delivered: list[int] = []

    async def callback(msg: Any) -> None:
        if msg.topic == CHANGELOG.topic:
            changelog.append(msg.offset)
            return
        delivered.append(msg.offset)
        on_delivery(consumer, msg.offset)

    async def ignore(*args: Any, **kwargs: Any) -> None:
        return None

    consumer: Any = consumer_class(
        transport,
        callback=callback,
        on_partitions_revoked=ignore,
        on_partitions_assigned=ignore,
    )
    consumer._read_offset[EVENTS] = read_offset
    app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    steps = iter(script)

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        step, offsets = next(steps, (None, []))
        if step is not None:
            await step(consumer)
        if not offsets:
            fetcher._stopped.set()
        for record in offsets:
            tp, offset = record if isinstance(record, tuple) else (EVENTS, record)
            yield tp, message(tp, offset)

    consumer.getmany = getmany
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
    consumer.changelog = changelog
    return delivered, consumer


async def seek_to_committed(consumer: Any) -> None:
    """What Faust's `perform_seek` does to the consumer's own bookkeeping: the read
    offset becomes the committed offset (2040); the broker position moves with it."""
    consumer._read_offset[EVENTS] = 2040
    consumer._committed_offset[EVENTS] = 2040


@pytest.fixture
def committed_2040(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka_driver.Consumer, "perform_seek", seek_to_committed)


# After recovery Faust resumes the partitions, then seeks them to the committed offset
# (2040); a fetch in flight meanwhile returns records from where the last generation
# stopped reading (2043). The fetch after the seek returns 2040 on. The changelog,
# read by recovery meanwhile, was not seeked: its records are all good.
STALE_FETCH_ACROSS_SEEK: list[tuple[Step, Batch]] = [
    (lambda consumer: consumer.perform_seek(), [2043, (CHANGELOG, 5), 2044, (CHANGELOG, 6)]),
    (None, [2040, 2041, 2042, 2043, 2044, (CHANGELOG, 7)]),
]


@pytest.mark.asyncio
@pytest.mark.usefixtures("committed_2040")
async def test_a_batch_fetched_across_a_seek_is_dropped_and_read_again() -> None:
    delivered, consumer = await drain(RebalanceSafeConsumer, STALE_FETCH_ACROSS_SEEK)
    assert delivered == [2040, 2041, 2042, 2043, 2044]
    assert consumer.changelog == [5, 6, 7]
    assert not consumer._gap.get(EVENTS)
    assert consumer._read_offset[EVENTS] == 2044


@pytest.mark.asyncio
@pytest.mark.usefixtures("committed_2040")
async def test_faust_loop_counts_the_stale_jump_as_acked_and_drops_the_real_input() -> None:
    delivered, consumer = await drain(aiokafka_driver.Consumer, STALE_FETCH_ACROSS_SEEK)
    # 2041-2042 recorded as a gap (acked: the commit moves past them) and the
    # records read from the committed offset dropped as already read.
    assert [(i.begin, i.end) for i in consumer._gap[EVENTS]] == [(2041, 2044)]
    assert not {2040, 2041, 2042} & set(delivered)


def rebalance_at(offset: int) -> Callable[[Any, int], None]:
    def on_delivery(consumer: Any, delivered: int) -> None:
        if delivered == offset:
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
async def test_faust_loop_marks_it_read_for_the_next_generation() -> None:
    delivered, consumer = await drain(
        aiokafka_driver.Consumer,
        [(None, [10, 11, 12]), (None, [])],
        on_delivery=rebalance_at(11),
        read_offset=9,
    )
    # Read offsets 11 and 12 survive the revoke: the next generation drops re-read input.
    assert delivered == [10, 11, 12]
    assert consumer._read_offset[EVENTS] == 12


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
