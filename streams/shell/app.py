"""Faust wiring: topics, tables, the journey agent, the changelog flush timer, web views."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.core.engine import Engine, load_engine
from streams.settings import Settings
from streams.shell import metrics, state_codec
from streams.shell.coalescing_changelog import CoalescingChangelog
from streams.shell.journey_agent import JourneyAgent, timer_message
from streams.shell.lean_monitor import LeanMonitor
from streams.shell.timer_index import TimerIndex

CUSTOMERS_TABLE = "customers"
log = logging.getLogger(__name__)


def changelog_topic(settings: Settings, table: str = CUSTOMERS_TABLE) -> str:
    return f"{settings.app_id}-{table}-changelog"


def broker_credentials(settings: Settings) -> Any:
    if settings.broker_security_protocol.startswith("SASL"):
        ssl_context = None
        if settings.broker_security_protocol == "SASL_SSL":
            import ssl

            cafile = str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
            ssl_context = ssl.create_default_context(cafile=cafile)
        return faust.SASLCredentials(
            username=settings.broker_sasl_username,
            password=settings.broker_sasl_password,
            mechanism=settings.broker_sasl_mechanism,
            ssl_context=ssl_context,
        )
    if settings.broker_security_protocol == "SSL":
        import ssl

        cafile = str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
        return faust.SSLCredentials(ssl.create_default_context(cafile=cafile))
    return None


class CrmApp(faust.App):
    """Faust app with hooks that run before Faust's own shutdown sequence.

    Faust's stop first waits for every in-flight event to be acked, but our
    held events are acked only by a changelog flush, and the flush timer stops
    with the app: the hooks flush first so the worker stops promptly.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    async def on_stop(self) -> None:
        for hook in self.before_stop:
            await hook()
        await super().on_stop()


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
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=3600.0,
        Monitor=LeanMonitor,
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
    timers = app.topic(settings.timers_topic, **raw)
    dlq = app.topic(settings.dlq_topic, **raw)
    candidates = app.topic(settings.candidates_topic, **raw)
    partition_of: dict[bytes, int] = {}

    async def on_changelog_event(event: Any) -> None:
        # Recovery tells us which partition each customer lives in; the memory
        # store does not keep that, and the timer index is per partition.
        partition_of[event.message.key] = event.message.partition

    customers = app.Table(
        CUSTOMERS_TABLE,
        on_changelog_event=on_changelog_event,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=state_codec.CustomerStateValue,
        help="Per-customer state (schemas.state.CustomerState)",
    )
    state = CoalescingChangelog(
        customers,
        settings.changelog_flush_events,
        settings.changelog_single_record_tail,
        partition_of,
    )
    engine = load_engine(
        settings.rules_path.read_text(encoding="utf-8"),
        str(settings.rules_path),
        limits=settings.state_limits,
    )
    index = TimerIndex()
    handler = JourneyAgent(settings, engine, state, index, dlq, candidates)

    async def on_recovered() -> None:
        """Rebuild the due-timer index and population statistics from recovered state."""
        active = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == settings.events_topic
        }
        grouped: dict[int, list[tuple[bytes, Any]]] = {p: [] for p in active}
        data = customers.data
        for key, partition in state.partition_of.items():
            if partition in grouped:
                value = data.get(key)
                if value is not None:
                    grouped[partition].append((key, Engine.next_due(value)))
                    engine.population.rebuild_from(value)
        rebuilt = sum(index.rebuild(p, entries) for p, entries in grouped.items())
        index.drop(set(index.partitions()) - active)
        metrics.TIMER_INDEX_ENTRIES.set(len(index))
        gc.freeze()
        log.info(
            "timer index rebuilt: %d customers with timers in %d partitions", rebuilt, len(active)
        )

    customers.on_recover(on_recovered)

    def caught_up(partition: int) -> bool:
        """Fire wall-clock timers only when the partition's events are all processed, so an
        order still in lag does not lose the race against its customer's deadline."""
        highwater = app.consumer.highwater(TP(settings.events_topic, partition))
        if highwater is None:
            return False
        processed = handler.processed_offsets.get(partition)
        if processed is None:
            # Nothing processed since this worker started: fall back on what Faust
            # has read or committed for the partition (internal, hence getattr).
            tp = TP(settings.events_topic, partition)
            consumer = app.consumer
            read = getattr(consumer, "_read_offset", {}).get(tp)
            committed = getattr(consumer, "_committed_offset", {}).get(tp)
            known = [o for o in (read, committed) if o is not None]
            processed = max(known) if known else -1
        return bool(processed + 1 >= highwater)

    @app.timer(settings.timer_scan_interval_seconds)  # type: ignore[untyped-decorator]
    async def scan_timers() -> None:
        if app.rebalancing or getattr(app, "in_recovery", False):
            return
        now = datetime.now(UTC)
        stamp = now.timestamp()
        data = customers.data

        def next_due(key: bytes) -> Any:
            value = data.get(key)
            return Engine.next_due(value) if value is not None else None

        for partition in index.partitions():
            if not caught_up(partition):
                continue
            for key in index.pop_due(partition, stamp, next_due):
                await timers.send(
                    key=key,
                    value=timer_message(key.decode("utf-8", "replace"), now),
                    partition=partition,
                )
        metrics.TIMER_INDEX_ENTRIES.set(len(index))

    @app.agent(events, name="journey")
    async def journey(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await handler.handle(event.message)
            state.hold(manual, event)
            if state.full:
                metrics.CHANGELOG_RECORDS.inc(await state.flush())

    async def flush_before_stop() -> None:
        state.closing = True
        metrics.CHANGELOG_RECORDS.inc(await state.flush())

    app.before_stop.append(flush_before_stop)

    @app.timer(settings.changelog_flush_interval_seconds)  # type: ignore[untyped-decorator]
    async def flush_changelog() -> None:
        if state.pending_events:
            metrics.CHANGELOG_RECORDS.inc(await state.flush())
        metrics.CUSTOMERS.set(len(customers.data))

    @app.timer(30.0)  # type: ignore[untyped-decorator]
    async def freeze_long_lived_objects() -> None:
        # A worker holds millions of long-lived state objects; a full GC pass over
        # them blocks the event loop for seconds (timers late, probes failing).
        # Frozen objects are skipped by the collector and still freed by refcount.
        gc.freeze()

    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        # Faust waits for held events to be acked before revoking, so the timer
        # normally flushed them already; anything left belongs to the new owner.
        lost = {tp.partition for tp in revoked if tp.topic == settings.events_topic}
        state.drop_partitions(lost)
        index.drop(lost)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/health/ready")
    async def ready(web: Any, request: Any) -> Any:
        recovering = bool(getattr(app, "in_recovery", False))
        rebalancing = bool(app.rebalancing)
        ok = not recovering and not rebalancing
        body = {"ready": ok, "recovering": recovering, "rebalancing": rebalancing}
        return web.json(body, status=200 if ok else 503)

    return app
