"""The orchestrator agent's per-message work: steps and feedback in, decisions and actions out.

The journey hands it each step in-process (`decide_now`). It consumes
`crm.candidates` (ticks from its own scanner for deferred candidates that came
due; journey steps written there by earlier versions) and `crm.feedback`,
co-partitioned by customer, keeps the `contacts` table, and publishes every
decision to `crm.decisions` and every sent action to `crm.actions.<channel>`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.decision import FeedbackKind, Outcome
from schemas.journey_step import JourneyStep, from_message
from schemas.step import OrchestratorState, StepMessage
from streams.core.orchestrator import Orchestrated, Orchestrator
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

BLOCKING_FEEDBACK = {kind.value: kind for kind in FeedbackKind}


class OrchestratorAgent:
    def __init__(
        self,
        settings: Settings,
        orchestrator: Orchestrator,
        contacts: CoalescingChangelog,
        index: DueIndex,
        decisions: Any,
        action_topics: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.orchestrator = orchestrator
        self.contacts = contacts
        self.index = index
        self.decisions = decisions
        self.action_topics = action_topics
        self.processed_offsets: dict[int, int] = {}

    async def handle(self, message: Any) -> None:
        metrics.MESSAGES_PROCESSED.labels(message.topic).inc()
        try:
            if message.topic == self.settings.feedback_topic:
                self.handle_feedback(message)
            else:
                self.processed_offsets[message.partition] = message.offset
                await self.handle_step(message)
        except (ValidationError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            # crm.candidates is internal; crm.feedback comes from channel services.
            # Neither may stop the partition: count, log, move on.
            metrics.ORCHESTRATOR_INVALID.labels(message.topic).inc()
            log.error(
                "invalid message at %s[%s]@%s: %s",
                message.topic,
                message.partition,
                message.offset,
                type(exc).__name__,
                extra={**position(message), "code": type(exc).__name__},
            )
        except PartitionLost as lost:
            log_partition_lost(log, lost, f"{message.topic} message {message.offset} was handled")
        except Exception:  # a bug must not stop the partition either
            metrics.ORCHESTRATOR_INVALID.labels(message.topic).inc()
            log_processing_failure(log, message)

    async def handle_step(self, message: Any) -> None:
        step = from_message(StepMessage.model_validate_json(message.value))
        await self.decide(message.partition, message.key, step)

    async def decide_now(self, partition: int, key: bytes, step: JourneyStep) -> None:
        """A journey step's candidates, decided in the journey's own step (one hop).

        The journey calls this instead of producing the step to `crm.candidates`: the
        contact history of this customer lives in this worker (the topics are
        co-partitioned) and both tables flush as one unit, so the step needs no
        durable hand-over. What a bug in the policy would do to a message of the topic
        it does here: counted, logged, the journey's event goes on.
        """
        try:
            await self.decide(partition, key, step)
        except PartitionLost:
            raise  # to the journey's event or the scanner's pass, which log it
        except Exception:
            metrics.ORCHESTRATOR_INVALID.labels(self.settings.candidates_topic).inc()
            log.exception(
                "deciding a journey step of partition %s failed",
                partition,
                extra={"partition": partition, "code": "processing_error"},
            )

    async def decide(self, partition: int, key: bytes, step: JourneyStep) -> None:
        state: OrchestratorState | None = self.contacts.get(key)
        due_before = state.next_due() if state is not None else None
        horizon = self.horizon()
        if step.is_tick:
            if state is None:
                return
            done = self.orchestrator.advance(state, step.at, horizon)
        else:
            done = self.orchestrator.on_step(state, step, horizon)
        self.contacts.put(partition, key, done.state)
        due_after = done.state.next_due()
        if due_after != due_before:
            self.index.note(partition, key, due_after)
        await self.publish(key, partition, done)

    def horizon(self) -> datetime | None:
        seconds = self.settings.send_horizon_seconds
        return datetime.now(UTC) - timedelta(seconds=seconds) if seconds > 0 else None

    def handle_feedback(self, message: Any) -> None:
        feedback = orjson.loads(message.value) if message.value else None
        if not isinstance(feedback, dict) or message.key is None:
            raise ValueError("feedback must be a JSON object keyed by customer id")
        kind = BLOCKING_FEEDBACK.get(str(feedback.get("type")))
        metrics.FEEDBACK.labels(kind.value if kind else "other").inc()
        if kind is None:
            return  # delivered / opened / clicked / converted: for reports, not policy
        key: bytes = message.key
        at = datetime.fromisoformat(feedback["occurred_at"])
        state = self.orchestrator.on_feedback(
            self.contacts.get(key), key.decode(), str(feedback["channel"]), kind, at
        )
        self.contacts.put(message.partition, key, state)

    async def publish(self, key: bytes, partition: int, done: Orchestrated) -> None:
        now = datetime.now(UTC)
        for decision in done.decisions:
            sent = await self.decisions.send(
                key=key, value=decision.model_dump_json().encode(), partition=partition
            )
            self.contacts.track(sent)
            metrics.DECISIONS.labels(
                decision.rule_id,
                decision.channel or "none",
                decision.outcome.value,
                decision.reason.code.value,
            ).inc()
            if decision.outcome is not Outcome.DEFERRED:
                # A deferral is not the final decision: its candidate is decided later.
                started = decision.deliver_at or decision.triggered_at
                metrics.DECISION_LATENCY.observe(max(0.0, (now - started).total_seconds()))
        for action in done.actions:
            topic = self.action_topics.get(action.channel)
            if topic is None:
                log.error(
                    "no actions topic for channel %s",
                    action.channel,
                    extra={"channel": action.channel, "rule_id": action.rule_id},
                )
                continue
            sent = await topic.send(
                key=key, value=action.model_dump_json().encode(), partition=partition
            )
            self.contacts.track(sent)
            metrics.ACTIONS.labels(action.channel).inc()
        if done.duplicates:
            metrics.DECISION_DUPLICATES.inc(done.duplicates)
