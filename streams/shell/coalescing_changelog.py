"""Coalesce table changelog writes and ack the events they cover afterwards.

A Faust `table[key] = value` produces one changelog record per event. Page
views of an active customer change the same key many times a second, so we
write `table.data` in place, remember which keys are dirty, and every N events
or T seconds send one changelog record per dirty key, then ack the buffered
events. Offsets are committed only for acked events and a commit flushes the
producer first, so a crash before a flush replays those events: at-least-once
still holds, with fewer changelog records.

Order of a flush: the outputs of the held events (candidates, decisions,
actions) acknowledged by the broker, then the changelog records acknowledged,
then the acks. A changelog record says "these events were handled" (event ids
seen, action ids decided), so a replay after a crash skips them: it must never
reach the broker before what they produced. And an event must not be acked
(its offset committed) before its state is on the broker: the next owner of
the partition would start from a state without it.

"Acknowledged" means each send's own future resolved. `producer.flush()` alone
does not promise it: Faust's producer buffer (where `Table.send_changelog` puts
records) gives up flushing after 0.1 s without progress and is dropped unsent
when the worker stops, and aiokafka's flush returns even when a batch failed. So
records are sent with a `Publisher`, which hands them to aiokafka at once and
returns aiokafka's own future.

A flush takes its snapshot (dirty state, held events, their outputs) only
between two events of the agent (`step`): mid-event, the state may already say
"event seen" while the event's outputs are not sent yet.

A store on disk (RocksDB) survives the process, so it must never be ahead of the
changelog: a state written there at once says "these events were seen" after a
kill, the events (not acked) are read again and deduplicated, and what they were to
publish, still in the producer's buffer at the kill, is lost for good. So values
changed since their last flush stay in memory (`_unflushed`, read first), and the
flush writes its records to the store once the broker has them, then records the
changelog offsets the store's recovery resumes from, then acks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from faust.serializers import codecs
from faust.streams import _current_event

from streams.shell import metrics
from streams.shell.direct_delivery import CurrentMessage
from streams.shell.publisher import Publisher

log = logging.getLogger(__name__)


EXIT_WRITE_FAILED = 75
"""Exit status of a worker whose output or state the broker refused (EX_TEMPFAIL)."""


class WriteFailed(RuntimeError):
    """The broker did not take an output or a changelog record."""


class PartitionLost(RuntimeError):
    """A write for a partition this worker no longer owns. Its state in memory may be
    older than the new owner's, and its changelog record would overwrite theirs.

    Not a bug and not bad input: work in flight when a rebalance took the partition
    away. Nothing of it is acked, so the new owner does it again. Handlers log it
    (`log_partition_lost`) instead of counting a processing error, which pages."""

    def __init__(self, table: str, partition: int) -> None:
        super().__init__(f"{table} state of partition {partition} written after its revocation")
        self.partition = partition


def log_partition_lost(logger: logging.Logger, lost: PartitionLost, work: str) -> None:
    logger.info(
        "partition %s was revoked while %s; its next owner does it again",
        lost.partition,
        work,
        extra={"partition": lost.partition},
    )


def exit_worker(error: WriteFailed) -> None:
    """What a failed write does by default: end the process at once, acking nothing.

    The held events are then read again from the committed offset, by the restarted
    worker or the partitions' next owner: at-least-once holds. The outputs that were
    lost cannot be sent again from here, and a graceful stop would wait for acks that
    never come (Faust's stop waits for every in-flight event) or commit past them.
    """
    logging.shutdown()
    os._exit(EXIT_WRITE_FAILED)


@dataclass
class _Snapshot:
    """What one flush writes and acks of one table, taken between two events."""

    dirty: dict[tuple[int, bytes], None]
    held: list[tuple[Any, Any, int]]
    outputs: list[asyncio.Future[Any]]
    records: list[tuple[int, bytes, bytes]]
    revocations: int
    """Revocations before the snapshot was taken."""


def flush_as_one(*changelogs: CoalescingChangelog) -> None:
    """From now on a flush of any of `changelogs` flushes all of them as one unit.

    For tables that one input changes together (a journey step that also decides its
    candidates changes the customer and the contact history): one snapshot of all
    between two events (one `step` lock for all), every output of every table
    confirmed, then the changelog records table after table in the order given (each
    table's confirmed before the next one's are sent), then the acks. Flushed apart,
    an event could be acked once its customer's state is written while the contact
    history of what it decided (deferred candidates, caps) is not: a crash then loses
    that history for good, the event not being read again.
    """
    lock, step = asyncio.Lock(), asyncio.Lock()
    group = list(changelogs)
    for changelog in group:
        changelog._lock, changelog.step, changelog._group = lock, step, group


@dataclass(frozen=True, slots=True)
class _InPartition:
    """The message of the current event as a store reads it: only its partition."""

    partition: int


class CoalescingChangelog:
    def __init__(
        self,
        table: Any,
        max_events: int,
        partition_of: dict[bytes, int] | None = None,
        on_write_failed: Callable[[WriteFailed], None] = exit_worker,
        decode: Callable[[bytes], Any] | None = None,
        keep_decoded: bool = True,
    ) -> None:
        self.table = table
        self.decode = decode
        """Turns a value still in its changelog bytes (as recovered) into the model."""
        self.keep_decoded = keep_decoded
        """The store holds objects (memory): a decoded value replaces its bytes. A store
        of bytes (RocksDB) hands out bytes on every read, decoded each time."""
        self.on_write_failed = on_write_failed
        self.max_events = max_events
        self._dirty: dict[tuple[int, bytes], None] = {}
        self._held: list[tuple[Any, Any, int]] = []
        """Events processed and not acked yet: (what acks it, the event, its partition)."""
        self._outputs: list[asyncio.Future[Any]] = []
        self.records_sent = 0
        self._changelog: Publisher | None = None
        self.closing = False
        self._lock = asyncio.Lock()
        self.step = asyncio.Lock()
        """Held by the agent from taking an event to `hold()`ing it."""
        self._group: list[CoalescingChangelog] = [self]
        """Flushed together, changelog records in this order (`flush_as_one`)."""
        self.records_counter = metrics.CHANGELOG_RECORDS.labels(table.name)
        self.refused_counter = metrics.WRITES_AFTER_REVOKE.labels(table.name)
        self.partition_of: dict[bytes, int] = partition_of if partition_of is not None else {}
        """A store in memory only: which partition each customer key belongs to (to
        rebuild timer indexes). A store on disk keeps a database per partition."""
        self._lost: set[int] = set()
        """Partitions revoked and not assigned again: `put` refuses them."""
        self._revocations = 0
        self._revoked_at: dict[int, int] = {}
        """Per partition, the revocation (count) that last took it: a flush skips
        storing the records of partitions revoked since its snapshot, even if assigned
        back."""
        self.keys_in: dict[int, int] = {}
        """Per owned partition: customers held, as counted at its recovery plus the new
        ones put since (a store on disk cannot count them cheaply)."""
        self._unflushed: dict[bytes, tuple[int, Any]] = {}
        """A store on disk only: (partition, latest value) of each key changed and not
        yet in a flush written to the store (see the module's docstring)."""

    def current(self, key: bytes) -> Any:
        """The latest value of `key` as it is held: a model, or its changelog bytes."""
        changed = self._unflushed.get(key)
        return changed[1] if changed is not None else self.table.data.get(key)

    def unflushed(self, key: bytes, stored: Any) -> Any:
        """`key`'s value changed since its last flush, else `stored` (a store on disk)."""
        changed = self._unflushed.get(key)
        return changed[1] if changed is not None else stored

    def get(self, key: bytes) -> Any:
        value = self.current(key)
        if isinstance(value, bytes) and self.decode is not None:
            try:
                value = self.decode(value)
            except ValueError as exc:  # pydantic's ValidationError is one
                self.drop_unreadable(key, exc)
                return None
            if self.keep_decoded:
                self.table.data[key] = value
        return value

    def drop_unreadable(self, key: bytes, problem: Exception) -> None:
        """A stored value that is not what our codec writes (a downgrade, a hand-made
        record): the customer starts again from nothing rather than stopping the
        partition for good. Logged and counted once, here."""
        log.error(
            "unreadable %s state for key %r dropped: %s",
            self.table.name,
            key,
            problem,
            extra={"table": self.table.name},
        )
        metrics.STATE_UNREADABLE.labels(self.table.name).inc()
        self.table.data.pop(key, None)

    def put(self, partition: int, key: bytes, value: Any) -> None:
        if partition in self._lost:
            self.refused_counter.inc()
            raise PartitionLost(self.table.name, partition)
        if self.keep_decoded:
            new = key not in self.partition_of
            self.table.data[key] = value
            self.partition_of[key] = partition
        else:
            new = key not in self._unflushed and not self._in_partition(
                partition, self.table.data.__contains__, key
            )
            self._unflushed[key] = (partition, value)  # to the store once on the changelog
        if new:
            self.keys_in[partition] = self.keys_in.get(partition, 0) + 1
        self._dirty[(partition, key)] = None

    def track(self, sent: Awaitable[Any]) -> None:
        """An output of the events being held (what `topic.send()` returned): the flush
        that acks them waits for the broker to acknowledge it, and fails if it failed."""
        self._outputs.append(asyncio.ensure_future(sent))

    def hold(self, acker: Any, event: Any, partition: int) -> None:
        """Keep `event` un-acked until the changelog records it depends on are sent; the
        flush then awaits `acker.ack(event)` (a Faust stream, or the consumer's acks for
        a directly delivered message). Not for a revoked partition: acked now, it
        would commit an offset of a partition the new owner reads from."""
        if partition in self._lost:
            return
        self._held.append((acker, event, partition))

    @property
    def full(self) -> bool:
        # While the worker stops, nothing else will flush: flush after every event.
        return self.closing or len(self._held) >= self.max_events

    @property
    def pending_events(self) -> int:
        return len(self._held)

    @property
    def pending(self) -> bool:
        """Anything for a flush: held events, or state changed outside any event (the
        timer scanner's), which would otherwise wait in memory for the next event."""
        return bool(self._held or self._dirty)

    async def flush(self) -> int:
        """Flush this table, and the tables it was joined with (`flush_as_one`), as one
        unit. Returns the changelog records written, of all of them."""
        # One flush at a time: an overlapping one could ack events whose state
        # records the first is still about to send.
        async with self._lock:
            return await self._flush()

    async def _flush(self) -> int:
        group = self._group
        async with self.step:
            # Encoded now: events the agents process while this flush waits below are
            # not acked by it, so their state must not be in it.
            snapshots = [changelog._take() for changelog in group]
        try:
            # Outputs first: the candidates, decisions and actions of the held events
            # must be on the broker before the state that says they were made. Otherwise
            # a crash in between leaves a changelog that dedupes the replayed input
            # (event id seen, action id decided) while its output was never published.
            await self._confirm([f for snap in snapshots for f in snap.outputs], "output")
            sent = []
            for changelog, snap in zip(group, snapshots, strict=True):
                futures = await changelog._send(snap.records)
                await changelog._confirm(futures, "changelog record")
                sent.append(futures)
            async with self.step:  # no event half-way: an unflushed value is its latest
                for changelog, snap, futures in zip(group, snapshots, sent, strict=True):
                    changelog._store(snap, futures)
        except WriteFailed:
            raise
        except BaseException:
            # Cancelled (a stop) or a client error before anything was acked: give the
            # snapshot back, so a later flush acks these events (Faust's stop and
            # revoke wait for every event taken to be acked).
            for changelog, snap in zip(group, snapshots, strict=True):
                changelog._give_back(snap)
            raise
        written = 0
        for changelog, snap in zip(group, snapshots, strict=True):
            changelog.records_sent += len(snap.dirty)
            changelog.records_counter.inc(len(snap.dirty))
            written += len(snap.dirty)
        for snap in snapshots:
            for acker, event, _ in snap.held:
                await acker.ack(event)
        return written

    def _take(self) -> _Snapshot:
        dirty, self._dirty = self._dirty, {}
        held, self._held = self._held, []
        outputs, self._outputs = self._outputs, []
        return _Snapshot(dirty, held, outputs, self._encode(dirty), self._revocations)

    def _store(self, snap: _Snapshot, sent: list[asyncio.Future[Any]]) -> None:
        """The snapshot's records are on the changelog: a store on disk takes them, then
        the offsets its recovery resumes from (Faust records them as each send is
        acknowledged; a kill between the two would resume past records never stored)."""
        on_sent = self.table._on_changelog_sent
        # Revoked since the snapshot, even if assigned back since: recovery has read
        # the changelog again, and this older state or offset must not go over it.
        revoked_at = self._revoked_at.get
        store = self.table.data
        for (partition, key, value), future in zip(snap.records, sent, strict=True):
            if revoked_at(partition, 0) > snap.revocations:
                continue
            if not self.keep_decoded:
                # Bytes: Faust's store keeps them as they are (no second encoding).
                self._in_partition(partition, store.__setitem__, key, value)
                if (partition, key) not in self._dirty:
                    self._unflushed.pop(key, None)  # not changed since the snapshot
            on_sent(future)

    def _give_back(self, snap: _Snapshot) -> None:
        self._held[:0] = snap.held
        self._outputs[:0] = snap.outputs
        self._dirty = {**snap.dirty, **self._dirty}
        self._forget(self._lost)  # revoked while the flush was under way

    async def _confirm(self, sent: list[asyncio.Future[Any]], what: str) -> None:
        if not sent:
            return
        # wait(), not gather(): a flush cancelled at stop must not cancel the sends.
        await asyncio.wait(sent)
        failed: list[BaseException] = []
        for future in sent:
            error = asyncio.CancelledError() if future.cancelled() else future.exception()
            if error is not None:
                failed.append(error)
        if not failed:
            return
        log.critical(
            "%d of %d %ss not written: %r; exiting with status %d",
            len(failed),
            len(sent),
            what,
            failed[0],
            EXIT_WRITE_FAILED,
            extra={"table": self.table.name, "failed": len(failed)},
        )
        stop = WriteFailed(f"{len(failed)} {what}s not written to the broker")
        stop.__cause__ = failed[0]
        self.on_write_failed(stop)
        raise stop

    @staticmethod
    def _in_partition(partition: int, access: Callable[..., Any], *args: Any) -> Any:
        # Faust's RocksDB store files each write under the current event's partition,
        # and asserts there is one: a flush runs outside any event or inside another.
        # A read outside any event tries every partition's database.
        current = CurrentMessage(_InPartition(partition))
        token = _current_event.set(weakref.ref(current))  # type: ignore[arg-type]
        try:
            return access(*args)
        finally:
            _current_event.reset(token)

    def _encode(self, keys: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes, bytes]]:
        current = self.current
        serializer = self.table.value_serializer
        dumps = codecs.dumps
        # A flush the agent runs (`full`) runs inside its current event, and Faust's
        # RocksDB store then reads only that event's partition: every other dirty
        # customer would read as missing, be left out, and its events acked anyway.
        outside_any_event = _current_event.set(None)
        try:
            return [
                # Bytes are already the record: a RocksDB store hands values out encoded.
                (partition, key, value if isinstance(value, bytes) else dumps(serializer, value))
                for partition, key in keys
                if (value := current(key)) is not None
            ]
        finally:
            _current_event.reset(outside_any_event)

    async def _send(self, records: Iterable[tuple[int, bytes, bytes]]) -> list[asyncio.Future[Any]]:
        table = self.table
        if self._changelog is None:
            self._changelog = Publisher(table.app, table.changelog_topic.get_topic_name())
        send = self._changelog.send
        sent: list[asyncio.Future[Any]] = []
        for partition, key, value in records:
            sent.append(await send(key=key, value=value, partition=partition))
        return sent

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget writes for partitions this worker no longer owns (the new owner replays),
        and refuse any more until they are assigned again (`regain`)."""
        self._lost |= partitions
        self._revocations += 1
        for partition in partitions:
            self._revoked_at[partition] = self._revocations
            self.keys_in.pop(partition, None)
        self._forget(partitions)

    def _forget(self, partitions: set[int]) -> None:
        self._dirty = {pk: None for pk in self._dirty if pk[0] not in partitions}
        self._held = [held for held in self._held if held[2] not in partitions]
        if self._unflushed:
            self._unflushed = {
                key: changed
                for key, changed in self._unflushed.items()
                if changed[0] not in partitions
            }

    def regain(self, partitions: set[int]) -> None:
        """`partitions` are assigned to this worker (again): writes to them are its own."""
        self._lost -= partitions
