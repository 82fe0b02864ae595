"""How big each stage of `make bench` is, derived from BENCH_SCALE (default 1.0).

One place for every count so the table can say what was measured. The default
sizes keep the whole run under ~10 minutes on a 2-core machine: the throughput
stages measure a prefix of the shared topic (Faust's table baseline alone would
take minutes on the full million events), the rest run at the sizes the issue names.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# The realistic history yields ~14 events per customer over 90 days: 100k
# customers give ~1.4M events, the simulator's input and the topic's content.
PARTITIONS = 8


@dataclass(frozen=True)
class Sizes:
    scale: float
    runs: int
    customers: int
    """Customers in the generated history (topic `bench.events` and the simulator file)."""
    throughput_events: int
    """Events each run of limit, peer and crm-triggers measures (a prefix of the topic)."""
    faust_events: int
    """Events each run of the two Faust baselines measures (smaller: ~4k/s with a table)."""
    throughput_seconds: float
    """At most this long from a run's first event: a run stops at its N-th event or then,
    whichever comes first (`rate_window`), so a slow day does not make the bench longer."""
    latency_seconds: float
    """How long events are produced at half the measured max rate."""
    pending_timers: int
    """Timers armed (one customer each) for RSS, lateness and, after a restart, recovery."""
    probe_timers: int
    probe_window_seconds: float
    partitions: int = PARTITIONS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sizes_from_env() -> Sizes:
    scale = float(os.environ.get("BENCH_SCALE", "1.0"))
    if scale <= 0:
        raise ValueError("BENCH_SCALE must be > 0")
    runs = int(os.environ.get("BENCH_RUNS", "3"))

    def scaled(n: float, floor: int) -> int:
        return max(floor, round(n * scale))

    sizes = Sizes(
        scale=scale,
        runs=max(1, runs),
        customers=scaled(100_000, 100),
        throughput_events=scaled(100_000, 1_000),
        faust_events=scaled(50_000, 1_000),
        throughput_seconds=max(5.0, 12.0 * scale),
        latency_seconds=max(5.0, 20.0 * scale),
        pending_timers=scaled(1_000_000, 1_000),
        probe_timers=scaled(2_000, 100),
        probe_window_seconds=max(5.0, 20.0 * scale),
    )
    # BENCH_<FIELD> (e.g. BENCH_PENDING_TIMERS=200000) sets one size outright, to trade
    # a figure's size for time without scaling everything else.
    overrides: dict[str, Any] = {}
    for field in fields(Sizes):
        raw = os.environ.get(f"BENCH_{field.name.upper()}")
        if raw is not None and field.name not in ("scale", "runs"):
            overrides[field.name] = float(raw) if field.type == "float" else int(raw)
    return replace(sizes, **overrides)
