"""Post-mortem of a failed chaos comparison: where each missing decision's chain broke.

A decision goes event -> journey state (customers changelog) -> orchestrator state
(contacts changelog, decided in the journey's step; ticks of deferred candidates on
`candidates`) -> `decisions`. For every
customer with a missing or different decision, the trail lists every record of
that customer on those topics, in offset order per topic, with what identifies
the occurrence (event ids seen, candidate action ids, action ids decided). The
first link without the action id is where it was lost.

Written only when a comparison fails, to a file next to the worker logs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from tests.chaos.harness import simulated_decisions
from tests.integration.kafka_io import Deployment

Summary = Callable[[Any], str]


def customers_of(
    events_file: Path, rules_file: Path, now: datetime, action_ids: Iterable[str]
) -> dict[str, str]:
    """action_id -> customer_id, per the simulator (an action id does not reveal it)."""
    wanted = set(action_ids)
    return {
        d["action_id"]: d["customer_id"]
        for d in simulated_decisions(events_file, rules_file, now)
        if d["action_id"] in wanted
    }


def _event(value: Any) -> str:
    return f"event {value.get('event_id')} {value.get('type')} at {value.get('occurred_at')}"


def _step(value: Any) -> str:
    ids = [c.get("action_id") for c in value.get("candidates", [])]
    return f"step {value.get('event_type') or 'tick'} at {value.get('at')} candidates {ids}"


def _decision(value: Any) -> str:
    reason = (value.get("reason") or {}).get("code")
    return (
        f"decision {value.get('action_id')} {value.get('outcome')} ({reason}) "
        f"decided_at {value.get('decided_at')}: {(value.get('reason') or {}).get('text')}"
    )


def _journey_state(value: Any) -> str:
    timers = [(t.get("rule_id"), t.get("due_at")) for t in value.get("timers", [])]
    return (
        f"state events {value.get('events_count', 0)} "
        f"recent {value.get('recent_event_ids', [])[-4:]} timers {timers}"
    )


def _contacts_state(value: Any) -> str:
    history = value.get("history", {})
    deferred = [d.get("candidate", {}).get("action_id") for d in value.get("deferred", [])]
    sent = [(c.get("action_id"), c.get("at")) for c in history.get("contacts", [])[-4:]]
    return (
        f"contacts decided {history.get('decided', [])[-6:]} deferred {deferred} "
        f"last contacts {sent}"
    )


async def _read_all(bootstrap: str, topic: str, keys: set[bytes]) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()  # refresh metadata once
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[ConsumerRecord] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found.extend(r for r in records if r.key in keys)
        return found
    finally:
        await consumer.stop()


async def write_trail(
    deployment: Deployment,
    lost: dict[str, str],
    path: Path,
) -> Path:
    """`lost`: action_id -> customer_id. Returns `path`."""
    keys = {customer.encode() for customer in lost.values()}
    topics: list[tuple[str, Summary]] = [
        (deployment.events, _event),
        (deployment.changelog, _journey_state),
        (deployment.candidates, _step),
        (deployment.contacts_changelog, _contacts_state),
        (deployment.decisions, _decision),
    ]
    by_customer: dict[bytes, list[str]] = {key: [] for key in keys}
    for topic, summary in topics:
        for record in await _read_all(deployment.broker.bootstrap, topic, keys):
            try:
                text = summary(orjson.loads(record.value)) if record.value else "tombstone"
            except orjson.JSONDecodeError:
                text = f"undecodable {record.value[:80]!r}"
            by_customer[record.key].append(
                f"  {topic}[{record.partition}]@{record.offset} ts {record.timestamp}: {text}"
            )
    with path.open("w") as out:
        for action_id, customer in sorted(lost.items(), key=lambda item: item[1]):
            out.write(f"{action_id} (customer {customer})\n")
            out.write("\n".join(by_customer[customer.encode()]) + "\n\n")
    return path
