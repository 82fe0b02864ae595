"""Offline simulator: run the production engine over a JSONL history with an event-time clock.

Events are ordered by `occurred_at` (stable for ties), each customer's timers
fire in event time exactly as in the worker, and at the end the clock moves to
`--until` (default: the last event) so timers due by then fire. Invalid lines
are counted and reported by reason, like the worker's dead-letter topic.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from schemas.candidate import Candidate
from schemas.state import CustomerState
from schemas.timestamps import format_utc
from streams.core.decoding import DecodeLimits, Rejection, decode_event
from streams.core.engine import Engine, load_engine

NO_SKEW_LIMIT = DecodeLimits(max_future_skew=timedelta(days=365 * 1000))
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass
class SimulationSummary:
    events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    decisions: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    customers: int = 0
    timers_fired: int = 0
    until: datetime | None = None


def decision_record(candidate: Candidate) -> dict[str, Any]:
    """A Decision (DESIGN.md §3). Until the orchestrator exists every trigger is `sent`."""
    return {
        "action_id": candidate.action_id,
        "rule_id": candidate.rule_id,
        "customer_id": candidate.customer_id,
        "channel": candidate.channels[0],
        "outcome": "sent",
        "reason": {"code": candidate.reason.code, "text": candidate.reason.text},
        "triggered_at": format_utc(candidate.triggered_at),
        "decided_at": format_utc(candidate.triggered_at),
        "deliver_at": None,
        "expires_at": format_utc(candidate.expires_at),
        "template": candidate.template,
        "category": candidate.category.value,
        "priority": candidate.priority,
        "holdout": candidate.holdout,
    }


def _ordered_lines(path: Path, summary: SimulationSummary) -> list[tuple[float, int, bytes]]:
    """(occurred_at, line number, raw line) sorted by event time; unparseable lines skipped."""
    rows: list[tuple[float, int, bytes]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            line = line.strip()
            if not line:
                continue
            try:
                stamp = datetime.fromisoformat(orjson.loads(line)["occurred_at"]).timestamp()
            except Exception:  # decoded again below, where the exact reason is reported
                stamp = float("-inf")
            rows.append((stamp, number, line))
    rows.sort(key=lambda row: (row[0], row[1]))
    return rows


def _customer_key(line: bytes) -> bytes | None:
    try:
        value = orjson.loads(line).get("customer_id")
    except Exception:
        return None
    return value.encode() if isinstance(value, str) else None


def _write_all(
    out: IO[bytes] | None, candidates: list[Candidate], summary: SimulationSummary
) -> None:
    for candidate in candidates:
        summary.decisions += 1
        summary.by_rule[candidate.rule_id] += 1
        if out is not None:
            out.write(orjson.dumps(decision_record(candidate)) + b"\n")


def simulate(
    events: Path,
    engine: Engine,
    until: datetime | None = None,
    out: IO[bytes] | None = None,
    state_out: IO[bytes] | None = None,
    progress: bool = False,
) -> SimulationSummary:
    summary = SimulationSummary()
    rows = _ordered_lines(events, summary)
    states: dict[str, CustomerState] = {}
    last_event_at: datetime | None = None
    for _, _, line in _track(rows, progress, "events"):
        summary.events += 1
        decoded = decode_event(_customer_key(line), line, NO_SKEW_LIMIT, FAR_FUTURE)
        if isinstance(decoded, Rejection):
            summary.rejected[decoded.code.value] += 1
            continue
        step = engine.on_event(states.get(decoded.customer_id), decoded)
        if step.duplicate:
            summary.duplicates += 1
            continue
        states[decoded.customer_id] = step.state
        summary.timers_fired += len(step.fired)
        _write_all(out, step.candidates, summary)
        if last_event_at is None or decoded.occurred_at > last_event_at:
            last_event_at = decoded.occurred_at
    final = until or last_event_at
    summary.until = final
    summary.customers = len(states)
    if final is not None:
        for customer_id in sorted(states):
            step = engine.advance(states[customer_id], final)
            summary.timers_fired += len(step.fired)
            _write_all(out, step.candidates, summary)
    if state_out is not None and final is not None:
        for customer_id in sorted(states):
            state_out.write(orjson.dumps(state_record(engine, states[customer_id], final)) + b"\n")
    return summary


def state_record(engine: Engine, state: CustomerState, at: datetime) -> dict[str, Any]:
    record: dict[str, Any] = state.model_dump(mode="json", exclude={"recent_event_ids"})
    record["rfm"] = dict(engine.rfm(state, at))
    return record


def _track(
    rows: list[tuple[float, int, bytes]], progress: bool, label: str
) -> Iterator[tuple[float, int, bytes]]:
    if not progress or len(rows) < 50_000:
        yield from rows
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(f"simulating {label}", total=len(rows))
        for count, row in enumerate(rows, 1):
            yield row
            if count % 10_000 == 0:
                bar.update(task, completed=count)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr)


def run_simulation(
    events: Path, rules: Path, until: datetime | None, out: Path | None, state_out: Path | None
) -> SimulationSummary:
    engine = load_engine(rules.read_text(encoding="utf-8"), str(rules))
    out_handle = out.open("wb") if out is not None else None
    state_handle = state_out.open("wb") if state_out is not None else None
    try:
        return simulate(
            events, engine, until, out_handle, state_handle, progress=sys.stderr.isatty()
        )
    finally:
        if out_handle is not None:
            out_handle.close()
        if state_handle is not None:
            state_handle.close()
