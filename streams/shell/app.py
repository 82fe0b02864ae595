"""Faust wiring: topics, tables, the journey agent, the changelog flush timer, web views."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.settings import Settings
from streams.shell import metrics, state_codec
from streams.shell.coalescing_changelog import CoalescingChangelog
from streams.shell.journey_agent import JourneyAgent
from streams.shell.lean_monitor import LeanMonitor

CUSTOMERS_TABLE = "customers"


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
    events = app.topic(settings.events_topic, **raw)
    dlq = app.topic(settings.dlq_topic, **raw)
    candidates = app.topic(settings.candidates_topic, **raw)
    customers = app.Table(
        CUSTOMERS_TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=state_codec.CustomerStateValue,
        help="Per-customer state (schemas.state.CustomerState)",
    )
    state = CoalescingChangelog(
        customers, settings.changelog_flush_events, settings.changelog_single_record_tail
    )
    handler = JourneyAgent(settings, state, dlq, candidates)

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

    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        # Faust waits for held events to be acked before revoking, so the timer
        # normally flushed them already; anything left belongs to the new owner.
        state.drop_partitions({tp.partition for tp in revoked if tp.topic == settings.events_topic})

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
