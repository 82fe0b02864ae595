"""The journey agent's per-message work: decode, call the engine, write table and topics.

It consumes `crm.events` from producers; the timer scanner asks it in process to
"advance this customer's clock to T" (`fire_timers`; `crm.timers`, where earlier
versions wrote those requests, is still read). Both go through the same engine,
so every state change of a customer happens here, in order, on one worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.dead_letter import RejectCode, SourcePosition
from schemas.event import Event
from schemas.journey_step import JourneyStep
from schemas.state import CustomerState
from schemas.timer_record import TimerRecord
from streams.core.dead_letters import build_dead_letter
from streams.core.decoding import Rejection, decode_event
from streams.core.engine import Engine, Step
from streams.core.orchestrator import Orchestrator, event_steps, step_message
from streams.core.timer_changes import timer_changes
from streams.settings import Settings
from streams.shell import metrics
from streams.shell.coalescing_changelog import (
    CoalescingChangelog,
    PartitionLost,
    log_partition_lost,
)
from streams.shell.log_format import log_processing_failure, position
from streams.shell.timer_index import DueIndex

log = logging.getLogger(__name__)


class JourneyAgent:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        state: CoalescingChangelog,
        index: DueIndex,
        dlq: Any,
        decide: Callable[[int, bytes, JourneyStep], Awaitable[None]],
        orchestrator: Orchestrator,
        pending_timers: dict[int, int] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.orchestrator = orchestrator
        self.decode_limits = settings.decode_limits
        self.state = state
        self.index = index
        self.dlq = dlq
        self.decide = decide
        """The orchestrator deciding a step at once (`OrchestratorAgent.decide_now`)."""
        self.processed_offsets: dict[int, int] = {}
        """Last processed offset of the events topic per partition (timer grace check)."""
        self.watermarks: dict[int, datetime] = {}
        """Latest `occurred_at` processed per partition (the replay clock)."""
        self.last_event_at: dict[int, float] = {}
        """When (monotonic) each partition last processed an event (the replay clock)."""
        self.pending_timers = pending_timers if pending_timers is not None else {}
        """Pending timers per owned partition (the `crm_timers_pending` gauge)."""

    async def handle(self, message: Any) -> None:
        """Process one Kafka message. Never raises on bad input."""
        now = datetime.now(UTC)
        metrics.MESSAGES_PROCESSED.labels(message.topic).inc()
        if message.topic == self.settings.timers_topic:
            await self.handle_timer(message, now)
            return
        self.processed_offsets[message.partition] = message.offset
        self.last_event_at[message.partition] = time.monotonic()
        decoded = decode_event(message.key, message.value, self.decode_limits, now)
        if isinstance(decoded, Rejection):
            await self.reject(message, decoded, now)
            return
        mark = self.watermarks.get(message.partition)
        if mark is None or decoded.occurred_at > mark:
            self.watermarks[message.partition] = decoded.occurred_at
        try:
            await self.accept(message, decoded, now)
        except PartitionLost as lost:
            log_partition_lost(log, lost, f"event {message.offset} was handled")
        except Exception as exc:  # a bug must not stop the partition: park the message
            # The engine may have changed the state in place before failing: write it
            # back so the changelog agrees with memory.
            current = self.state.get(message.key)
            if current is not None:
                self.state.put(message.partition, message.key, current)
            log_processing_failure(log, message)
            rejection = Rejection(RejectCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
            await self.reject(message, rejection, now)

    async def accept(self, message: Any, event: Event, now: datetime) -> None:
        key: bytes = message.key
        state: CustomerState | None = self.state.get(key)
        before = tuple(state.timers) if state is not None else ()
        step = self.engine.on_event(state, event)
        if step.duplicate:
            metrics.EVENTS_DUPLICATE.inc()
            return
        metrics.EVENTS_CONSUMED.labels(metrics.event_type_label(event.type)).inc()
        metrics.EVENT_LAG.observe(max(0.0, (now - event.occurred_at).total_seconds()))
        await self.commit_step(message.partition, key, step, before, event.occurred_at, event.type)

    async def decide_steps(self, partition: int, key: bytes, messages: list[JourneyStep]) -> None:
        for step_msg in messages:
            await self.decide(partition, key, step_msg)

    async def handle_timer(self, message: Any, now: datetime) -> None:
        key: bytes = message.key
        try:
            until = datetime.fromisoformat(orjson.loads(message.value)["until"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # Internal topic: only the scanner writes it. Count, log, move on.
            metrics.TIMER_MESSAGES_INVALID.inc()
            log.error(
                "invalid timer message at %s[%s]@%s",
                message.topic,
                message.partition,
                message.offset,
                extra=position(message),
            )
            return
        try:
            await self.fire_timers(message.partition, key, until, now)
        except PartitionLost as lost:
            log_partition_lost(log, lost, f"timer message {message.offset} was handled")

    async def fire_due(self, partition: int, key: bytes, until: datetime, now: datetime) -> None:
        """`fire_timers` for the scanner: a bug must not stop the scanning of every other
        customer. The failure is logged and counted as a processing error; the timer
        stays in the state (not in the due-time index) and is tried again after the
        next recovery rebuilds the index."""
        try:
            await self.fire_timers(partition, key, until, now)
        except PartitionLost:
            raise  # the scanner's pass stops on it
        except Exception:
            metrics.EVENTS_REJECTED.labels(RejectCode.PROCESSING_ERROR.value).inc()
            log.exception(
                "firing the timers of a customer of partition %s failed",
                partition,
                extra={"partition": partition, "code": RejectCode.PROCESSING_ERROR.value},
            )

    async def fire_timers(self, partition: int, key: bytes, until: datetime, now: datetime) -> None:
        """Advance the customer's clock to `until` (the scanner's clock of the partition):
        its timers due by then fire and their candidates are decided."""
        state: CustomerState | None = self.state.get(key)
        if state is None:
            return
        before = tuple(state.timers)
        step = self.engine.advance(state, until)
        if step.fired:
            # Lateness of the scanner's deadlines only: a timer fired by a later event
            # (replay, backlog) says how old the event is, not how late timers are.
            for due in step.fired:
                metrics.TIMER_LATENESS.observe(max(0.0, (now - due).total_seconds()))
            await self.commit_step(partition, key, step, before, until, None)

    async def commit_step(
        self,
        partition: int,
        key: bytes,
        step: Step,
        timers_before: tuple[TimerRecord, ...],
        at: datetime,
        event_type: str | None,
    ) -> None:
        self.state.put(partition, key, step.state)
        if step.timers_changed:
            self.index.note(partition, key, Engine.next_due(step.state))
            self.count_timers(partition, timers_before, step)
        for candidate in (*step.overdue, *step.candidates):
            metrics.TRIGGERS_FIRED.labels(candidate.rule_id).inc()
        if event_type is not None:
            messages = event_steps(self.orchestrator, step, at, event_type)
        elif step.candidates:
            messages = [step_message(step.state, at, None, step.candidates)]
        else:
            messages = []
        await self.decide_steps(partition, key, messages)

    def count_timers(self, partition: int, before: tuple[TimerRecord, ...], step: Step) -> None:
        changes = timer_changes(before, step.state.timers, step.fired)
        for rule_id in changes.scheduled:
            metrics.TIMERS_SCHEDULED.labels(rule_id).inc()
        for rule_id in changes.fired:
            metrics.TIMERS_FIRED.labels(rule_id).inc()
        for rule_id in changes.cancelled:
            metrics.TIMERS_CANCELLED.labels(rule_id).inc()
        if changes.pending_delta:
            self.pending_timers[partition] = (
                self.pending_timers.get(partition, 0) + changes.pending_delta
            )

    async def reject(self, message: Any, rejection: Rejection, now: datetime) -> None:
        source = SourcePosition(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        )
        letter = build_dead_letter(
            rejection, message.key, message.value, source, now, self.settings.max_message_bytes
        )
        sent = await self.dlq.send(
            key=message.key,
            value=letter.model_dump_json().encode(),
            partition=message.partition,
            headers=[("crm.error_code", rejection.code.value.encode())],
        )
        self.state.track(sent)
        metrics.EVENTS_REJECTED.labels(rejection.code.value).inc()
        log.info(
            "rejected %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            rejection.code.value,
            extra={**position(message), "code": rejection.code.value},
        )
