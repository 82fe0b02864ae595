"""Chaos harness: real workers on the embedded broker, faults injected, results compared
with `crm-triggers simulate` on the same events.

The guarantee under test (README, "Delivery guarantees"): every trigger occurrence
gets exactly one final decision, with the outcome the simulator gives, and every
`sent` action reaches its channel topic at least once under the same `action_id`.
Redeliveries of the same record are counted and reported, never hidden.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import signal
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from streams.core.engine import load_engine
from streams.playbook import DEFAULT_RULES
from streams.shell.embedded_broker import EmbeddedBroker
from streams.simulator import simulate
from tests.integration.kafka_io import Deployment, WorkerProcess

FULL = os.environ.get("CHAOS_SCALE", "short") == "full"
"""`make chaos` runs the full scale; `make test` the short one."""

SETTLED_BEFORE = timedelta(hours=1)
"""Decisions dated later than now - 1 h are left out of comparisons: the workers'
wall clock moves on during a run and may fire timers the simulator has not reached."""


def deterministic_rules(path: Path) -> Path:
    """The default playbook with population learning off: learned intervals depend on
    which customers a worker happens to own (documented), everything else must not."""
    path.write_text(
        DEFAULT_RULES.read_text()
        .replace("learn_population: true", "learn_population: false")
        .replace("learn_consumption_cycles: true", "learn_consumption_cycles: false")
    )
    return path


def compressed_rules(path: Path, day_seconds: int) -> Path:
    """The default playbook with each day of its durations (delays, lifecycle lapses,
    caps, ttls, quiet gaps) lasting `day_seconds`, so that timers armed during a
    half-hour soak also fire in it and the state it keeps per customer reaches its
    steady size. Minutes, hours and weeks scale with the day."""
    unit_seconds = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

    def scaled(match: re.Match[str]) -> str:
        real = float(match.group(1)) * unit_seconds[match.group(2)]
        return f"{real / 86400 * day_seconds:g}s"

    text = re.sub(r"\b(\d+(?:\.\d+)?)([mhdw])\b", scaled, DEFAULT_RULES.read_text())
    path.write_text(text)
    return path


class TopicCollector:
    """Reads topics from the beginning in the background, as a downstream service would."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: list[ConsumerRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> TopicCollector:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            # Topics of a fresh deployment appear while the workers start.
            metadata_max_age_ms=2000,
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    self.records.extend(messages)
        finally:
            await consumer.stop()


@dataclass
class Cluster:
    """Worker processes of one deployment, started, killed and restarted like an operator
    (or an OOM killer) would."""

    deployment: Deployment
    work: Path
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)
    kills: int = 0
    restarts: int = 0
    peak_rss_mb: float = 0.0
    keep_data: bool = False
    """Each worker takes over the data dir of one that stopped (a persistent volume per
    replica, as a StatefulSet gives): a RocksDB store then restarts from local files."""
    _slots: dict[int, WorkerProcess] = field(default_factory=dict)

    def start(self) -> WorkerProcess:
        env = dict(self.env)
        if os.environ.get("CHAOS_FAUST_DIAGNOSTICS"):
            env["PYTHONPATH"] = str(Path(__file__).parent / "faust_diagnostics")
        data_dir = None
        if self.keep_data:
            slot = next(n for n in range(len(self._slots) + 1) if n not in self._slots)
            data_dir = self.work / f"data-slot-{slot}"
        worker = WorkerProcess(self.deployment, self.work, data_dir=data_dir, **env)
        if self.keep_data:
            self._slots[slot] = worker
        self.workers.append(worker)
        return worker

    def _leave(self, worker: WorkerProcess) -> None:
        self.workers.remove(worker)
        for slot, holder in list(self._slots.items()):
            if holder is worker:
                del self._slots[slot]  # the process is gone: its data dir is free

    def note_rss(self, worker: WorkerProcess) -> None:
        peak = worker.memory_mb("VmHWM")
        if peak is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, peak)

    def kill(self, worker: WorkerProcess) -> None:
        self.note_rss(worker)
        worker.stop(signal.SIGKILL)
        self._leave(worker)
        self.kills += 1

    def stop(self, worker: WorkerProcess) -> None:
        self.note_rss(worker)
        worker.stop()
        self._leave(worker)

    def restart_one(self) -> WorkerProcess:
        self.restarts += 1
        return self.start()

    def scale_to(self, count: int) -> None:
        while len(self.workers) < count:
            self.start()
        while len(self.workers) > count:
            self.stop(self.workers[-1])

    def alive(self) -> bool:
        return all(w.alive() for w in self.workers)

    def stop_all(self) -> None:
        for worker in list(self.workers):
            self.stop(worker)

    def log_tails(self) -> str:
        return "\n".join(w.log_tail(15) for w in self.workers)


def settled(decisions: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    cutoff = now - SETTLED_BEFORE
    return [d for d in decisions if datetime.fromisoformat(d["decided_at"]) <= cutoff]


def simulated_decisions(events_file: Path, rules_file: Path, now: datetime) -> list[dict[str, Any]]:
    """Every decision `crm-triggers simulate` makes on the events, up to `now`."""
    out = io.BytesIO()
    simulate(events_file, load_engine(rules_file.read_text()), now, out)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def expected_decisions(
    events_file: Path, rules_file: Path, now: datetime
) -> dict[str, tuple[str, str]]:
    """action_id -> (final outcome, decided_at) per the simulator."""
    return final_outcomes(settled(simulated_decisions(events_file, rules_file, now), now))


def final_outcomes(decisions: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """The last non-deferred decision per action_id (a deferral is not final)."""
    final: dict[str, tuple[str, str]] = {}
    for d in decisions:
        if d["outcome"] != "deferred":
            final[d["action_id"]] = (d["outcome"], d["decided_at"])
    return final


@dataclass
class Comparison:
    expected: int
    decided: int
    missing: list[str]
    conflicting: list[str]
    """Action ids with two different final outcomes in crm.decisions."""
    different: list[str]
    """Action ids whose final outcome differs from the simulator's."""
    unexpected: list[str]
    duplicate_decisions: int
    """Decision records beyond one per (action_id, outcome, decided_at): redeliveries."""
    sent_expected: int
    actions_missing: list[str]
    actions_unexpected: list[str]
    duplicate_actions: int
    """Action records beyond one per action_id (downstream dedupes them by id)."""
    missing_after_deferral: list[str] = field(default_factory=list)
    """Missing final decisions whose candidate was deferred (never released)."""

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.conflicting
            or self.different
            or self.unexpected
            or self.actions_missing
            or self.actions_unexpected
        )

    def explain(self) -> str:
        return (
            f"missing {len(self.missing)} {self.missing[:5]} (of which deferred and never "
            f"released: {len(self.missing_after_deferral)}), conflicting "
            f"{len(self.conflicting)} {self.conflicting[:5]}, different {len(self.different)} "
            f"{self.different[:5]}, unexpected {len(self.unexpected)} {self.unexpected[:5]}, "
            f"actions missing {len(self.actions_missing)} {self.actions_missing[:5]}, "
            f"actions unexpected {len(self.actions_unexpected)}"
        )


def compare(
    expected: dict[str, tuple[str, str]],
    decision_records: list[ConsumerRecord],
    action_records: list[ConsumerRecord],
    now: datetime,
) -> Comparison:
    published = settled((orjson.loads(r.value) for r in decision_records), now)
    outcomes: dict[str, set[str]] = defaultdict(set)
    copies = Counter((d["action_id"], d["outcome"], d["decided_at"]) for d in published)
    for d in published:
        if d["outcome"] != "deferred":
            outcomes[d["action_id"]].add(d["outcome"])
    got = final_outcomes(published)
    deferred = {d["action_id"] for d in published if d["outcome"] == "deferred"}
    sent_expected = {a for a, (outcome, _) in expected.items() if outcome == "sent"}
    actions = [orjson.loads(r.value)["action_id"] for r in action_records]
    action_ids = set(actions)
    # Every published action needs a `sent` decision, settled or not.
    sent_any = {
        d["action_id"]
        for d in (orjson.loads(r.value) for r in decision_records)
        if d["outcome"] == "sent"
    }
    return Comparison(
        expected=len(expected),
        decided=len(got),
        missing=sorted(set(expected) - set(got)),
        conflicting=sorted(a for a, seen in outcomes.items() if len(seen) > 1),
        different=sorted(
            f"{a} (simulator {expected[a]}, workers {got[a]})"
            for a in set(expected) & set(got)
            if expected[a][0] != got[a][0]
        ),
        unexpected=sorted(set(got) - set(expected)),
        duplicate_decisions=sum(n - 1 for n in copies.values()),
        sent_expected=len(sent_expected),
        actions_missing=sorted(sent_expected - action_ids),
        actions_unexpected=sorted(action_ids - sent_any),
        duplicate_actions=len(actions) - len(action_ids),
        missing_after_deferral=sorted((set(expected) - set(got)) & deferred),
    )


async def wait_for_decisions(
    collector: TopicCollector,
    expected: dict[str, tuple[str, str]],
    now: datetime,
    cluster: Cluster,
    timeout: float,
    idle: float = 120.0,
) -> None:
    """Until every expected action id has a final decision, the deadline, or `idle`
    seconds without a new one of them (what is missing by then stays missing: timers
    and deferrals of the history are all due already). Only expected ids count as
    progress: the workers' clock moves on, and timers of the replayed history coming
    due after `now` (outside the comparison) keep deciding for hours."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: set[str] = set()
    read = 0
    progress = loop.time()
    while loop.time() < deadline:
        records = collector.records
        before = len(seen)
        for record in records[read:]:
            d = orjson.loads(record.value)
            if d["outcome"] != "deferred" and d["action_id"] in expected:
                seen.add(d["action_id"])
        if len(seen) > before:
            progress = loop.time()
        read = len(records)
        if len(seen) == len(expected) or loop.time() - progress > idle:
            return
        if not cluster.alive():
            raise AssertionError(f"a worker died:\n{cluster.log_tails()}")
        await asyncio.sleep(1.0)
    # Deadline: return, and let the comparison say what is missing and why.


async def chaos_monkey(
    cluster: Cluster, kills: int, rng: random.Random, every: tuple[float, float]
) -> None:
    """SIGKILL a random worker `kills` times at random moments, restarting it at once."""
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(*every))
        victim = rng.choice(cluster.workers)
        cluster.kill(victim)
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        cluster.restart_one()


@dataclass
class Result:
    scenario: str
    events: int
    kills: int = 0
    restarts: int = 0
    comparison: Comparison | None = None
    dead_letters: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    notes: str = ""
    lag_at_end: list[float | None] = field(default_factory=list)
    """Each worker's crm_consumer_lag when the comparison was made (None: no answer)."""

    def explain(self) -> str:
        told = self.comparison.explain() if self.comparison else "not compared"
        return f"{told}; consumer lag of each worker at the end: {self.lag_at_end}"

    def row(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "scenario": self.scenario,
            "events": self.events,
            "kills": self.kills,
            "restarts": self.restarts,
            "decisions compared": c.expected if c else 0,
            "missing": len(c.missing) if c else 0,
            "conflicting": len(c.conflicting) + len(c.different) if c else 0,
            "duplicate decisions": c.duplicate_decisions if c else 0,
            "duplicate actions": c.duplicate_actions if c else 0,
            "dlq": sum(self.dead_letters.values()),
            "peak RSS MB": round(self.peak_rss_mb),
            "seconds": round(self.seconds),
        }


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def broker_pid(broker: EmbeddedBroker) -> int:
    process = getattr(broker, "process", None) or getattr(broker, "_process", None)
    assert process is not None, "embedded broker exposes no process"
    return int(process.pid)


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path
