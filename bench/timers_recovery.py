"""Pending timers (RSS, fire lateness), then changelog recovery of the same customers.

Built on bench/timers_scale.py: a one-rule playbook (`before` a date carried by
a `timer.arm` event) arms one timer per customer, due in a day. RSS is read
from /proc once all are handled (idle worker before, loaded after). Probe
timers due over the next seconds then give the fire lateness: the candidate's
Kafka timestamp (stamped by the worker when it publishes) minus its due time.

Recovery reuses that state (N customers, one pending timer each): the worker
is stopped gracefully (its changelog flushed), a new one with the same app id
and the in-memory store must rebuild every customer from the changelog. We
report the worker's own crm_recovery_last_duration_seconds (Faust's recovery
start to end), the time from process start to /health/ready (what an operator
waits for: start-up, group join and recovery), and the customers it holds.

10M pending timers are not attempted: the extrapolation from the measured bytes
per timer says whether they could fit in this machine's memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from latency import percentile
from timers_scale import RULES, arm, lateness
from workers import Worker, topic_env
from workloads import load

TEN_MILLION = 10_000_000


@dataclass
class TimersResult:
    pending: int
    timers_gauge: float
    arm_rate: float
    rss_idle_mb: float
    rss_loaded_mb: float
    bytes_per_timer: float
    probes: int
    fired: int
    lateness_p50_s: float
    lateness_p99_s: float
    lateness_max_s: float
    ten_million_rss_mb: float
    ten_million_reason: str


@dataclass
class RecoveryResult:
    customers: int
    recovered_keys: float
    recovery_seconds: float
    time_to_ready_seconds: float


def memory_total_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_handled(worker: Worker, n: int, timeout: float) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while worker.handled() < n:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {worker.handled():.0f}/{n} events handled in {timeout:.0f} s")
        time.sleep(0.2)
    return time.perf_counter() - started


def run_timers(
    broker_url: str,
    bootstrap: str,
    pending: int,
    probes: int,
    window: float,
    tag: str,
    workdir: Path,
    partitions: int,
) -> tuple[TimersResult, Worker]:
    """Returns the result and the still-running worker (its state feeds recovery)."""
    rules = workdir / f"{tag}-rules.yaml"
    rules.write_text(RULES)
    topic = f"{tag}.events"
    env = {**topic_env(tag, topic), "CRM_RULES_FILE": str(rules)}
    worker = Worker(broker_url, tag, env, workdir, partitions).start()
    try:
        worker.wait_ready()
        time.sleep(1.0)
        idle = worker.rss_mb()
        now = datetime.now(UTC)
        far = now + timedelta(days=1)
        batch = [arm(f"c-{i}", far, now, i) for i in range(pending)]
        asyncio.run(load(bootstrap, topic, batch))
        del batch
        took = wait_handled(worker, pending, timeout=max(600.0, pending / 500))
        time.sleep(1.5)  # gauges refresh once a second
        loaded = worker.rss_mb()
        gauge = worker.metrics().get("crm_timers_pending", float("nan"))
        start = datetime.now(UTC) + timedelta(seconds=5)
        due = {
            f"p-{i}".encode(): start + timedelta(seconds=window * i / probes) for i in range(probes)
        }
        probe_msgs = [
            arm(key.decode(), at, datetime.now(UTC), pending + i)
            for i, (key, at) in enumerate(due.items())
        ]
        asyncio.run(load(bootstrap, topic, probe_msgs))
        late = asyncio.run(lateness(bootstrap, env["CRM_CANDIDATES_TOPIC"], due, window + 60))
        worker.check_alive()
    except BaseException:
        worker.stop()
        raise
    per_timer = (loaded - idle) * 1024 * 1024 / pending
    ten_m = idle + per_timer * TEN_MILLION / (1024 * 1024)
    total = memory_total_mb()
    if ten_m > total:
        reason = (
            f"not measurable: ~{per_timer:,.0f} B per pending timer (customer state included) "
            f"x 10M = {ten_m / 1024:.1f} GiB RSS > {total / 1024:.1f} GiB of RAM"
        )
    else:
        reason = "not attempted (extrapolated); would fit in RAM"
    result = TimersResult(
        pending=pending,
        timers_gauge=gauge,
        arm_rate=pending / took if took > 0 else float("nan"),
        rss_idle_mb=idle,
        rss_loaded_mb=loaded,
        bytes_per_timer=per_timer,
        probes=probes,
        fired=len(late),
        lateness_p50_s=percentile(late, 0.50),
        lateness_p99_s=percentile(late, 0.99),
        lateness_max_s=late[-1] if late else float("nan"),
        ten_million_rss_mb=ten_m,
        ten_million_reason=reason,
    )
    return result, worker


def run_recovery(worker: Worker, customers: int, timeout: float = 900.0) -> RecoveryResult:
    """Stop `worker` and time a fresh worker of the same app rebuilding its state."""
    worker.stop(timeout=120)
    fresh = Worker(
        worker.env["CRM_BROKER"],
        worker.app_id,
        {},
        worker.log_path.parent,
        int(worker.env["CRM_PARTITIONS"]),
    )
    fresh.env = {**worker.env}  # same app id, topics and rules
    fresh.data_dir = worker.data_dir.with_name(worker.data_dir.name + "-restarted")
    fresh.start()
    try:
        to_ready = fresh.wait_ready(timeout)
        deadline = time.monotonic() + 30
        values = fresh.metrics()
        while values.get("crm_recoveries_total", 0.0) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the recovery gauges are sampled once a second
            values = fresh.metrics()
        time.sleep(1.2)
        values = fresh.metrics()
    finally:
        fresh.stop()
    return RecoveryResult(
        customers=customers,
        recovered_keys=values.get('crm_table_keys{table="customers"}', float("nan")),
        recovery_seconds=values.get("crm_recovery_last_duration_seconds", float("nan")),
        time_to_ready_seconds=to_ready,
    )
