"""The order a changelog flush keeps: outputs on the broker, then state, then acks.

A changelog record says "these events were processed" (their event ids, the action
ids decided). If it reached the broker before the candidates or decisions those
events produced, a worker killed in between leaves a state that dedupes the
replayed input while its output was never published: a decision lost for good.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.shell.coalescing_changelog import (
    CoalescingChangelog,
    PartitionLost,
    WriteFailed,
    flush_as_one,
)


class Log:
    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()


class FakeProducer:
    """Outputs go straight to the client, like `await topic.send()` in an agent; the
    broker acknowledges them once the log's gate is open."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.fail_next = False

    def send(self, output: str) -> asyncio.Future[None]:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            sent.set_exception(ConnectionError("broker refused the batch"))
        else:
            asyncio.get_running_loop().create_task(self._acknowledge(output, sent))
        return sent

    async def _acknowledge(self, output: str, sent: asyncio.Future[None]) -> None:
        await self.log.gate.wait()
        self.log.entries.append(("output acked", output))
        sent.set_result(None)


class FakeChangelogProducer:
    """The producer behind `Publisher`: records are acknowledged at once unless
    `deliver_at_once` is off."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.buffered: list[tuple[Any, asyncio.Future[None]]] = []
        self.deliver_at_once = True

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        partition: int,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[None]:
        assert topic.endswith("-changelog")
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffered.append(((key, orjson.loads(value)), sent))
        if self.deliver_at_once:
            self.deliver()
        return sent

    def deliver(self) -> None:
        buffered, self.buffered = self.buffered, []
        for record, sent in buffered:
            self.log.entries.append(("changelog", record))
            sent.set_result(None)


class FakeApp:
    def __init__(self, log: Log) -> None:
        self.producer = FakeProducer(log)
        self.changelog_producer = FakeChangelogProducer(log)

    async def maybe_start_producer(self) -> FakeChangelogProducer:
        return self.changelog_producer


class FakeTable:
    name = "customers"
    key_serializer = "raw"
    value_serializer = "json"

    def __init__(self, log: Log) -> None:
        self.log = log
        self.data: dict[bytes, Any] = {}
        self.app = FakeApp(log)
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-customers-changelog")

    def _on_changelog_sent(self, fut: Any) -> None:
        pass


FAILURES: list[WriteFailed] = []
"""Where a write failure goes in these tests (the default ends the process)."""


class FakeStream:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def ack(self, event: Any) -> None:
        self.log.entries.append(("ack", event.message.offset))


def event(offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset))


def decide(
    table: FakeTable,
    changelog: CoalescingChangelog,
    stream: FakeStream,
    offset: int,
    ids: list[str],
) -> None:
    """What an agent does for one event: state changed, output sent, event held."""
    changelog.put(0, b"c-1", {"decided": ids})
    changelog.track(table.app.producer.send(f"decision {ids[-1]}"))
    changelog.hold(stream, event(offset), 0)


A1_IN_ORDER = [
    ("output acked", "decision a-1"),
    ("changelog", (b"c-1", {"decided": ["a-1"]})),
    ("ack", 7),
]
"""Event 7 deciding a-1, flushed as it must be: output, then state, then input."""


def nothing_held() -> tuple[Log, FakeTable, CoalescingChangelog, FakeStream]:
    log = Log()
    table = FakeTable(log)
    changelog = CoalescingChangelog(table, 100, on_write_failed=FAILURES.append)
    return log, table, changelog, FakeStream(log)


def one_decision_held() -> tuple[Log, FakeTable, CoalescingChangelog, FakeStream]:
    """Event 7 decided a-1: its decision sent (not acked yet), the state changed, the
    event held."""
    log, table, changelog, stream = nothing_held()
    decide(table, changelog, stream, 7, ["a-1"])
    return log, table, changelog, stream


async def let_the_flush_run() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_outputs_are_acked_before_the_state_and_the_state_before_the_input() -> None:
    log, _, changelog, _ = one_decision_held()
    await changelog.flush()
    assert log.entries == A1_IN_ORDER


@pytest.mark.asyncio
async def test_state_changed_while_a_flush_waits_for_outputs_is_left_for_the_next() -> None:
    log, table, changelog, stream = one_decision_held()
    log.gate.clear()
    flushing = asyncio.create_task(changelog.flush())
    await asyncio.sleep(0)
    # The agent goes on while the flush waits: a new decision, not yet on the broker.
    decide(table, changelog, stream, 8, ["a-1", "a-2"])
    log.gate.set()
    await flushing
    assert log.entries[-2:] == [("changelog", (b"c-1", {"decided": ["a-1"]})), ("ack", 7)]
    await changelog.flush()
    assert log.entries[-2:] == [("changelog", (b"c-1", {"decided": ["a-1", "a-2"]})), ("ack", 8)]
    assert log.entries.index(("output acked", "decision a-2")) < len(log.entries) - 2


@pytest.mark.asyncio
async def test_input_is_acked_only_once_its_state_record_is_on_the_broker() -> None:
    # Faust's own flush of its producer buffer gives up after 0.1 s without progress;
    # an ack (then a commit) before the record is written would let the partition's
    # next owner start from a state without these events.
    log, table, changelog, _ = one_decision_held()
    table.app.changelog_producer.deliver_at_once = False
    flushing = asyncio.create_task(changelog.flush())
    await let_the_flush_run()
    assert ("ack", 7) not in log.entries
    table.app.changelog_producer.deliver()
    await flushing
    assert log.entries[-2:] == [("changelog", (b"c-1", {"decided": ["a-1"]})), ("ack", 7)]


@pytest.mark.asyncio
async def test_a_failed_output_stops_the_worker_with_nothing_written_or_acked() -> None:
    log = Log()
    table = FakeTable(log)
    stopped: list[WriteFailed] = []
    changelog = CoalescingChangelog(table, 100, on_write_failed=stopped.append)
    stream = FakeStream(log)
    table.app.producer.fail_next = True
    decide(table, changelog, stream, 7, ["a-1"])
    with pytest.raises(WriteFailed):
        await changelog.flush()
    assert log.entries == []  # no state record, no ack: event 7 is read again
    assert len(stopped) == 1 and isinstance(stopped[0].__cause__, ConnectionError)


@pytest.mark.asyncio
async def test_a_flush_takes_no_half_handled_event() -> None:
    # The timer's flush can come while the agent awaits a send mid-event: the state
    # already says a-1 was decided, the decision is not sent yet. Written then, the
    # state would reach the broker before the decision (lost on a crash in between).
    log, table, changelog, stream = nothing_held()
    async with changelog.step:
        changelog.put(0, b"c-1", {"decided": ["a-1"]})
        flushing = asyncio.create_task(changelog.flush())
        await let_the_flush_run()
        changelog.track(table.app.producer.send("decision a-1"))
        changelog.hold(stream, event(7), 0)
    await flushing
    assert log.entries == A1_IN_ORDER


@pytest.mark.asyncio
async def test_a_flush_cancelled_before_its_acks_leaves_the_events_to_the_next() -> None:
    log, _, changelog, _ = one_decision_held()
    log.gate.clear()  # the decision is not acknowledged yet
    flushing = asyncio.create_task(changelog.flush())
    await let_the_flush_run()
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert changelog.pending_events == 1
    log.gate.set()
    await changelog.flush()
    assert log.entries == A1_IN_ORDER
    assert not FAILURES  # the send itself was not cancelled with the flush


@pytest.mark.asyncio
async def test_a_revoked_partitions_state_is_not_written_until_it_is_back() -> None:
    # Its state in this worker's memory may be older than the new owner's: a record of
    # it would overwrite theirs on the changelog.
    log, table, changelog, _ = nothing_held()
    changelog.drop_partitions({0})
    with pytest.raises(PartitionLost):
        changelog.put(0, b"c-1", {"decided": ["stale"]})
    changelog.put(1, b"c-2", {"decided": ["b-1"]})  # another partition, still owned
    await changelog.flush()
    assert table.data == {b"c-2": {"decided": ["b-1"]}}
    assert log.entries == [("changelog", (b"c-2", {"decided": ["b-1"]}))]

    changelog.regain({0})
    changelog.put(0, b"c-1", {"decided": ["a-2"]})
    await changelog.flush()
    assert log.entries[-1] == ("changelog", (b"c-1", {"decided": ["a-2"]}))


@pytest.mark.asyncio
async def test_a_flush_cancelled_across_a_revocation_gives_back_nothing_lost() -> None:
    log, _, changelog, _ = one_decision_held()
    log.gate.clear()
    flushing = asyncio.create_task(changelog.flush())
    await let_the_flush_run()
    changelog.drop_partitions({0})  # revoked while the flush waited for the broker
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    log.gate.set()
    assert changelog.pending_events == 0
    await changelog.flush()
    assert [entry for entry in log.entries if entry[0] != "output acked"] == []


def journey_and_contacts() -> tuple[Log, FakeTable, CoalescingChangelog, CoalescingChangelog]:
    """A journey step that decided its candidate in place: the decision sent, the
    contact history and the customer changed, the event held by the journey."""
    log = Log()
    customers_table = FakeTable(log)
    contacts_table = FakeTable(log)
    contacts_table.name = "contacts"
    customers = CoalescingChangelog(customers_table, 100, on_write_failed=FAILURES.append)
    contacts = CoalescingChangelog(contacts_table, 100, on_write_failed=FAILURES.append)
    flush_as_one(contacts, customers)
    customers.put(0, b"c-1", {"seen": ["e-7"]})
    contacts.put(0, b"c-1", {"decided": ["a-1"]})
    contacts.track(contacts_table.app.producer.send("decision a-1"))
    customers.hold(FakeStream(log), event(7), 0)
    return log, contacts_table, contacts, customers


@pytest.mark.asyncio
async def test_tables_flushed_as_one_write_the_history_before_the_customer_and_ack_last() -> None:
    log, _, _, customers = journey_and_contacts()
    await customers.flush()  # the journey's flush flushes the contact history too
    assert log.entries == [
        ("output acked", "decision a-1"),
        ("changelog", (b"c-1", {"decided": ["a-1"]})),
        ("changelog", (b"c-1", {"seen": ["e-7"]})),
        ("ack", 7),
    ]


@pytest.mark.asyncio
async def test_the_customer_is_not_written_before_the_history_is_on_the_broker() -> None:
    # A customer record saying "e-7 seen" without the history that e-7 decided a-1:
    # after a crash e-7 is deduped on replay and a-1 (a deferral, a cap count) is lost.
    log, contacts_table, contacts, customers = journey_and_contacts()
    contacts_table.app.changelog_producer.deliver_at_once = False
    flushing = asyncio.create_task(contacts.flush())
    await let_the_flush_run()
    assert ("changelog", (b"c-1", {"seen": ["e-7"]})) not in log.entries
    assert ("ack", 7) not in log.entries
    contacts_table.app.changelog_producer.deliver()
    await flushing
    assert log.entries[-2:] == [("changelog", (b"c-1", {"seen": ["e-7"]})), ("ack", 7)]
    assert customers.pending_events == 0


@pytest.mark.asyncio
async def test_tables_flushed_as_one_share_the_step_between_events() -> None:
    _, _, contacts, customers = journey_and_contacts()
    async with customers.step:
        assert contacts.step.locked(), "a flush of either waits for the other's event"


class Decoder:
    """Counts decodes: the point of keeping bytes is decoding each customer once."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: bytes) -> Any:
        self.calls += 1
        value = orjson.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not a state")
        return value


class BytesStore(dict[bytes, Any]):
    """A store that keeps values encoded (RocksDB): what it hands out is bytes."""

    def __setitem__(self, key: bytes, value: Any) -> None:
        super().__setitem__(key, value if isinstance(value, bytes) else orjson.dumps(value))


def test_a_recovered_state_is_decoded_once_when_first_read_and_kept() -> None:
    log = Log()
    table = FakeTable(log)
    decode = Decoder()
    changelog = CoalescingChangelog(table, 100, on_write_failed=FAILURES.append, decode=decode)
    table.data[b"c-1"] = b'{"decided": ["a-1"]}'  # as recovery left it
    assert changelog.get(b"c-1") == {"decided": ["a-1"]}
    assert changelog.get(b"c-1") == {"decided": ["a-1"]}
    assert decode.calls == 1
    assert table.data[b"c-1"] == {"decided": ["a-1"]}
    assert changelog.get(b"c-2") is None


class DiskTable(FakeTable):
    """A table on Faust's RocksDB store: bytes in, bytes out; the changelog offsets a
    restart resumes from are recorded as `on_sent` is called."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.data = BytesStore()
        self.persisted: list[dict[bytes, Any]] = []
        """What the store held each time an offset was recorded."""

    def _on_changelog_sent(self, fut: Any) -> None:
        assert fut.done()
        self.persisted.append(dict(self.data))


def on_disk(log: Log, decode: Decoder | None = None) -> tuple[DiskTable, CoalescingChangelog]:
    table = DiskTable(log)
    changelog = CoalescingChangelog(
        table, 100, on_write_failed=FAILURES.append, decode=decode or Decoder(), keep_decoded=False
    )
    return table, changelog


def one_decision_held_on_disk() -> tuple[Log, DiskTable, CoalescingChangelog, FakeStream]:
    """As `one_decision_held`, on a store on disk."""
    log = Log()
    table, changelog = on_disk(log)
    stream = FakeStream(log)
    decide(table, changelog, stream, 7, ["a-1"])
    return log, table, changelog, stream


@pytest.mark.asyncio
async def test_a_store_of_bytes_decodes_on_each_read_and_flushes_its_bytes_as_they_are() -> None:
    log = Log()
    decode = Decoder()
    table, changelog = on_disk(log, decode)
    stream = FakeStream(log)
    decide(table, changelog, stream, 7, ["a-1"])
    assert changelog.get(b"c-1") == {"decided": ["a-1"]}  # the live value, not decoded
    assert decode.calls == 0
    assert await changelog.flush() == 1
    assert log.entries == A1_IN_ORDER
    assert changelog.get(b"c-1") == {"decided": ["a-1"]}
    assert changelog.get(b"c-1") == {"decided": ["a-1"]}
    assert decode.calls == 2  # once flushed, read from the store, decoded on each read


@pytest.mark.asyncio
async def test_a_store_on_disk_takes_a_state_only_once_the_changelog_has_it() -> None:
    # On disk the store outlives a kill. Ahead of the changelog, it would say "event 7
    # seen" to the restarted worker, which then drops the re-read event 7 as a duplicate
    # although its decision never left the producer's buffer.
    log, table, changelog, _ = one_decision_held_on_disk()
    assert table.data == {}
    table.app.changelog_producer.deliver_at_once = False
    flushing = asyncio.create_task(changelog.flush())
    await let_the_flush_run()
    assert table.data == {}, "the changelog record is not acknowledged yet"
    table.app.changelog_producer.deliver()
    await flushing
    assert table.data == {b"c-1": b'{"decided":["a-1"]}'}
    # The offsets a restart resumes recovery from, only once the store has the records.
    assert table.persisted == [{b"c-1": b'{"decided":["a-1"]}'}]
    assert log.entries == A1_IN_ORDER


@pytest.mark.asyncio
async def test_a_state_changed_during_a_flush_stays_the_latest_on_a_store_on_disk() -> None:
    log, table, changelog, stream = one_decision_held_on_disk()
    log.gate.clear()
    flushing = asyncio.create_task(changelog.flush())
    await asyncio.sleep(0)
    decide(table, changelog, stream, 8, ["a-1", "a-2"])  # while the flush waits
    log.gate.set()
    await flushing
    assert table.data == {b"c-1": b'{"decided":["a-1"]}'}  # what the changelog has
    assert changelog.get(b"c-1") == {"decided": ["a-1", "a-2"]}  # what the agent sees
    await changelog.flush()
    assert table.data == {b"c-1": b'{"decided":["a-1","a-2"]}'}


@pytest.mark.asyncio
async def test_a_revoked_partitions_unflushed_state_never_reaches_the_store_on_disk() -> None:
    _, table, changelog, _ = one_decision_held_on_disk()
    changelog.drop_partitions({0})
    assert changelog.get(b"c-1") is None
    await changelog.flush()
    assert table.data == {}


def test_an_unreadable_stored_state_is_dropped_counted_and_not_read_again() -> None:
    from streams.shell import metrics

    log = Log()
    table = FakeTable(log)
    decode = Decoder()
    changelog = CoalescingChangelog(table, 100, on_write_failed=FAILURES.append, decode=decode)
    counter = metrics.STATE_UNREADABLE.labels("customers")
    before = counter._value.get()
    table.data[b"c-1"] = b"[1, 2]"
    assert changelog.get(b"c-1") is None
    assert b"c-1" not in table.data
    assert changelog.get(b"c-1") is None
    assert decode.calls == 1
    assert counter._value.get() == before + 1


class PartitionedStore(BytesStore):
    """Faust's RocksDB store: a database per partition. A write goes to the current
    event's partition, and there must be one (`assert event is not None`); inside an
    event a read looks only in that event's partition, outside any event in all."""

    def __init__(self) -> None:
        super().__init__()
        self.filed: dict[bytes, int] = {}

    def __setitem__(self, key: bytes, value: Any) -> None:
        from faust.streams import current_event

        event = current_event()
        assert event is not None
        self.filed[key] = event.message.partition
        super().__setitem__(key, value)

    def _elsewhere(self, key: bytes) -> bool:
        from faust.streams import current_event

        event = current_event()
        return event is not None and self.filed.get(key) != event.message.partition

    def get(self, key: bytes, default: Any = None) -> Any:
        return default if self._elsewhere(key) else super().get(key, default)

    def __contains__(self, key: object) -> bool:
        assert isinstance(key, bytes)
        return not self._elsewhere(key) and super().__contains__(key)


def on_partitioned_store(log: Log) -> tuple[FakeTable, CoalescingChangelog]:
    table = FakeTable(log)
    table.data = PartitionedStore()
    changelog = CoalescingChangelog(
        table, 100, on_write_failed=FAILURES.append, decode=Decoder(), keep_decoded=False
    )
    return table, changelog


@pytest.mark.asyncio
async def test_a_flush_run_inside_an_event_still_writes_every_partitions_state() -> None:
    from faust.streams import _current_event

    log = Log()
    table, changelog = on_partitioned_store(log)
    changelog.put(0, b"c-1", {"decided": ["a-1"]})
    changelog.put(3, b"c-2", {"decided": ["b-1"]})
    # The agent flushes when the buffer is full, inside the event it just took (partition 3).
    token = _current_event.set(lambda: SimpleNamespace(message=SimpleNamespace(partition=3)))
    try:
        assert await changelog.flush() == 2
    finally:
        _current_event.reset(token)
    written = dict(record for kind, record in log.entries if kind == "changelog")
    assert written == {b"c-1": {"decided": ["a-1"]}, b"c-2": {"decided": ["b-1"]}}
    assert table.data.filed == {b"c-1": 0, b"c-2": 3}


@pytest.mark.asyncio
async def test_a_store_on_disk_counts_each_customer_once_without_a_key_map() -> None:
    # The customers gauge of a RocksDB worker: counted as new customers are put, as a
    # walk of every key would stall the worker, and with no per-key map in memory.
    _, changelog = on_partitioned_store(Log())
    changelog.keys_in = {0: 0, 1: 0}
    changelog.put(0, b"c-1", {"decided": ["a-1"]})
    changelog.put(0, b"c-1", {"decided": ["a-2"]})  # not flushed yet
    changelog.put(1, b"c-2", {"decided": ["b-1"]})
    await changelog.flush()
    changelog.put(0, b"c-1", {"decided": ["a-3"]})  # on disk now
    changelog.put(0, b"c-3", {"decided": ["c-1"]})
    assert changelog.keys_in == {0: 2, 1: 1}
    assert changelog.partition_of == {}


@pytest.mark.asyncio
async def test_a_write_outside_any_event_is_filed_under_its_own_partition() -> None:
    # The timer scanner fires timers and releases deferrals between two events.
    from faust.streams import current_event

    table, changelog = on_partitioned_store(Log())
    changelog.put(5, b"c-1", {"decided": ["a-1"]})
    await changelog.flush()
    assert table.data.filed == {b"c-1": 5}
    assert current_event() is None
    assert changelog.get(b"c-1") == {"decided": ["a-1"]}


@pytest.mark.asyncio
async def test_state_changed_outside_any_event_is_pending_for_a_flush() -> None:
    # The timer scanner writes without holding an event: with no input, its states
    # would wait for the next event (in memory, on a store on disk) if only held
    # events asked for a flush.
    log = Log()
    table, changelog = on_disk(log)
    assert not changelog.pending
    changelog.put(2, b"c-1", {"fired": ["nudge"]})
    assert changelog.pending and changelog.pending_events == 0
    assert await changelog.flush() == 1
    assert table.data == {b"c-1": b'{"fired":["nudge"]}'}
    assert not changelog.pending


@pytest.mark.asyncio
async def test_a_flush_stores_nothing_of_a_partition_revoked_and_assigned_back_meanwhile() -> None:
    # Assigned back, the partition was recovered from the changelog again: the flush's
    # older snapshot must not go over it, nor move the store's offset.
    log, table, changelog, _ = one_decision_held_on_disk()
    log.gate.clear()
    flushing = asyncio.create_task(changelog.flush())
    await asyncio.sleep(0)
    changelog.drop_partitions({0})
    changelog.regain({0})
    log.gate.set()
    await flushing
    assert table.data == {}
    assert table.persisted == []
