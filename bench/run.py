"""`make bench`: every performance figure of crm-triggers, side by side, in one run.

    BENCH_SCALE=0.05 python bench/run.py

On the embedded broker: generate a realistic history, load it once, then
measure on that same topic the limit (raw aiokafka + orjson), the peer (Quix
Streams), the Faust baselines and crm-triggers with 1 and 2 workers, in rounds
(one run of each per round, so drift on a busy machine hits all alike);
then end-to-end latency at half the measured max (and the broker's own floor at
that rate: a relay that does nothing), the simulator, and a
worker's recovery of N customers' state, each with a pending timer, then its
RSS and timer lateness with them pending. Prints a table and
one `BENCH {json}` line. Environment: BENCH_SCALE (float, default 1),
BENCH_RUNS (default 3), BENCH_STAGES (comma list of throughput, latency,
simulator, timers; default all), BENCH_DIR (logs; default a new temp dir),
BENCH_PEER_PYTHON (the peer venv's python), BENCH_LATENCY_RATE (events/s for
the latency stage instead of half the measured max), BENCH_PRODUCER_LINGER_MS (the
latency stage's producer batching, default 5). The latency stage writes each sample
(send time, latency) to `latency-samples.csv` (the floor's to `relay-samples.csv`) in
BENCH_DIR.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baselines import Measured, run_core_loop, run_faust, run_peer
from latency import LatencyResult, run_latency, run_relay_latency
from limit import raw_consume
from new_topics import create_topics
from pipeline import run_pipeline
from report import bench_line, events_measured, render
from results import Results
from simulator_stage import run_simulator
from sizes import Sizes, sizes_from_env
from timers_recovery import TEN_MILLION, run_timers_and_recovery
from workloads import history, load, mix, to_messages, write_jsonl

from streams.compiled_core import core_kind
from streams.shell.embedded_broker import EmbeddedBroker

TOPIC = "bench.events"
STAGES = ("throughput", "latency", "simulator", "timers")
THROUGHPUT = [
    "limit_eps",
    "peer_eps",
    "faust_bare_eps",
    "faust_table_eps",
    "crm_1w_eps",
    "crm_2w_eps",
    "core_loop_eps",
    "core_loop_stateless_eps",
]
"""`core_loop*`: the design probe (`core_loop.py`), the core without Faust."""
DECIDED = ["crm_1w_decided_eps", "crm_2w_decided_eps"]
"""The pipeline's rates up to the orchestrator's last candidate (decisions made)."""
THROUGHPUT_ALL = [
    *THROUGHPUT,
    *DECIDED,
    "crm_2w_per_worker_eps",
    "ratio_crm_peer",
    "ratio_crm_limit",
    "ratio_crm_decided_peer",
    "ratio_core_loop_peer",
    "ratio_core_loop_stateless_peer",
]
LATENCY = ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_rate_achieved_eps"]
LATENCY_FLOOR = ["latency_floor_p50_ms", "latency_floor_p99_ms", "ratio_latency_p99_floor"]
TIMERS = [
    "timers_pending",
    "timers_rss_mb",
    "timers_bytes_per_timer",
    "timer_lateness_p50_s",
    "timer_lateness_p99_s",
    "timers_10m_rss_mb_extrapolated",
]
RECOVERY = ["recovery_seconds", "recovery_time_to_ready_s", "recovery_local_restart_to_ready_s"]


def create_topic(broker: EmbeddedBroker, sizes: Sizes) -> None:
    asyncio.run(_create_topic(broker.bootstrap, sizes.partitions))


async def _create_topic(bootstrap: str, partitions: int) -> None:
    # Explicit retention configs: Quix Streams reads `retention.ms` of its input topic
    # to configure its changelogs, and the embedded broker only describes configs
    # that were set at creation.
    config = {"retention.ms": "-1", "retention.bytes": "-1"}
    await create_topics(bootstrap, [TOPIC], partitions, config)


def throughput(
    res: Results, broker: EmbeddedBroker, sizes: Sizes, workdir: Path, events: int
) -> None:
    n = min(sizes.throughput_events, events)
    nf = min(sizes.faust_events, events)
    seconds = sizes.throughput_seconds
    res.figures.update(throughput_events=n, faust_events=nf)
    rebalanced: list[str] = []
    backlog: dict[int, list[float]] = {1: [], 2: []}

    def pipeline(workers: int, tag: str) -> Measured:
        run = run_pipeline(broker.url, TOPIC, n, seconds, workers, tag, workdir, sizes.partitions)
        if run.rebalanced:
            rebalanced.append(tag)
        backlog[workers].append(run.orchestrator_backlog)
        res.add_run(f"crm_{workers}w_decided_eps", run.decided_rate)
        return Measured(run.rate, run.events)

    measures: list[tuple[str, Callable[[str], Measured]]] = [
        (
            "limit_eps",
            lambda tag: Measured(asyncio.run(raw_consume(broker.bootstrap, TOPIC, n)), n),
        ),
        ("peer_eps", lambda tag: run_peer(broker.bootstrap, TOPIC, n, seconds, tag, workdir)),
        (
            "faust_bare_eps",
            lambda tag: run_faust(
                broker.url, TOPIC, nf, seconds, "bare", tag, workdir, sizes.partitions
            ),
        ),
        (
            "faust_table_eps",
            lambda tag: run_faust(
                broker.url, TOPIC, nf, seconds, "table", tag, workdir, sizes.partitions
            ),
        ),
        ("crm_1w_eps", lambda tag: pipeline(1, tag)),
        ("crm_2w_eps", lambda tag: pipeline(2, tag)),
        (
            "core_loop_eps",
            lambda tag: run_core_loop(
                broker.bootstrap, TOPIC, n, seconds, "whole", tag, workdir, sizes.partitions
            ),
        ),
        (
            "core_loop_stateless_eps",
            lambda tag: run_core_loop(
                broker.bootstrap, TOPIC, n, seconds, "none", tag, workdir, sizes.partitions
            ),
        ),
    ]
    for run in range(sizes.runs):
        for name, measure in measures:
            tag = f"{name.removesuffix('_eps').replace('_', '-')}-r{run}"
            with res.guard(name):
                value, measured = measure(tag)
                res.add_run(name, value)
                res.add_run(events_measured(name), measured)
                res.progress(
                    f"{name} run {run + 1}/{sizes.runs}: {value:,.0f} ev/s ({measured:,} events)"
                )
    res.settle_medians([*THROUGHPUT, *DECIDED], sizes.runs)
    res.settle_medians([events_measured(name) for name in THROUGHPUT], sizes.runs)
    if rebalanced:
        res.notes["crm_2w_eps"] = f"rebalance during {', '.join(rebalanced)}"
    for workers, values in backlog.items():
        if values:
            res.figures[f"crm_{workers}w_orchestrator_backlog"] = max(values)
    if "crm_2w_eps" in res.figures:
        res.figures["crm_2w_per_worker_eps"] = res.figures["crm_2w_eps"] / 2
    res.ratio("ratio_crm_peer", "crm_1w_eps", "peer_eps")
    res.ratio("ratio_crm_limit", "crm_1w_eps", "limit_eps")
    res.ratio("ratio_core_loop_peer", "core_loop_eps", "peer_eps")
    res.ratio("ratio_core_loop_stateless_peer", "core_loop_stateless_eps", "peer_eps")
    res.ratio("ratio_crm_decided_peer", "crm_1w_decided_eps", "peer_eps")


def latency(res: Results, sizes: Sizes, workdir: Path, events: list[dict[str, Any]]) -> None:
    # Half the single-worker max measured just before, decisions included (the
    # journey alone runs ahead of the orchestrator: half its rate would load the
    # whole pipeline at ~80%); BENCH_LATENCY_RATE pins the rate instead (e.g. to run
    # this stage alone).
    pinned = os.environ.get("BENCH_LATENCY_RATE")
    max_rate = (
        2 * float(pinned)
        if pinned
        else res.figures.get("crm_1w_decided_eps", res.figures.get("crm_1w_eps"))
    )
    if max_rate is None:
        raise RuntimeError("no single-worker max rate measured (throughput stage failed)")
    rate = max_rate / 2
    # Each on a broker of its own, started empty: the embedded broker slows down with
    # what it holds (README, "Embedded broker"), so neither may depend on what the
    # throughput stage or the other measurement left there.
    with (
        res.guard(*LATENCY_FLOOR),
        EmbeddedBroker(log_path=workdir / "tansu-relay.log") as broker,
    ):
        floor = run_relay_latency(
            broker.bootstrap,
            events,
            rate,
            sizes.latency_seconds,
            "relay",
            workdir,
            sizes.partitions,
        )
        res.figures.update(_latency_figures("latency_floor", floor))
        res.progress(
            f"latency floor (a relay doing nothing) at {floor.achieved_rate:,.0f} ev/s: "
            f"p50 {floor.p50_ms:.1f} ms, p99 {floor.p99_ms:.1f} ms ({floor.samples:,} events)"
        )
    with EmbeddedBroker(log_path=workdir / "tansu-latency.log") as broker:
        result = run_latency(
            broker.url,
            broker.bootstrap,
            events,
            rate,
            sizes.latency_seconds,
            "latency",
            workdir,
            sizes.partitions,
        )
    res.figures.update(
        latency_rate_target_eps=result.target_rate, **_latency_figures("latency", result)
    )
    res.progress(
        f"latency at {result.achieved_rate:,.0f} ev/s: p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms ({result.samples:,} decisions)"
    )
    # A floor that failed already holds its error under this ratio's name.
    res.ratio("ratio_latency_p99_floor", "latency_p99_ms", "latency_floor_p99_ms")


def _latency_figures(prefix: str, result: LatencyResult) -> dict[str, float]:
    return {
        f"{prefix}_rate_achieved_eps": result.achieved_rate,
        f"{prefix}_produced": result.produced,
        f"{prefix}_samples": result.samples,
        f"{prefix}_p50_ms": result.p50_ms,
        f"{prefix}_p95_ms": result.p95_ms,
        f"{prefix}_p99_ms": result.p99_ms,
        f"{prefix}_max_ms": result.max_ms,
        f"{prefix}_drift_ms": result.drift_ms,
    }


def timers_and_recovery(res: Results, sizes: Sizes, workdir: Path) -> None:
    with (
        EmbeddedBroker(log_path=workdir / "tansu-timers.log") as broker,
        res.guard(*TIMERS, *RECOVERY),
    ):
        result, recovery = run_timers_and_recovery(
            broker.url,
            broker.bootstrap,
            sizes.pending_timers,
            sizes.probe_timers,
            sizes.probe_window_seconds,
            "timers",
            workdir,
            sizes.partitions,
        )
        res.figures.update(
            recovery_customers=recovery.customers,
            recovery_keys=recovery.recovered_keys,
            recovery_seconds=recovery.recovery_seconds,
            recovery_time_to_ready_s=recovery.time_to_ready_seconds,
        )
        if recovery.local_restart_to_ready_seconds is not None:
            res.figures.update(
                recovery_local_restart_to_ready_s=recovery.local_restart_to_ready_seconds,
                recovery_local_restart_index_entries=recovery.local_restart_index_entries,
            )
            res.progress(
                f"restart on the RocksDB files: ready after "
                f"{recovery.local_restart_to_ready_seconds:.1f} s, "
                f"{recovery.local_restart_index_entries:,.0f} customers indexed"
            )
        else:
            res.skip(
                ["recovery_local_restart_to_ready_s"],
                "CRM_STORE=memory://: a restart reads the whole changelog (above)",
            )
        if recovery.recovered_keys < recovery.customers:
            res.notes["recovery_seconds"] = (
                f"INCOMPLETE: {recovery.recovered_keys:,.0f} of "
                f"{recovery.customers:,} customers recovered"
            )
        res.progress(
            f"recovery of {recovery.customers:,} customers: "
            f"{recovery.recovery_seconds:.1f} s, ready after "
            f"{recovery.time_to_ready_seconds:.1f} s"
        )
        res.figures.update(
            timers_pending=result.pending,
            timers_pending_gauge=result.timers_gauge,
            timers_seed_eps=result.seed_rate,
            timers_rss_idle_mb=result.rss_idle_mb,
            timers_rss_mb=result.rss_loaded_mb,
            timers_bytes_per_timer=result.bytes_per_timer,
            timers_probes=result.probes,
            timers_probes_fired=result.fired,
            timer_lateness_p50_s=result.lateness_p50_s,
            timer_lateness_p99_s=result.lateness_p99_s,
            timer_lateness_max_s=result.lateness_max_s,
            timers_10m_measured=result.pending >= TEN_MILLION,
            timers_10m_rss_mb_extrapolated=result.ten_million_rss_mb,
            timers_10m_reason=result.ten_million_reason,
        )
        res.progress(
            f"timers: {result.pending:,} pending, RSS {result.rss_loaded_mb:,.0f} MB, "
            f"lateness p99 {result.lateness_p99_s:.3f} s"
        )


def main() -> int:
    sizes = sizes_from_env()
    stages = set(os.environ.get("BENCH_STAGES", ",".join(STAGES)).split(","))
    workdir = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="crm-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    res = Results(workdir)
    res.figures.update(
        scale=sizes.scale, sizes=sizes.as_dict(), stages=sorted(stages), core=core_kind()
    )
    res.progress(
        f"BENCH_SCALE={sizes.scale} runs={sizes.runs} stages={sorted(stages)}; logs in {workdir}"
    )

    with res.timed("generate"):
        events = history(sizes.customers)
    res.figures.update(events_total=len(events), customers=sizes.customers, mix=mix(events))
    first = events[: min(sizes.throughput_events, len(events))]
    res.figures["customers_in_measured_prefix"] = len({e["customer_id"] for e in first})
    res.progress(f"history: {len(events):,} events of {sizes.customers:,} customers")

    if "throughput" in stages:
        with (
            res.guard("broker"),
            EmbeddedBroker(log_path=workdir / "tansu-main.log") as broker,
        ):
            # Every run reads at most the first N events of the topic: loading the
            # whole history (~50 s) only for them to sit there bought nothing. A
            # fifth more keeps every partition backlogged until a run's end.
            loaded = events[: round(max(sizes.throughput_events, sizes.faust_events) * 1.2)]
            with res.timed("load"):
                create_topic(broker, sizes)
                rate = asyncio.run(load(broker.bootstrap, TOPIC, to_messages(loaded)))
            res.figures.update(load_eps=rate, topic_events=len(loaded))
            res.progress(f"loaded the first {len(loaded):,} events at {rate:,.0f} ev/s")
            with res.timed("throughput"):
                throughput(res, broker, sizes, workdir, len(loaded))
            del loaded
        if "broker" in res.errors:
            res.mark_not_run(THROUGHPUT_ALL, res.errors["broker"])
    if "latency" in stages:
        with res.timed("latency"), res.guard(*LATENCY):
            latency(res, sizes, workdir, events)

    if "simulator" in stages:
        with res.timed("simulator"), res.guard("simulator_eps"):
            path = workdir / "history.jsonl"
            write_jsonl(events, path)
            total = len(events)
            # The history's dicts (GBs) are not needed from here on. Held during the
            # run, they made the simulator ~15% slower than the same command alone
            # (14.2-14.8 s against 11.6-12.5 s, 2026-12-07): measured as a user runs it.
            del events, first
            gc.collect()
            sim = run_simulator(path, total, workdir)
            res.figures.update(
                simulator_events=sim.events,
                simulator_seconds=sim.seconds,
                simulator_eps=sim.rate,
                simulator_jobs=sim.jobs,
            )
            res.progress(f"simulator: {sim.events:,} events in {sim.seconds:.1f} s")
    else:
        del events, first

    if "timers" in stages:
        with res.timed("timers+recovery"), res.guard("timers-broker"):
            timers_and_recovery(res, sizes, workdir)
        if "timers-broker" in res.errors:
            res.mark_not_run(TIMERS + RECOVERY, res.errors["timers-broker"])

    left_out = {
        "throughput": THROUGHPUT_ALL,
        "latency": LATENCY + LATENCY_FLOOR,
        "simulator": ["simulator_eps"],
        "timers": TIMERS + RECOVERY,
    }
    for stage, names in left_out.items():
        if stage not in stages:
            res.skip(names, f"stage {stage!r} not in BENCH_STAGES")
    res.figures["stage_seconds"] = res.stage_seconds
    res.figures["bench_seconds"] = round(res.elapsed(), 1)
    table, payload = render(res, sizes.scale)
    print(table)
    print(bench_line(payload), flush=True)
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
