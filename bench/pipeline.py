"""crm-triggers' full pipeline: `python -m streams worker` processes on the bench topic.

The default playbook and policy, journey agent and orchestrator in the same
process as in production. Each run starts K workers at once on a fresh group
and fresh internal topics (they join in one generation: the embedded broker
holds a join for session_timeout / 2), polls their /metrics every 250 ms, and
times from the first poll that shows a handled event to the first that shows
N handled in total, or that comes `seconds` after it (as `rate_window`); the
rate is (count at the end - count at the start) over that time, so a coarse poll
costs no accuracy, and the scrapes stay too rare to slow the workers down. Since
2026-12-01 the journey decides its candidates in its own step, so the
orchestrator's cost is in the rate. Versions before handed them over on the
candidates topic, whose backlog at the cut the rate left out: `decided_rate` also
waits for that backlog to be read, so runs of old and new versions compare.
Workers of a run share one app id (one consumer group). A rebalance during the run
(a worker that joined late) or an idle worker is reported, not hidden.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from workers import Worker, topic_env

POLL_SECONDS = 0.25
REPLAY_ENV = {"CRM_SEND_HORIZON_SECONDS": "0"}
"""The throughput runs read the oldest events of a 90-day history. With the default
one-day send horizon every candidate of them expires unsent, and the contact policy's
checks, the contact histories and the published actions of live traffic are left out:
the worker ran 1.11-1.26x faster that way (2026-12-07, 4 pairs side by side). With the horizon
off, decisions are made as they would be for live events."""


@dataclass
class PipelineRun:
    rate: float
    """Events/s of all workers together."""
    events: int
    """The events that rate was measured over."""
    rebalanced: bool
    orchestrator_backlog: float
    """Candidates not yet read by the orchestrator(s) at the cut: work `rate` does
    not include (large = the journey outran the orchestrator)."""
    decided_rate: float
    """The same events over the time until the orchestrator(s) had also read every
    candidate produced by the cut: the whole pipeline's rate, decisions included.
    Slightly low: the journey reads on meanwhile and shares the CPU."""


def run_pipeline(
    broker_url: str,
    topic: str,
    n: int,
    seconds: float,
    workers: int,
    tag: str,
    workdir: Path,
    partitions: int,
    timeout: float = 900.0,
) -> PipelineRun:
    procs = [
        Worker(
            broker_url,
            tag,
            {**topic_env(tag, topic), **REPLAY_ENV},
            workdir,
            partitions,
            name=f"{tag}-w{i}",
        )
        for i in range(workers)
    ]
    try:
        for proc in procs:
            proc.start()
        first_at: float | None = None
        first_count = 0.0
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: {n} events not handled in {timeout:.0f} s")
            for proc in procs:
                proc.check_alive()
            count = sum(proc.handled() for proc in procs)
            now = time.perf_counter()
            if count > 0 and first_at is None:
                first_at, first_count = now, count
            if first_at is not None and (count >= n or now - first_at >= seconds):
                break
            time.sleep(POLL_SECONDS)
        rate = (count - first_count) / max(now - first_at, 1e-9)
        scraped = [proc.metrics() for proc in procs]
        read_metric = "crm_messages_processed_total{"
        backlog = _candidates(scraped, tag, "crm_consumer_lag{")
        candidates_due = _candidates(scraped, tag, read_metric) + backlog
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: orchestrator backlog not read in {timeout:.0f} s")
            done_at = time.perf_counter()
            read = _candidates([proc.metrics() for proc in procs], tag, read_metric)
            if read >= candidates_due:
                break
            time.sleep(POLL_SECONDS / 5)
        decided_rate = (count - first_count) / max(done_at - first_at, 1e-9)
        # One recovery per worker = one assignment each; more means a rebalance mid-run,
        # and a worker with no partition at the end did not share the work at all.
        # (Assignment from /health/ready: the gauge is sampled once a second.)
        rebalanced = any(values.get("crm_recoveries_total", 0.0) > 1 for values in scraped) or any(
            proc.readiness().get("assigned_partitions", 0) == 0 for proc in procs
        )
        return PipelineRun(
            rate=rate,
            events=round(count - first_count),
            rebalanced=rebalanced,
            orchestrator_backlog=backlog,
            decided_rate=decided_rate,
        )
    finally:
        for proc in procs:
            proc.stop()


def _candidates(scraped: list[dict[str, float]], tag: str, metric: str) -> float:
    """Sum of a per-topic series for the run's candidates topic over all workers."""
    candidates = f'topic="{tag}.candidates"'
    return sum(
        value
        for values in scraped
        for series, value in values.items()
        if series.startswith(metric) and candidates in series
    )
