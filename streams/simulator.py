"""Offline simulator: run the production engine over a JSONL history with an event-time clock.

Events are ordered by `occurred_at` (stable for ties), each customer's timers
fire in event time exactly as in the worker, and at the end the clock moves to
`--until` (default: the last event) so timers due by then fire. Invalid lines
are counted and reported by reason, like the worker's dead-letter topic.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import multiprocessing
import multiprocessing.connection
import shutil
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, Any

import orjson

from schemas.candidate_record import CandidateRecord
from schemas.dead_letter import RejectCode
from schemas.decision import Decision
from schemas.state import CustomerState
from schemas.step import OrchestratorState
from schemas.timestamps import format_utc
from streams.core.decoding import DecodeLimits, Rejection, decode_event
from streams.core.engine import Engine, load_engine
from streams.core.orchestrator import (
    Orchestrated,
    Orchestrator,
    cancel_on_of,
    event_steps,
    step_message,
)
from streams.simulated_rejects import line_of, reject_record

NO_SKEW_LIMIT = DecodeLimits(max_future_skew=timedelta(days=365 * 1000))
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)
PARALLEL_FROM_LINES = 10_000
"""Below this, forking jobs costs more than it saves."""
BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte order mark, which some tools write at the start of an export."""


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
    by_outcome: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(rule, outcome, reason code) -> decisions."""


def decision_record(candidate: CandidateRecord) -> dict[str, Any]:
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


Row = tuple[float, int, bytes | None, bytes]
"""(occurred_at as a timestamp, line number, customer key, raw line)."""
Latest = tuple[datetime, int] | None
"""The latest parseable `occurred_at` and the line it was first read on."""


def _ordered_lines(path: Path, job: int = 0, jobs: int = 1) -> tuple[list[Row], Latest]:
    """Rows sorted by event time (stable), and the latest parseable `occurred_at`. With
    `jobs` > 1, only the rows of `job`'s customers (the latest is of those rows too)."""
    rows: list[Row] = []
    latest: datetime | None = None
    latest_line = -1
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            line = line.strip()
            if number == 0 and line.startswith(BOM):
                line = line[len(BOM) :]
            if not line:
                continue
            stamp = float("-inf")
            key: bytes | None = None
            try:
                obj = orjson.loads(line)
                customer = obj.get("customer_id")
                key = customer.encode() if isinstance(customer, str) else None
            except Exception:  # decoded again below, where the exact reason is reported
                obj = None
            if jobs > 1 and _job_of(key, jobs) != job:
                continue
            try:
                at = datetime.fromisoformat(obj["occurred_at"])
                if at.tzinfo is not None:
                    stamp = at.timestamp()
                    if latest is None or at > latest:
                        latest, latest_line = at, number
            except Exception:  # as above
                pass
            rows.append((stamp, number, key, line))
    # By (time, line number): line numbers are unique, so the plain tuple order never
    # compares further, and it costs half of a key function's.
    rows.sort()
    return rows, (latest, latest_line) if latest is not None else None


def _latest_of(found: Iterable[Latest]) -> datetime | None:
    """The latest instant, from the earliest line that has it (as one reader finds it)."""
    candidates = [item for item in found if item is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda item: (item[0], -item[1]))[0]


_DECISION_JSON = Decision.__pydantic_serializer__
"""`model_dump_json` without the str round trip: the serializer gives the same bytes."""


def _write_all(out: IO[bytes] | None, done: Orchestrated, summary: SimulationSummary) -> None:
    for decision in done.decisions:
        summary.decisions += 1
        summary.by_rule[decision.rule_id] += 1
        summary.by_outcome[
            (decision.rule_id, decision.outcome.value, decision.reason.code.value)
        ] += 1
        if out is not None:
            out.write(_DECISION_JSON.to_json(decision) + b"\n")


def simulate(
    events: Path,
    engine: Engine,
    until: datetime | None = None,
    out: IO[bytes] | None = None,
    state_out: IO[bytes] | None = None,
    progress: bool = False,
    jobs: int = 1,
    rejects: IO[bytes] | None = None,
) -> SimulationSummary:
    """Run the engine over `events`. With `jobs` > 1, customers are split by a hash of
    their id over forked processes (population statistics are then learned per job,
    as they are per worker in production). `rejects` gets each rejected line and why
    (`simulated_rejects`), in line order."""
    # Millions of long-lived, acyclic objects: cyclic GC passes over them cost 10-25%
    # of the run and free nothing (peak RSS is the same without them), so none run.
    enabled = gc.isenabled()
    gc.disable()
    try:
        if jobs > 1 and _has_lines(events, PARALLEL_FROM_LINES):
            return _run_parallel(events, engine, until, out, state_out, progress, jobs, rejects)
        rows, latest = _ordered_lines(events)
        final = until or _latest_of([latest])
        return _run(
            rows, engine, lambda: final, out, state_out, progress, total=len(rows), rejects=rejects
        )
    finally:
        if enabled:
            gc.enable()


def _has_lines(path: Path, at_least: int) -> bool:
    """Does the file have `at_least` lines? Read only until it is known: counting them
    all was a serial pass over the whole file before the jobs could start."""
    found = 0
    with path.open("rb") as handle:
        while found < at_least:
            block = handle.read(1 << 20)
            if not block:
                return False
            found += block.count(b"\n")
    return True


def _run(
    rows: Iterable[Row],
    engine: Engine,
    final_of: Callable[[], datetime | None],
    out: IO[bytes] | None,
    state_out: IO[bytes] | None,
    progress: bool,
    total: int | None = None,
    rejects: IO[bytes] | None = None,
) -> SimulationSummary:
    """One job's events in order, then the clock to `final_of()` (asked for only then:
    a parallel job learns it from the others)."""
    summary = SimulationSummary()
    orchestrator = orchestrator_for(engine)
    states: dict[str, CustomerState] = {}
    contacts: dict[str, OrchestratorState] = {}
    rejected: list[tuple[int, bytes]] = []
    for _, number, key, line in _track(rows, progress, total):
        summary.events += 1
        decoded = decode_event(key, line, NO_SKEW_LIMIT, FAR_FUTURE)
        if isinstance(decoded, Rejection):
            summary.rejected[decoded.code.value] += 1
            if rejects is not None:
                rejected.append((number, reject_record(number + 1, decoded, line)))
            continue
        customer_id = decoded.customer_id
        try:
            step = engine.on_event(states.get(customer_id), decoded)
        except Exception as exc:  # as in the worker: a processing error, the run goes on
            summary.rejected[RejectCode.PROCESSING_ERROR.value] += 1
            if rejects is not None:
                error = Rejection(RejectCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
                rejected.append((number, reject_record(number + 1, error, line)))
            continue
        if step.duplicate:
            summary.duplicates += 1
            continue
        states[customer_id] = step.state
        summary.timers_fired += len(step.fired)
        for message in event_steps(orchestrator, step, decoded.occurred_at, decoded.type):
            done = orchestrator.on_step(contacts.get(customer_id), message)
            contacts[customer_id] = done.state
            _write_all(out, done, summary)
    summary.customers = len(states)
    summary.until = final = final_of()
    if final is not None:
        for customer_id in sorted(states):
            step = engine.advance(states[customer_id], final)
            summary.timers_fired += len(step.fired)
            contact = contacts.get(customer_id)
            if not step.candidates and not orchestrator.has_due(contact, final):
                continue  # nothing to decide: most customers, at ~40 µs each
            message = step_message(step.state, final, None, step.candidates)
            done = orchestrator.on_step(contact, message)
            _write_all(out, done, summary)
        if state_out is not None:
            for customer_id in sorted(states):
                record = state_record(engine, states[customer_id], final)
                state_out.write(orjson.dumps(record) + b"\n")
    if rejects is not None:
        rejected.sort()  # met in event-time order; written in line order
        for _, reject in rejected:
            rejects.write(reject + b"\n")
    return summary


def orchestrator_for(engine: Engine) -> Orchestrator:
    return Orchestrator(engine.ruleset.policy, cancel_on_of(c.rule for c in engine.rules.values()))


def _job_of(key: bytes | None, jobs: int) -> int:
    return zlib.crc32(key or b"") % jobs


def _run_parallel(
    events: Path,
    engine: Engine,
    until: datetime | None,
    out: IO[bytes] | None,
    state_out: IO[bytes] | None,
    progress: bool,
    jobs: int,
    rejects: IO[bytes] | None = None,
) -> SimulationSummary:
    """Each job reads the file itself and keeps its own customers' lines, so reading
    and sorting run in parallel too (one reader was ~10% of a 2-job run, and its rows,
    touched by every job, were copied into each). Without `until`, the final clock is
    the latest event of all jobs: each job reports its own latest once read, and gets
    the overall one back before it advances its customers' clocks."""
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="crm-simulate-") as tmp:
        folder = Path(tmp)
        processes = []
        links = []
        for job in range(jobs):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_job_main,
                args=(
                    job,
                    jobs,
                    events,
                    engine,
                    until,
                    theirs,
                    folder,
                    out is not None,
                    state_out is not None,
                    rejects is not None,
                    progress and job == 0,
                ),
            )
            process.start()
            theirs.close()
            processes.append(process)
            links.append(ours)
        try:
            final = until
            if until is None:
                final = _latest_of(
                    _receive(link, process) for link, process in zip(links, processes, strict=True)
                )
                for link in links:
                    with contextlib.suppress(OSError):  # a job that died: its exit code says
                        link.send(final)
            for process in processes:
                process.join()
                if process.exitcode != 0:
                    raise RuntimeError(f"simulation job failed with exit code {process.exitcode}")
        except BaseException:
            for process in processes:  # the others would wait for a final clock forever
                process.kill()
            raise
        summary = SimulationSummary(until=final)
        for job in range(jobs):
            part = orjson.loads((folder / f"summary-{job}.json").read_bytes())
            summary.events += part["events"]
            summary.rejected.update(part["rejected"])
            summary.duplicates += part["duplicates"]
            summary.decisions += part["decisions"]
            summary.by_rule.update(part["by_rule"])
            summary.by_outcome.update({(r, o, c): n for r, o, c, n in part["by_outcome"]})
            summary.customers += part["customers"]
            summary.timers_fired += part["timers_fired"]
            if out is not None:
                with (folder / f"decisions-{job}.jsonl").open("rb") as part_file:
                    shutil.copyfileobj(part_file, out)
        if state_out is not None:
            _merge([folder / f"states-{job}.jsonl" for job in range(jobs)], _customer_of, state_out)
        if rejects is not None:
            _merge([folder / f"rejects-{job}.jsonl" for job in range(jobs)], line_of, rejects)
    return summary


def _customer_of(line: bytes) -> str:
    customer: str = orjson.loads(line)["customer_id"]
    return customer


def _merge(parts: list[Path], key: Callable[[bytes], Any], out: IO[bytes]) -> None:
    """The jobs' files, each sorted by `key`, as one sorted file."""
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(part.open("rb")) for part in parts]
        for line in heapq.merge(*handles, key=key):
            out.write(line)


def _receive(link: Connection, process: BaseProcess) -> Latest:
    """A job's latest event, or an error if the job died before it could say."""
    ready = multiprocessing.connection.wait([link, process.sentinel])
    if link in ready:
        try:
            found: Latest = link.recv()
            return found
        except EOFError:
            pass
    process.join()
    raise RuntimeError(f"simulation job failed with exit code {process.exitcode}")


def _job_main(
    job: int,
    jobs: int,
    events: Path,
    engine: Engine,
    until: datetime | None,
    link: Connection,
    folder: Path,
    want_out: bool,
    want_states: bool,
    want_rejects: bool,
    progress: bool,
) -> None:  # pragma: no cover - runs in a forked child; covered through simulate()
    mine, latest = _ordered_lines(events, job, jobs)

    def final_of() -> datetime | None:
        if until is not None:
            return until
        found: datetime | None = link.recv()
        return found

    if until is None:
        link.send(latest)
    with contextlib.ExitStack() as stack:
        out, states, rejects = _writers(
            stack,
            [
                folder / f"{name}-{job}.jsonl" if wanted else None
                for name, wanted in (
                    ("decisions", want_out),
                    ("states", want_states),
                    ("rejects", want_rejects),
                )
            ],
        )
        summary = _run(
            mine, engine, final_of, out, states, progress, total=len(mine), rejects=rejects
        )
    (folder / f"summary-{job}.json").write_bytes(
        orjson.dumps(
            {
                "events": summary.events,
                "rejected": dict(summary.rejected),
                "duplicates": summary.duplicates,
                "decisions": summary.decisions,
                "by_rule": dict(summary.by_rule),
                "by_outcome": [[r, o, c, n] for (r, o, c), n in summary.by_outcome.items()],
                "customers": summary.customers,
                "timers_fired": summary.timers_fired,
            }
        )
    )


def state_record(engine: Engine, state: CustomerState, at: datetime) -> dict[str, Any]:
    record: dict[str, Any] = state.model_dump(mode="json", exclude={"recent_event_ids"})
    record["rfm"] = dict(engine.rfm(state, at))
    return record


def _track(rows: Iterable[Row], progress: bool, total: int | None) -> Iterator[Row]:
    if not progress or total is None or total < 50_000:
        yield from rows
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("simulating", total=total)
        for count, row in enumerate(rows, 1):
            yield row
            if count % 10_000 == 0:
                bar.update(task, completed=count)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr)


def run_simulation(
    events: Path,
    rules: Path,
    until: datetime | None,
    out: Path | None,
    state_out: Path | None,
    jobs: int = 1,
    rejects: Path | None = None,
) -> SimulationSummary:
    engine = load_engine(rules.read_text(encoding="utf-8"), str(rules))
    with contextlib.ExitStack() as stack:
        out_file, state_file, rejects_file = _writers(stack, [out, state_out, rejects])
        return simulate(
            events,
            engine,
            until,
            out_file,
            state_file,
            progress=sys.stderr.isatty(),
            jobs=jobs,
            rejects=rejects_file,
        )


def _writers(stack: contextlib.ExitStack, paths: list[Path | None]) -> list[IO[bytes] | None]:
    """A file open for writing per path (None where none is wanted), closed with `stack`."""
    return [stack.enter_context(path.open("wb")) if path is not None else None for path in paths]
