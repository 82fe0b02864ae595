"""Changelog recovery of N customers, then pending timers (RSS, fire lateness).

The state is what a worker writes when a one-rule playbook (`before` a date
carried by a `timer.arm` event) arms one timer per customer, due in a day: the
engine builds each customer's state from that event and the worker's own codec
encodes it onto the `customers` changelog, as the worker's flush would. Arming
them through a running worker measured nothing new (the pipeline's rate, at
~4k events/s: 260 s of the default run) and needed a restart anyway to time
recovery.

A worker then starts on that changelog: we report its own
crm_recovery_last_duration_seconds (Faust's recovery start to end), the time from
process start to /health/ready (what an operator waits for: start-up, group join
and recovery), and the customers it holds. Its RSS with every timer pending,
against an idle worker's, gives the bytes per pending timer. Probe timers due
over the next seconds then give the fire lateness: the Kafka timestamp of the
probe's first decision (stamped by the worker when it publishes; before
2026-12-01, of its candidate step) minus its due time.

10M pending timers are not attempted by default: the extrapolation from the measured
bytes per timer says whether they could fit in this machine's memory, and is not judged
against the target (it is linear, and a store with bounded memory such as RocksDB does
not grow so); `make bench-timers-10m` measures them on RocksDB.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from latency import percentile
from timers_scale import RULES, arm, lateness
from workers import Worker, topic_env
from workloads import Message, load

from schemas.state import CustomerState
from streams.core.decoding import DecodeLimits, Rejection, decode_event
from streams.core.engine import load_engine
from streams.settings import Settings
from streams.shell.app import CUSTOMERS_TABLE, changelog_topic
from streams.shell.state_codec import PydanticCodec

TEN_MILLION = 10_000_000


@dataclass
class TimersResult:
    pending: int
    timers_gauge: float
    seed_rate: float
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
    local_restart_to_ready_seconds: float | None = None
    """A store on disk only: the same worker restarted on its data dir (local files
    plus the changelog's tail) until /health/ready."""
    local_restart_index_entries: float | None = None
    """...and the customers its due-time index then holds (all of them, or their
    timers would not fire)."""


def memory_total_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def armed_states(pending: int, due: datetime, now: datetime, first: int = 0) -> Iterator[Message]:
    """(key, changelog value) of `pending` customers (numbered from `first`), each after
    one `timer.arm` event: the engine's state, in the worker's codec."""
    engine = load_engine(RULES, "timers rules")
    codec = PydanticCodec(CustomerState)
    limits = DecodeLimits()
    for i in range(first, first + pending):
        key, value = arm(f"c-{i}", due, now, i)
        event = decode_event(key, value, limits, now)
        if isinstance(event, Rejection):
            raise RuntimeError(f"the timer.arm event was rejected: {event}")
        step = engine.on_event(None, event)
        yield key, codec.dumps(step.state)


SEED_CHUNK = 20_000


def _armed_chunk(job: tuple[int, int, datetime, datetime]) -> list[Message]:
    first, pending, due, now = job
    return list(armed_states(pending, due, now, first))


def armed_states_in_parallel(pending: int, due: datetime, now: datetime) -> Iterator[Message]:
    """`armed_states`, in order, built in as many processes as there are cores: at ~65 us
    a state, building 1M took ~65 s of the ~90 s the stage spent seeding."""
    jobs = [
        (first, min(SEED_CHUNK, pending - first), due, now)
        for first in range(0, pending, SEED_CHUNK)
    ]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        for chunk in pool.imap(_armed_chunk, jobs):
            yield from chunk


async def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def idle_rss(broker_url: str, tag: str, rules: Path, workdir: Path, partitions: int) -> float:
    """RSS of a started worker that holds no state (the baseline of bytes per timer)."""
    env = {**topic_env(tag, f"{tag}.events"), "CRM_RULES_FILE": str(rules)}
    worker = Worker(broker_url, tag, env, workdir, partitions).start()
    try:
        worker.wait_ready()
        time.sleep(1.0)
        return worker.rss_mb()
    finally:
        worker.stop()


def run_timers_and_recovery(
    broker_url: str,
    bootstrap: str,
    pending: int,
    probes: int,
    window: float,
    tag: str,
    workdir: Path,
    partitions: int,
    recovery_timeout: float = 900.0,
) -> tuple[TimersResult, RecoveryResult]:
    rules = workdir / f"{tag}-rules.yaml"
    rules.write_text(RULES)
    idle = idle_rss(broker_url, f"{tag}-idle", rules, workdir, partitions)

    now = datetime.now(UTC)
    changelog = changelog_topic(Settings(app_id=tag), CUSTOMERS_TABLE)
    asyncio.run(_create(bootstrap, changelog, partitions))
    states = armed_states_in_parallel(pending, now + timedelta(days=1), now)
    seed_rate = asyncio.run(load(bootstrap, changelog, states))

    topic = f"{tag}.events"
    env = {**topic_env(tag, topic), "CRM_RULES_FILE": str(rules)}
    worker = Worker(broker_url, tag, env, workdir, partitions).start()
    try:
        to_ready = worker.wait_ready(recovery_timeout)
        deadline = time.monotonic() + 30
        values = worker.metrics()
        while values.get("crm_recoveries_total", 0.0) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the recovery gauges are sampled once a second
            values = worker.metrics()
        time.sleep(1.5)  # gauges refresh once a second
        values = worker.metrics()
        loaded = worker.rss_mb()
        recovery = RecoveryResult(
            customers=pending,
            recovered_keys=values.get(f'crm_table_keys{{table="{CUSTOMERS_TABLE}"}}', float("nan")),
            recovery_seconds=values.get("crm_recovery_last_duration_seconds", float("nan")),
            time_to_ready_seconds=to_ready,
        )
        gauge = values.get("crm_timers_pending", float("nan"))
        start = datetime.now(UTC) + timedelta(seconds=5)
        due = {
            f"p-{i}".encode(): start + timedelta(seconds=window * i / probes) for i in range(probes)
        }
        probe_msgs = [
            arm(key.decode(), at, datetime.now(UTC), pending + i)
            for i, (key, at) in enumerate(due.items())
        ]
        asyncio.run(load(bootstrap, topic, probe_msgs))
        late = asyncio.run(lateness(bootstrap, env["CRM_DECISIONS_TOPIC"], due, window + 60))
        worker.check_alive()
    finally:
        worker.stop()
    if os.environ.get("CRM_STORE", "").startswith("rocksdb:"):
        restarted = Worker(broker_url, tag, env, workdir, partitions).start()  # same data dir
        try:
            recovery.local_restart_to_ready_seconds = restarted.wait_ready(recovery_timeout)
            time.sleep(1.5)  # gauges refresh once a second
            entries = restarted.metrics().get("crm_timer_index_entries", float("nan"))
            recovery.local_restart_index_entries = entries
        finally:
            restarted.stop()
    per_timer = (loaded - idle) * 1024 * 1024 / pending
    ten_m = idle + per_timer * TEN_MILLION / (1024 * 1024)
    total = memory_total_mb()
    if pending >= TEN_MILLION:
        ten_m = loaded
        reason = f"measured: {pending:,} pending timers"
    elif ten_m > total:
        reason = (
            f"extrapolated, not judged: ~{per_timer:,.0f} B per pending timer (customer "
            f"state included) x 10M = {ten_m / 1024:.1f} GiB RSS > {total / 1024:.1f} GiB of RAM"
        )
    else:
        reason = "extrapolated, not judged; would fit in RAM"
    if pending < TEN_MILLION:
        store = os.environ.get("CRM_STORE", "memory://")
        reason += f"; store {store} (`make bench-timers-10m` measures 10M on rocksdb://)"
    timers = TimersResult(
        pending=pending,
        timers_gauge=gauge,
        seed_rate=seed_rate,
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
    return timers, recovery
