"""Prometheus metrics of the worker (served on `GET /metrics` of the Faust web server).

Naming follows Prometheus conventions: base units, `_total` for counters,
`_seconds` and `_bytes` suffixes. Label values are bounded and come from
configuration or from enums of the contracts (rule ids, channels, reason
codes, topic names, partition numbers, core event types): never a customer id,
an email or anything else read from an event.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import Gauge, Info

from schemas.dead_letter import RejectCode
from schemas.decision import FeedbackKind
from schemas.event import EVENT_MODELS
from streams import __version__
from streams.compiled_core import core_is_compiled
from streams.shell.loop_metrics import LoopCounter, LoopHistogram

# From 1 ms to 1 h: decisions of action triggers take milliseconds, timers are
# late by up to a scan interval plus a fetch wait, a backlog by minutes.
LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)

# ------------------------------------------------------------------ events
EVENTS_CONSUMED = LoopCounter(
    "crm_events_consumed_total", "Valid events accepted by the journey agent", ["type"]
)
EVENTS_REJECTED = LoopCounter(
    "crm_events_rejected_total", "Messages sent to the dead-letter topic", ["reason"]
)
EVENTS_DUPLICATE = LoopCounter(
    "crm_events_duplicate_total", "Events dropped because their event_id was already seen"
)
MESSAGES_PROCESSED = LoopCounter(
    "crm_messages_processed_total",
    "Messages handled by an agent, per input topic (processing rate)",
    ["topic"],
)
EVENT_LAG = LoopHistogram(
    "crm_event_processing_delay_seconds",
    "From an event's occurred_at to its processing by the journey agent",
    buckets=LATENCY_BUCKETS,
)

# ------------------------------------------------------------------ triggers and timers
TRIGGERS_FIRED = LoopCounter(
    "crm_triggers_fired_total", "Candidate actions proposed by triggers", ["rule"]
)
TIMERS_SCHEDULED = LoopCounter(
    "crm_timers_scheduled_total",
    "Durable timers armed (a re-armed timer counts as cancelled and scheduled)",
    ["rule"],
)
TIMERS_FIRED = LoopCounter("crm_timers_fired_total", "Durable timers that came due", ["rule"])
TIMERS_CANCELLED = LoopCounter(
    "crm_timers_cancelled_total",
    "Durable timers removed before their due time (cancel_on, re-armed, superseded)",
    ["rule"],
)
TIMERS_PENDING = Gauge("crm_timers_pending", "Durable timers pending in this worker's partitions")
TIMER_LATENESS = LoopHistogram(
    "crm_timer_fire_lateness_seconds",
    "From a timer's due time to its firing in the journey agent (wall clock)",
    buckets=LATENCY_BUCKETS,
)
TIMER_INDEX_ENTRIES = Gauge(
    "crm_timer_index_entries", "Entries in this worker's due-timer index (incl. stale ones)"
)
TIMER_MESSAGES_INVALID = LoopCounter(
    "crm_timer_messages_invalid_total", "Malformed messages on the internal timers topic"
)

# ------------------------------------------------------------------ decisions and actions
DECISIONS = LoopCounter(
    "crm_decisions_total",
    "Decisions of the orchestrator",
    ["rule", "channel", "outcome", "reason"],
)
ACTIONS = LoopCounter("crm_actions_published_total", "Actions published per channel", ["channel"])
DECISION_DUPLICATES = LoopCounter(
    "crm_decision_duplicates_total", "Candidates dropped because their action_id was decided"
)
DECISION_LATENCY = LoopHistogram(
    "crm_decision_latency_seconds",
    "From the trigger's event time (or timer due time, or deferred delivery time) to its "
    "final decision; deferrals are not final and not observed",
    buckets=LATENCY_BUCKETS,
)
FEEDBACK = LoopCounter("crm_feedback_total", "Feedback messages from channel services", ["kind"])
ORCHESTRATOR_INVALID = LoopCounter(
    "crm_orchestrator_invalid_messages_total",
    "Unreadable messages on orchestrator topics",
    ["topic"],
)

# ------------------------------------------------------------------ state, recovery, health
TABLE_KEYS = Gauge("crm_table_keys", "Keys held in this worker's table", ["table"])
CHANGELOG_RECORDS = LoopCounter(
    "crm_changelog_records_total", "Coalesced state records written to the changelog", ["table"]
)
WRITES_AFTER_REVOKE = LoopCounter(
    "crm_state_writes_refused_total",
    "State writes refused because their partition was revoked while the work was under way"
    " (a timer or deferral in flight during a rebalance); the partition's next owner does it"
    " again",
    ["table"],
)
STATE_UNREADABLE = LoopCounter(
    "crm_state_unreadable_total",
    "Stored customer or contact states that could not be read and were dropped",
    ["table"],
)
RECOVERY_RECORDS = LoopCounter(
    "crm_recovery_records_total", "Changelog records read back during recovery", ["table"]
)
RECOVERY_ACTIVE = Gauge("crm_recovery_active", "1 while tables are being recovered")
RECOVERY_REMAINING = Gauge(
    "crm_recovery_remaining_records", "Changelog records left to read in the current recovery"
)
RECOVERIES = LoopCounter("crm_recoveries_total", "Table recoveries completed (one per rebalance)")
RECOVERY_DURATION = Gauge(
    "crm_recovery_last_duration_seconds", "Duration of the last completed table recovery"
)
READY = Gauge("crm_worker_ready", "1 when /health/ready answers 200")
ASSIGNED_PARTITIONS = Gauge(
    "crm_assigned_partitions", "Partitions of the events topic assigned to this worker"
)
BROKER_REACHABLE = Gauge(
    "crm_broker_reachable", "1 when the last metadata request to the brokers succeeded"
)
BUILD = Info("crm_build", "Build information (version, rules file hash)")


def event_type_label(event_type: str) -> str:
    """Core types are labels as they are; anything else is `custom` (bounded cardinality)."""
    return event_type if event_type in EVENT_MODELS else "custom"


def rules_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def initialise(
    rules_path: Path,
    rule_ids: Iterable[str],
    channels: Iterable[str],
    topics: Iterable[str],
    orchestrator_topics: Iterable[str] = (),
) -> None:
    """Publish build info and create the known label sets at zero.

    A series that appears only with its first increment hides that increment
    from `rate()` and `increase()`; pre-created series also let dashboards and
    alerts tell "zero" from "never exported".
    """
    BUILD.info(
        {
            "version": __version__,
            "rules_file": rules_path.name,
            "rules_sha256": rules_digest(rules_path),
            "python": platform.python_version(),
            "core": "compiled" if core_is_compiled() else "python",
        }
    )
    for event_type in (*EVENT_MODELS, "custom"):
        EVENTS_CONSUMED.labels(event_type)
    for code in RejectCode:
        EVENTS_REJECTED.labels(code.value)
    for rule in rule_ids:
        TRIGGERS_FIRED.labels(rule)
        for counter in (TIMERS_SCHEDULED, TIMERS_FIRED, TIMERS_CANCELLED):
            counter.labels(rule)
    for channel in channels:
        ACTIONS.labels(channel)
    for topic in topics:
        MESSAGES_PROCESSED.labels(topic)
    for topic in orchestrator_topics:
        ORCHESTRATOR_INVALID.labels(topic)
    for kind in (*FeedbackKind, "other"):
        FEEDBACK.labels(str(kind))
