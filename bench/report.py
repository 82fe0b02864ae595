"""The readable table and the one `BENCH {json}` line of a run.

Targets are the issue's; they are reported against, not enforced. A target
stated for a size (1M customers) is only judged at BENCH_SCALE >= 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from results import Results


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    fmt: str
    target: str = ""
    met: Callable[[float], bool] | None = None
    full_scale_only: bool = False
    judged_if: str = ""
    """A figure that must be true for a verdict: an extrapolation is not judged."""


ROWS = (
    Row("limit_eps", "limit: raw aiokafka + orjson", "{:,.0f} ev/s"),
    Row("peer_eps", "peer: Quix Streams stateful count", "{:,.0f} ev/s"),
    Row("faust_bare_eps", "Faust: bare agent", "{:,.0f} ev/s"),
    Row("faust_table_eps", "Faust: + 1 table write/event", "{:,.0f} ev/s"),
    Row("crm_1w_eps", "crm-triggers: 1 worker", "{:,.0f} ev/s"),
    Row("crm_2w_eps", "crm-triggers: 2 workers (total)", "{:,.0f} ev/s"),
    Row("crm_2w_per_worker_eps", "crm-triggers: 2 workers, per worker", "{:,.0f} ev/s"),
    Row("crm_1w_decided_eps", "crm 1 worker, until all decided", "{:,.0f} ev/s"),
    Row("crm_2w_decided_eps", "crm 2 workers, until all decided", "{:,.0f} ev/s"),
    Row("ratio_crm_peer", "ratio crm 1 worker / peer", "{:.3f}", ">= 0.5", lambda v: v >= 0.5),
    Row(
        "ratio_crm_decided_peer",
        "ratio crm 1 worker, all decided / peer",
        "{:.3f}",
        ">= 0.5",
        lambda v: v >= 0.5,
    ),
    Row("ratio_crm_limit", "ratio crm 1 worker / limit", "{:.4f}"),
    Row("core_loop_eps", "probe: core in an aiokafka loop, no Faust", "{:,.0f} ev/s"),
    Row("core_loop_stateless_eps", "probe: same, no state writes", "{:,.0f} ev/s"),
    Row("ratio_core_loop_peer", "ratio probe / peer", "{:.3f}"),
    Row("ratio_core_loop_stateless_peer", "ratio probe, no state writes / peer", "{:.3f}"),
    Row("latency_rate_achieved_eps", "latency: produced rate", "{:,.0f} ev/s"),
    Row("latency_p50_ms", "latency p50 (produce -> decision)", "{:,.1f} ms"),
    Row("latency_p95_ms", "latency p95", "{:,.1f} ms"),
    Row("latency_p99_ms", "latency p99", "{:,.1f} ms", "<= 50 ms", lambda v: v <= 50),
    Row("latency_floor_p50_ms", "latency floor p50 (relay doing nothing)", "{:,.1f} ms"),
    Row("latency_floor_p99_ms", "latency floor p99", "{:,.1f} ms"),
    Row("ratio_latency_p99_floor", "ratio latency p99 crm / floor", "{:.2f}"),
    Row("timers_pending", "timers: pending", "{:,.0f}"),
    Row("timers_rss_mb", "timers: worker RSS loaded", "{:,.0f} MB"),
    Row("timers_bytes_per_timer", "timers: bytes per pending timer", "{:,.0f} B"),
    Row("timer_lateness_p50_s", "timer lateness p50", "{:.3f} s"),
    Row("timer_lateness_p99_s", "timer lateness p99", "{:.3f} s", "<= 1 s", lambda v: v <= 1),
    Row(
        "timers_10m_rss_mb_extrapolated",
        "10M timers RSS (see note: extrapolated or measured)",
        "{:,.0f} MB",
        "<= 2048 MB",
        lambda v: v <= 2048,
        judged_if="timers_10m_measured",
    ),
    Row("simulator_eps", "simulator", "{:,.0f} ev/s", ">= 200k ev/s", lambda v: v >= 200_000),
    Row(
        "recovery_seconds",
        "recovery (crm_recovery_last_duration)",
        "{:,.1f} s",
        "<= 60 s",
        lambda v: v <= 60,
        full_scale_only=True,
    ),
    Row("recovery_time_to_ready_s", "restart to /health/ready", "{:,.1f} s"),
    Row(
        "recovery_local_restart_to_ready_s",
        "restart on its RocksDB files to ready",
        "{:,.1f} s",
    ),
)

DETAILS: dict[str, Callable[[dict[str, Any]], str]] = {
    "limit_eps": lambda f: _events(f, "limit_eps"),
    "peer_eps": lambda f: _events(f, "peer_eps"),
    "faust_bare_eps": lambda f: _events(f, "faust_bare_eps"),
    "faust_table_eps": lambda f: _events(f, "faust_table_eps"),
    "crm_1w_eps": lambda f: _joined(_events(f, "crm_1w_eps"), _backlog(f, 1)),
    "crm_2w_eps": lambda f: _joined(_events(f, "crm_2w_eps"), _backlog(f, 2)),
    "latency_p50_ms": lambda f: (
        f"drift {f['latency_drift_ms']:+,.0f} ms (last fifth - first fifth)"
        if "latency_drift_ms" in f
        else ""
    ),
    "latency_rate_achieved_eps": lambda f: (
        f"target {f.get('latency_rate_target_eps', 0):,.0f} (50% of 1 worker, all decided)"
    ),
    "latency_p99_ms": lambda f: f"{f.get('latency_samples', 0):,} decisions",
    "core_loop_eps": lambda f: _joined(
        _events(f, "core_loop_eps"), "upper bound of a design without Faust: see core_loop.py"
    ),
    "core_loop_stateless_eps": lambda f: _events(f, "core_loop_stateless_eps"),
    "latency_floor_p50_ms": lambda f: (
        f"drift {f['latency_floor_drift_ms']:+,.0f} ms; same rate, on a broker of its own"
        if "latency_floor_drift_ms" in f
        else ""
    ),
    "latency_floor_p99_ms": lambda f: f"{f.get('latency_floor_samples', 0):,} events",
    "timer_lateness_p99_s": lambda f: (
        f"{f.get('timers_probes_fired', 0):,}/{f.get('timers_probes', 0):,} probes fired"
    ),
    "timers_10m_rss_mb_extrapolated": lambda f: str(f.get("timers_10m_reason", "")),
    "simulator_eps": lambda f: (
        f"{f.get('simulator_events', 0):,} events, {f.get('simulator_jobs', 0)} jobs"
    ),
    "recovery_local_restart_to_ready_s": lambda f: (
        f"{f.get('recovery_local_restart_index_entries', 0):,.0f} customers indexed"
    ),
    "recovery_seconds": lambda f: (
        f"{f.get('recovery_customers', 0):,} customers, "
        f"{f.get('recovery_keys', 0):,.0f} keys recovered"
    ),
}


def events_measured(name: str) -> str:
    """The figure of how many events a contender's runs measured (median): N, or fewer
    where a run reached `Sizes.throughput_seconds` first."""
    return name.removesuffix("_eps") + "_events"


def _events(figures: dict[str, Any], name: str) -> str:
    key = events_measured(name)
    return f"{figures[key]:,.0f} events/run" if key in figures else ""


def _joined(*details: str) -> str:
    return "; ".join(detail for detail in details if detail)


def _backlog(figures: dict[str, Any], workers: int) -> str:
    key = f"crm_{workers}w_orchestrator_backlog"
    return f"orchestrator backlog at cut <= {figures[key]:,.0f}" if key in figures else ""


def _verdict(row: Row, value: float, scale: float, figures: dict[str, Any]) -> bool | None:
    if row.met is None or math.isnan(value):
        return None
    if row.full_scale_only and scale < 1:
        return None
    if row.judged_if and not figures.get(row.judged_if):
        return None
    return row.met(value)


def render(results: Results, scale: float) -> tuple[str, dict[str, Any]]:
    figures = results.figures
    lines = []
    if "events_total" in figures:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in list(figures["mix"].items())[:6])
        lines.append(
            f"workload: {figures['events_total']:,} events of {figures['customers']:,} "
            f"customers over 90 days ({shares}, ...); default playbook and policy"
        )
    if "throughput_events" in figures:
        lines.append(
            f"throughput: first {figures['throughput_events']:,} events of the topic "
            f"(~{figures.get('customers_in_measured_prefix', 0):,} customers), Faust "
            f"baselines {figures['faust_events']:,}, or {figures['sizes']['throughput_seconds']:g}"
            f" s from a run's first event if sooner; median of {figures['sizes']['runs']} runs"
        )
    if "core" in figures:
        lines.append(f"core: {figures['core']} (setup.py; CRM_COMPILE=0 installs it uncompiled)")
    header = f"{'figure':<40} {'value':>16}  {'target':<13} {'met':<4} detail"
    lines.append(header)
    lines.append("-" * len(header))
    targets: dict[str, Any] = {}
    for row in ROWS:
        detail = DETAILS.get(row.key, lambda f: "")(figures)
        if row.key in figures:
            value = float(figures[row.key])
            shown = row.fmt.format(value)
            verdict = _verdict(row, value, scale, figures)
            runs = results.runs.get(row.key)
            if runs and len(runs) > 1:
                detail = f"median of {[round(r) for r in runs]} {detail}".rstrip()
            if row.key in results.notes:
                detail = f"{detail} ({results.notes[row.key]})".strip()
        elif row.key in results.skipped:
            shown, verdict, detail = "skipped", None, results.skipped[row.key]
        else:
            shown, verdict = "ERROR", None
            detail = results.errors.get(row.key, "missing")
        met = {True: "yes", False: "NO", None: ""}[verdict]
        if row.target:
            targets[row.key] = {"target": row.target, "met": verdict}
        lines.append(f"{row.label:<40} {shown:>16}  {row.target:<13} {met:<4} {detail}")
    payload = {
        **figures,
        "targets": targets,
        "runs": results.runs,
        "notes": results.notes,
        "errors": results.errors,
        "skipped": sorted(results.skipped),
    }
    return "\n".join(lines), payload


def bench_line(payload: dict[str, Any]) -> str:
    # NaN is not JSON: orjson writes null, which is what a reader should see.
    return "BENCH " + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
