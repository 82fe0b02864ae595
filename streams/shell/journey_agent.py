"""The journey agent's per-message work: decode, call the core, write table and topics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from schemas.dead_letter import RejectCode, SourcePosition
from schemas.event import Event
from streams.core.dead_letters import build_dead_letter
from streams.core.decoding import Rejection, decode_event
from streams.core.journey import journey_step
from streams.settings import Settings
from streams.shell import metrics
from streams.shell.coalescing_changelog import CoalescingChangelog

log = logging.getLogger(__name__)


class JourneyAgent:
    def __init__(
        self, settings: Settings, state: CoalescingChangelog, dlq: Any, candidates: Any
    ) -> None:
        self.settings = settings
        self.decode_limits = settings.decode_limits
        self.state_limits = settings.state_limits
        self.state = state
        self.dlq = dlq
        self.candidates = candidates

    async def handle(self, message: Any) -> None:
        """Process one Kafka message of the events topic. Never raises on bad input."""
        now = datetime.now(UTC)
        decoded = decode_event(message.key, message.value, self.decode_limits, now)
        if isinstance(decoded, Rejection):
            await self.reject(message, decoded, now)
            return
        try:
            await self.accept(message, decoded, now)
        except Exception as exc:  # a bug must not stop the partition: park the message
            log.exception(
                "processing failed at %s[%s]@%s", message.topic, message.partition, message.offset
            )
            rejection = Rejection(RejectCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
            await self.reject(message, rejection, now)

    async def accept(self, message: Any, event: Event, now: datetime) -> None:
        key: bytes = message.key
        outcome = journey_step(self.state.get(key), event, self.state_limits)
        if outcome.duplicate:
            metrics.EVENTS_DUPLICATE.inc()
            return
        self.state.put(message.partition, key, outcome.state)
        metrics.EVENTS_CONSUMED.labels(metrics.event_type_label(event.type)).inc()
        metrics.EVENT_LAG.observe(max(0.0, (now - event.occurred_at).total_seconds()))
        for candidate in outcome.candidates:
            await self.candidates.send(
                key=key,
                value=candidate.model_dump_json().encode(),
                partition=message.partition,
            )
            metrics.CANDIDATES.labels(candidate.rule_id).inc()

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
        await self.dlq.send(
            key=message.key,
            value=letter.model_dump_json().encode(),
            partition=message.partition,
            headers=[("crm.error_code", rejection.code.value.encode())],
        )
        metrics.EVENTS_REJECTED.labels(rejection.code.value).inc()
        log.info(
            "rejected %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            rejection.code.value,
        )
