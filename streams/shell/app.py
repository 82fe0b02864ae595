"""Faust wiring: topics, tables, the journey agent, the changelog flush timer, web views."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.journey_step import JourneyStep
from streams.core.engine import LIFECYCLE_TIMER, Engine, load_engine
from streams.core.orchestrator import Orchestrator
from streams.core.recovered_state import (
    NOTHING,
    Held,
    UnreadableState,
    contacts_held,
    customer_held,
)
from streams.core.replay_clock import ReplayClock, confirmed_idle
from streams.settings import Settings
from streams.shell import metrics, state_codec
from streams.shell.broker_probe import BrokerProbe
from streams.shell.coalescing_changelog import CoalescingChangelog, flush_as_one
from streams.shell.consumer_lag import COLLECTOR as CONSUMER_LAG
from streams.shell.direct_delivery import ConsumerAcks, DirectDelivery
from streams.shell.disk_timer_index import DiskTimerIndex
from streams.shell.due_scan import Act, DueScan
from streams.shell.journey_agent import JourneyAgent
from streams.shell.kafka_connection import ssl_context
from streams.shell.kafka_consumer import CrmConsumer, CrmTransport
from streams.shell.lean_monitor import LeanMonitor
from streams.shell.lean_recovery import LeanTableManager, recovery_take
from streams.shell.orchestrator_agent import OrchestratorAgent
from streams.shell.publisher import Publisher
from streams.shell.timer_index import Clock, DueIndex, TimerIndex, before_earliest
from streams.shell.worker_status import WorkerStatus
from streams.simulator import orchestrator_for

FREEZE_INTERVAL_SECONDS = 1.0
"""How often objects alive are moved out of the cyclic GC's reach. Every full
collection scans everything created since the last freeze: with 30 s between
freezes, at 1.6k events/s, full collections every ~2 s took 60-280 ms, growing,
and found nothing (the latency bench's p99). With 1 s: none over 17 ms, and the
cyclic garbage left at exit was the same (198 objects) as with 30 s."""
CUSTOMERS_TABLE = "customers"
CONTACTS_TABLE = "contacts"
log = logging.getLogger(__name__)


def changelog_topic(settings: Settings, table: str = CUSTOMERS_TABLE) -> str:
    return f"{settings.app_id}-{table}-changelog"


def broker_credentials(settings: Settings) -> Any:
    if settings.broker_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.broker_sasl_username,
            password=settings.broker_sasl_password,
            mechanism=settings.broker_sasl_mechanism,
            ssl_context=ssl_context(settings),
        )
    if settings.broker_security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None


class CrmApp(faust.App):
    """Faust app with hooks that run before Faust's own shutdown sequence.

    Faust's stop first waits for every in-flight event to be acked, but our
    held events are acked only by a changelog flush, and the flush timer stops
    with the app: the hooks flush first so the worker stops promptly.
    """

    def __init__(
        self,
        *args: Any,
        fetch_max_wait_ms: int | None = None,
        exact_end_offsets: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []
        self.direct = DirectDelivery()
        """Input topics the consumer's drain loop hands straight to their handler."""
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.exact_end_offsets = exact_end_offsets

    async def on_stop(self) -> None:
        for hook in self.before_stop:
            await hook()
        await super().on_stop()

    def _new_transport(self) -> Any:
        # Faust's aiokafka transport with a rebalance-safe drain loop, our fetch wait
        # and exact end offsets (kafka_consumer.py).
        return CrmTransport(self.conf.broker_consumer, self)


def rule_channels(engine: Engine, settings: Settings) -> list[str]:
    """Channels with an actions topic: the configured ones and every one a rule names."""
    named = {channel for c in engine.rules.values() for channel in c.rule.channels}
    return sorted({*settings.channels, *named})


REBUILD_CHUNK = 5_000
"""Customers the index rebuild reads between two yields to the event loop."""


def partitions_of(topic: str, tps: Iterable[Any]) -> set[int]:
    """The partition numbers of `topic` among `tps`. The tables, the due-time indexes
    and the changelogs' ownership are per events-topic partition: the other topics
    are co-partitioned with it."""
    return {tp.partition for tp in tps if tp.topic == topic}


class _KeyedTable:
    """A per-customer table with coalesced changelog writes and a due-time index.

    Both agents keep one: the journey (`customers`: state and timers) and the
    orchestrator (`contacts`: history and deferred candidates).
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        name: str,
        value_type: type,
        help: str,
        held: Callable[[Any], Held],
    ) -> None:
        self.settings = settings
        self.name = name
        self.held_of = held
        on_disk = settings.store.startswith("rocksdb:")
        self.partition_of: dict[bytes, int] = {}
        """Memory store only: which partition each customer belongs to (the store
        does not keep that, and the index and changelogs are per partition). A store
        on disk has a database per partition: ~100 B per customer saved."""
        self.counts: dict[int, int] = {}
        """Per partition: deadlines pending (timers, deferred candidates), as counted at
        the last recovery; the journey agent keeps the customers' up to date (the
        pending-timers gauge), the contacts' are not read."""
        recovered = metrics.RECOVERY_RECORDS.labels(name)
        metrics.STATE_UNREADABLE.labels(name)  # exported at 0 from the start, for alerts

        async def on_changelog_event(event: Any) -> None:
            if not on_disk:
                self.partition_of[event.message.key] = event.message.partition
            recovered.inc()

        self.app = app
        self.table = app.Table(
            name,
            on_changelog_event=on_changelog_event,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=value_type,
            help=help,
            options=settings.rocksdb_options if on_disk else None,
        )
        self.state = CoalescingChangelog(
            self.table,
            settings.changelog_flush_events,
            self.partition_of,
            decode=state_codec.decoder(value_type._options.serializer),  # type: ignore[attr-defined]
            keep_decoded=settings.store.startswith("memory:"),
        )
        self._drops = 0
        """Revokes so far: a rebuild that sees one under way gives up."""
        # On disk with the store: the worker's memory must not grow with its timers.
        self.index: DueIndex = (
            DiskTimerIndex(Path(app.conf.tabledir) / f"{name}.due-index.{uuid.uuid4().hex}")
            if on_disk
            else TimerIndex()
        )

    @property
    def changelog_topic(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def held(self, key: bytes, value: Any) -> Held:
        """What the index and gauges need of a stored value, decoded or not."""
        try:
            return self.held_of(value)
        except UnreadableState as exc:
            self.state.drop_unreadable(key, exc)
            return NOTHING

    def on_recover(
        self,
        log_name: str,
        before: Callable[[], None] | None = None,
        each: Callable[[Held], None] | None = None,
    ) -> None:
        async def rebuild() -> None:
            recovery = getattr(self.app.tables, "_recovery", None)
            drops = self._drops

            def restarted() -> bool:
                # A revoke comes before the new recovery is signalled (a group join
                # later): the partitions read are no longer all this worker's.
                signalled = recovery is not None and bool(recovery.signal_recovery_start.is_set())
                return signalled or self._drops != drops

            if restarted():
                # Faust ran this recovery's completion although a newer rebalance had
                # already begun (it runs table callbacks before its generation check):
                # the table holds part of the new assignment. The recovery restarts and
                # completes again; rebuild then.
                log.info("%s index rebuild skipped: the recovery restarts", log_name)
                return
            if before is not None:
                before()
            active = partitions_of(self.settings.events_topic, self.app.assignor.assigned_actives())
            counted = dict.fromkeys(active, 0)
            customers = dict.fromkeys(active, 0)
            keys = self.keys_by_partition(active) if self.state.keep_decoded else {}

            def entries(partition: int) -> Iterator[tuple[bytes, datetime | None]]:
                # Streamed into the index: at 10M customers a list of them all would
                # cost more memory than the whole index.
                for key, value in self.held_values(partition, keys.get(partition, [])):
                    held = self.held(key, value)
                    customers[partition] += 1
                    counted[partition] += held.deadlines
                    if each is not None:
                        each(held)
                    yield key, held.next_due

            self.index.drop(set(self.index.partitions()) - active)
            rebuilt = 0
            for partition in sorted(active):
                self.index.reset(partition)
                chunks = entries(partition)
                while chunk := list(islice(chunks, REBUILD_CHUNK)):
                    rebuilt += self.index.extend(partition, chunk)
                    # Millions of customers take minutes: the web server (the liveness
                    # probe, /metrics) must answer meanwhile.
                    await asyncio.sleep(0)
                    if restarted():
                        log.info("%s index rebuild abandoned: the recovery restarts", log_name)
                        return
            self.state.keys_in = customers
            # In place: the journey agent holds this dict and updates it per step.
            self.counts.clear()
            self.counts.update(counted)
            gc.freeze()
            log.info(
                "%s index rebuilt: %d customers in %d partitions",
                log_name,
                rebuilt,
                len(active),
                extra={"table": self.name, "customers": rebuilt, "partitions": len(active)},
            )

        self.table.on_recover(rebuild)

    def keys_by_partition(self, partitions: Iterable[int]) -> dict[int, list[bytes]]:
        """Memory store only: the keys recovery read, per partition, in one pass (the
        rebuild lets other tasks run between its chunks, so these are copies)."""
        keys: dict[int, list[bytes]] = {partition: [] for partition in partitions}
        for key, owner in self.partition_of.items():
            if (owned := keys.get(owner)) is not None:
                owned.append(key)
        return keys

    def held_values(self, partition: int, keys: list[bytes]) -> Iterator[tuple[bytes, Any]]:
        """(key, latest value) of every customer of `partition` this worker holds. A
        memory store holds what recovery read: `keys`, from `keys_by_partition`. A store
        on disk also holds what it kept from before a restart, which recovery (reading
        the changelog from the store's offsets on) does not read again: its customers'
        timers would never fire. So its partition's files are read instead."""
        if self.state.keep_decoded:
            # The memory store's own dict: nothing is held unflushed beside it, and
            # Faust's `Mapping.get` on the store costs ~1 us a customer.
            stored: dict[bytes, Any] = self.table.data.data  # type: ignore[attr-defined]
            for key in keys:
                if (value := stored.get(key)) is not None:
                    yield key, value
            return
        store: Any = self.table.data
        unflushed = self.state.unflushed
        # Faust's RocksDB store has one database per partition and no public way to
        # read one; `_visible_items` leaves out its offset record.
        for key, stored in store._visible_items(store._db_for_partition(partition)):
            yield key, unflushed(key, stored)

    def key_count(self) -> int:
        """Customers held, for the gauge. Faust's `len()` of a RocksDB store reads every
        key of every partition (at 1M customers, a stall of the event loop each time the
        gauge refreshes), and RocksDB's own estimate counts each rewrite still in its
        memtables: counted at recovery and on each new customer instead."""
        if self.state.keep_decoded:
            return len(self.table.data)
        return sum(self.state.keys_in.values())

    def due(self, clock: Clock) -> list[tuple[int, bytes, datetime]]:
        """(partition, key, the partition's clock) of every customer due by that clock;
        partitions whose clock is None (input not all processed) are skipped."""
        current = self.state.current  # not the store: it lags a flush behind on disk

        def lookup(key: bytes) -> datetime | None:
            value = current(key)
            return self.held(key, value).next_due if value is not None else None

        found: list[tuple[int, bytes, datetime]] = []
        for partition in self.index.partitions():
            now = clock(partition)
            if now is not None:
                found.extend(
                    (partition, key, now)
                    for key in self.index.pop_due(partition, now.timestamp(), lookup)
                )
        return found

    async def consume(self, stream: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
        """The agent's loop over Faust's stream (topics without a direct route)."""
        manual = stream.noack()
        async for event in manual.events():
            await self.process(handle, event.message, manual, event)

    def direct_handler(
        self, handle: Callable[[Any], Awaitable[None]], acks: ConsumerAcks
    ) -> Callable[[Any], Awaitable[None]]:
        """`consume`'s work for one message delivered straight from the drain loop."""

        async def process(message: Any) -> None:
            await self.process(handle, message, acks, message)

        return process

    async def process(
        self, handle: Callable[[Any], Awaitable[None]], message: Any, acker: Any, held: Any
    ) -> None:
        """Handle one message between two flush snapshots, then hold `held` (what
        `acker.ack()` takes) until a flush acks it; flush at once when enough are held."""
        state = self.state
        async with state.step:
            await handle(message)
            state.hold(acker, held, message.partition)
        if state.full:
            await state.flush()

    async def flush(self, closing: bool = False) -> None:
        if closing:
            self.state.closing = True
        if self.state.pending or closing:
            await self.state.flush()

    def drop(self, partitions: set[int]) -> None:
        self._drops += 1
        self.state.drop_partitions(partitions)
        self.index.drop(partitions)
        for partition in partitions:
            self.counts.pop(partition, None)


def worker_core(settings: Settings) -> tuple[Engine, Orchestrator]:
    """The rules engine and contact policy a worker runs with `settings`."""
    engine = load_engine(
        settings.rules_path.read_text(encoding="utf-8"),
        str(settings.rules_path),
        limits=settings.state_limits,
    )
    return engine, orchestrator_for(engine)


def create_app(settings: Settings) -> faust.App:
    state_codec.register()
    app = CrmApp(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        # Fast group joins: the embedded broker holds a join for session/2.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_request_timeout=settings.producer_request_timeout_seconds,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        exact_end_offsets=settings.exact_end_offsets,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=3600.0,
        Monitor=LeanMonitor,
        TableManager=LeanTableManager,
        # Faust's compiled stream iterator (shipped in the wheel) skips the
        # slow pure-Python path per event.
        cython_optimizations=True,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": settings.partitions,
    }
    events = app.topic(settings.events_topic, settings.timers_topic, **raw)
    orchestrator_input = app.topic(settings.candidates_topic, settings.feedback_topic, **raw)
    input_topics = {
        settings.events_topic,
        settings.timers_topic,
        settings.candidates_topic,
        settings.feedback_topic,
    }

    engine, orchestrator = worker_core(settings)
    action_topics = {
        channel: Publisher(app, f"{settings.actions_topic_prefix}{channel}")
        for channel in rule_channels(engine, settings)
    }

    customers = _KeyedTable(
        app,
        settings,
        CUSTOMERS_TABLE,
        state_codec.CustomerStateValue,
        "Per-customer state (schemas.state.CustomerState)",
        customer_held,
    )
    contacts = _KeyedTable(
        app,
        settings,
        CONTACTS_TABLE,
        state_codec.ContactsValue,
        "Per-customer contact history (schemas.step.OrchestratorState)",
        contacts_held,
    )
    orchestrator_handler = OrchestratorAgent(
        settings,
        orchestrator,
        contacts.state,
        contacts.index,
        Publisher(app, settings.decisions_topic),
        action_topics,
    )
    journey_handler = JourneyAgent(
        settings,
        engine,
        customers.state,
        customers.index,
        Publisher(app, settings.dlq_topic),
        orchestrator_handler.decide_now,
        orchestrator,
        pending_timers=customers.counts,
    )
    # A journey step decides its candidates in place, changing both tables: they are
    # flushed as one unit, the contact history's records before the customers' (a
    # replay after a crash between the two re-derives candidates the history already
    # decided, deduped by action id, rather than an acked event's decisions forgotten).
    flush_as_one(contacts.state, customers.state)

    def before_customers_recovered() -> None:
        # Learned from scratch on every recovery: the partitions owned may have changed.
        engine.population.reset()
        engine.rfm_population.reset()

    def on_customer_recovered(held: Held) -> None:
        engine.population.rebuild_from_orders(held.order_times)
        if engine.learns_rfm:  # ~2 us a customer: only when the scores use it
            engine.rfm_population.add(held.rfm)

    customers.on_recover("timer", before=before_customers_recovered, each=on_customer_recovered)
    contacts.on_recover("deferred-candidate")

    def caught_up(partition: int, topic: str, processed: int | None) -> bool:
        """Fire wall-clock deadlines only when the partition's input is all processed,
        so an order still in lag does not lose the race against its own deadline."""
        tp = TP(topic, partition)
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            return False
        if processed is None:
            # Nothing processed since this worker got the partition: fall back on the
            # committed offset (the next one to read, hence - 1; internal: getattr).
            committed = getattr(app.consumer, "_committed_offset", {}).get(tp)
            processed = committed - 1 if committed is not None else -1
        return bool(processed + 1 >= highwater)

    def journey_caught_up(partition: int) -> bool:
        return caught_up(
            partition, settings.events_topic, journey_handler.processed_offsets.get(partition)
        )

    def orchestrator_caught_up(partition: int) -> bool:
        return journey_caught_up(partition) and caught_up(
            partition,
            settings.candidates_topic,
            orchestrator_handler.processed_offsets.get(partition),
        )

    def last_fetch_at(tp: TP) -> float | None:
        consumer = app.consumer
        return consumer.last_fetch_at(tp) if isinstance(consumer, CrmConsumer) else None

    replay_clock = ReplayClock(
        allowed_lateness=timedelta(seconds=settings.timer_allowed_lateness_seconds),
        idle_grace=timedelta(seconds=settings.timer_idle_grace_seconds),
    )

    def partition_clock(wall: datetime, caught_up: Callable[[int], bool]) -> Clock:
        def clock(partition: int) -> datetime | None:
            if not caught_up(partition):
                return None
            idle = confirmed_idle(
                journey_handler.last_event_at.get(partition),
                last_fetch_at(TP(settings.events_topic, partition)),
            )
            return replay_clock.now_for(wall, journey_handler.watermarks.get(partition), idle)

        return clock

    due_scan = DueScan(lambda: bool(app.rebalancing))

    @app.timer(settings.timer_scan_interval_seconds)  # type: ignore[untyped-decorator]
    async def scan_timers() -> None:
        if app.rebalancing or getattr(app, "in_recovery", False):
            return
        wall = datetime.now(UTC)

        # Timers and deferred candidates come due here and are handled in process,
        # between two events (the tables' shared step lock), in this order: the
        # candidates that timers due by T propose are decided before the deferrals due
        # by T are released, as the simulator does. (Through topics, the order of the
        # two depended on which hop was faster.) A crash before the next flush leaves
        # the timer or the deferral in the recovered state: it comes due again, and
        # what it decides carries the same action id.
        async def fire_timers(partition: int, key: bytes, now: datetime) -> None:
            await journey_handler.fire_due(partition, key, now, datetime.now(UTC))

        async def release_deferred(partition: int, key: bytes, now: datetime) -> None:
            tick = JourneyStep(customer_id=key.decode("utf-8", "replace"), at=now)
            await orchestrator_handler.decide_now(partition, key, tick)

        # Deferrals are released up to just before the earliest timer not yet fired:
        # the timer pass takes at most the index's limit of customers per partition,
        # and events handled while it runs move the clock on.
        if await handle_due(customers, partition_clock(wall, journey_caught_up), fire_timers):
            await handle_due(
                contacts,
                before_earliest(partition_clock(wall, orchestrator_caught_up), customers.index),
                release_deferred,
            )

    async def handle_due(table: _KeyedTable, clock: Clock, act: Act) -> bool:
        return await due_scan.run(table.due(clock), table.state.step, act)

    if settings.direct_delivery:
        acks = ConsumerAcks(lambda: app.consumer)
        app.direct.route(
            (settings.events_topic, settings.timers_topic),
            customers.direct_handler(journey_handler.handle, acks),
        )
        app.direct.route(
            (settings.candidates_topic, settings.feedback_topic),
            contacts.direct_handler(orchestrator_handler.handle, acks),
        )
        app.direct.recover(
            (customers.changelog_topic, contacts.changelog_topic), recovery_take(app.tables)
        )

    # Subscribed either way: assignment, co-partitioning and recovery stay Faust's.
    # With direct routes their streams receive nothing.
    @app.agent(events, name="journey")
    async def journey(stream: Any) -> None:
        await customers.consume(stream, journey_handler.handle)

    @app.agent(orchestrator_input, name="orchestrator")
    async def orchestrate(stream: Any) -> None:
        await contacts.consume(stream, orchestrator_handler.handle)

    async def flush_before_stop() -> None:
        for table in (customers, contacts):
            await table.flush(closing=True)
        await probe.close()

    app.before_stop.append(flush_before_stop)

    @app.timer(settings.changelog_flush_interval_seconds)  # type: ignore[untyped-decorator]
    async def flush_changelog() -> None:
        for table in (customers, contacts):
            await table.flush()

    @app.timer(FREEZE_INTERVAL_SECONDS)  # type: ignore[untyped-decorator]
    async def freeze_long_lived_objects() -> None:
        # A worker holds millions of long-lived state objects; a full GC pass over
        # them blocks the event loop for seconds (timers late, probes failing).
        # Frozen objects are skipped by the collector and still freed by refcount,
        # but a cycle among them never is: collect the young generations (a few
        # thousand objects, so cheap) first, so that no fresh cyclic garbage is frozen.
        gc.collect(1)
        gc.freeze()

    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        # Faust waits for held events to be acked before revoking, so the timer
        # normally flushed them already; anything left belongs to the new owner.
        # A due timer or deferral being handled is not an event Faust waits for: its
        # writes to a lost partition are refused from here on (`PartitionLost`), and
        # the scanner's pass stops after it.
        lost = partitions_of(settings.events_topic, revoked)
        due_scan.revoked()
        for table in (customers, contacts):
            table.drop(lost)
        for handler in (journey_handler, orchestrator_handler):
            for partition in lost:
                handler.processed_offsets.pop(partition, None)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]

    probe = BrokerProbe(settings)
    status = WorkerStatus(app, settings.events_topic, probe)

    async def on_assigned(app: Any, assigned: Any, **_: Any) -> None:
        owned = partitions_of(settings.events_topic, assigned)
        for table in (customers, contacts):
            table.state.regain(owned)
        status.on_assigned()

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def first_broker_probe() -> None:
        await probe.check()  # at start, not one interval later: readiness waits on it

    @app.timer(probe.interval)  # type: ignore[untyped-decorator]
    async def probe_broker() -> None:
        await probe.check()

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def refresh_gauges() -> None:
        status.refresh_gauges()
        for table in (customers, contacts):
            metrics.TABLE_KEYS.labels(table.name).set(table.key_count())
        metrics.TIMER_INDEX_ENTRIES.set(len(customers.index))

    metrics.TIMERS_PENDING.set_function(lambda: sum(customers.counts.values()))
    metrics.initialise(
        settings.rules_path,
        rule_ids=[*engine.rules, LIFECYCLE_TIMER],
        channels=action_topics,
        topics=input_topics,
        orchestrator_topics=(settings.candidates_topic, settings.feedback_topic),
    )
    CONSUMER_LAG.bind(app, input_topics)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/health/ready")
    async def ready(web: Any, request: Any) -> Any:
        readiness = status.readiness()
        return web.json(readiness.body, status=200 if readiness.ready else 503)

    return app
