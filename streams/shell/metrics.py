"""Prometheus metrics of the worker. Labels are bounded: never customer data."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from schemas.event import EVENT_MODELS
from streams import __version__

EVENTS_CONSUMED = Counter(
    "crm_events_consumed_total", "Valid events accepted by the journey agent", ["type"]
)
EVENTS_REJECTED = Counter(
    "crm_events_rejected_total", "Messages sent to the dead-letter topic", ["reason"]
)
EVENTS_DUPLICATE = Counter(
    "crm_events_duplicate_total", "Events dropped because their event_id was already seen"
)
CANDIDATES = Counter("crm_candidates_total", "Candidate actions proposed by triggers", ["rule"])
CHANGELOG_RECORDS = Counter(
    "crm_changelog_records_total", "Coalesced state records written to the changelog"
)
CUSTOMERS = Gauge("crm_customers", "Customers held in this worker's state table")
EVENT_LAG = Histogram(
    "crm_event_processing_delay_seconds",
    "From occurred_at to processed by the journey agent",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600),
)
BUILD = Info("crm_build", "Build information")
BUILD.info({"version": __version__})


def event_type_label(event_type: str) -> str:
    """Core types are labels as they are; anything else is `custom` (bounded cardinality)."""
    return event_type if event_type in EVENT_MODELS else "custom"


TIMERS_FIRED = Counter("crm_timers_fired_total", "Durable timers that came due and fired")
TIMER_LATENESS = Histogram(
    "crm_timer_fire_lateness_seconds",
    "From a timer's due time to its firing in the journey agent",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
TIMER_INDEX_ENTRIES = Gauge(
    "crm_timer_index_entries", "Entries in this worker's due-timer index (incl. stale ones)"
)
TIMER_MESSAGES_INVALID = Counter(
    "crm_timer_messages_invalid_total", "Malformed messages on the internal timers topic"
)
DECISIONS = Counter(
    "crm_decisions_total",
    "Decisions of the orchestrator",
    ["rule", "channel", "outcome", "reason"],
)
ACTIONS = Counter("crm_actions_published_total", "Actions published per channel", ["channel"])
DECISION_DUPLICATES = Counter(
    "crm_decision_duplicates_total", "Candidates dropped because their action_id was decided"
)
DECISION_DELAY = Histogram(
    "crm_decision_latency_seconds",
    "From the trigger's event time (or deferred delivery time) to its final decision",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600),
)
FEEDBACK = Counter("crm_feedback_total", "Feedback messages from channel services", ["kind"])
ORCHESTRATOR_INVALID = Counter(
    "crm_orchestrator_invalid_messages_total",
    "Unreadable messages on orchestrator topics",
    ["topic"],
)
