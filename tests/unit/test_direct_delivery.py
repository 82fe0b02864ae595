"""Direct delivery keeps what Faust's agent path promised a handler and the consumer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import current_event

from streams.shell.direct_delivery import ConsumerAcks, DirectDelivery


class FakeConsumer:
    def __init__(self) -> None:
        self.tracked: list[Any] = []
        self.acked: list[Any] = []
        # Where Faust's livelock check reads when a partition last took a message in.
        self.app = SimpleNamespace(monitor=SimpleNamespace(stream_inbound_time={}))

    def track_message(self, message: Any) -> None:
        self.tracked.append(message)

    def ack(self, message: Any) -> bool:
        self.acked.append(message)
        return True


def message(offset: int, partition: int = 3) -> Any:
    return SimpleNamespace(
        topic="crm.events",
        partition=partition,
        tp=("crm.events", partition),
        offset=offset,
        tracked=False,
    )


@pytest.mark.asyncio
async def test_the_handler_sees_its_message_as_the_current_event_and_it_is_tracked() -> None:
    consumer = FakeConsumer()
    direct = DirectDelivery()
    seen: list[tuple[int, int]] = []

    async def handler(msg: Any) -> None:
        # What Faust's RocksDB store reads to pick the partition's database.
        event = current_event()
        assert event is not None
        seen.append((event.message.partition, msg.offset))

    direct.route(["crm.events"], handler)
    first = message(7)
    await direct.deliver(consumer, direct.routes["crm.events"], first)
    await direct.deliver(consumer, direct.routes["crm.events"], first)  # delivered again

    assert seen == [(3, 7), (3, 7)]
    assert consumer.tracked == [first], "tracked once: a stop or revoke waits for its ack"
    assert current_event() is None, "no current event is left behind for unrelated work"


@pytest.mark.asyncio
async def test_a_failing_handler_leaves_no_current_event() -> None:
    consumer = FakeConsumer()
    direct = DirectDelivery()

    async def handler(msg: Any) -> None:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await direct.deliver(consumer, handler, message(1))
    assert current_event() is None


def test_a_topic_has_one_route() -> None:
    direct = DirectDelivery()

    async def handler(msg: Any) -> None:
        return None

    direct.route(["crm.events", "crm.timers"], handler)
    with pytest.raises(ValueError, match=r"crm\.timers"):
        direct.route(["crm.timers"], handler)


@pytest.mark.asyncio
async def test_acks_go_to_the_current_consumer() -> None:
    consumers = [FakeConsumer()]
    acks = ConsumerAcks(lambda: consumers[-1])
    consumers.append(FakeConsumer())  # Faust may replace it before the first ack
    msg = message(5)
    await acks.ack(msg)
    assert consumers[-1].acked == [msg] and consumers[0].acked == []


@pytest.mark.asyncio
async def test_a_changelog_record_goes_to_recovery_untracked() -> None:
    # Nothing acks a changelog record: tracked, it would hold up every revoke and stop.
    consumer = FakeConsumer()
    direct = DirectDelivery()
    taken: list[Any] = []

    async def take(msg: Any) -> None:
        taken.append(msg)

    direct.recover(["crm-customers-changelog"], take)
    record = SimpleNamespace(
        topic="crm-customers-changelog", partition=0, offset=9, tracked=False, tp=None
    )
    await direct.deliver(consumer, direct.routes["crm-customers-changelog"], record)
    assert taken == [record]
    assert consumer.tracked == [] and not record.tracked
    assert consumer.app.monitor.stream_inbound_time == {}, "not a stream's input"
    with pytest.raises(ValueError, match="already has a direct route"):
        direct.recover(["crm-customers-changelog"], take)
