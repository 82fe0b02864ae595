"""End-to-end latency: produce time -> decision published on the decisions topic.

One worker (default playbook) on a fresh, empty events topic; once it answers
/health/ready, the history's events are produced at a steady paced rate (half
the measured single-worker max) with `occurred_at` = now, so they are decided
live rather than expired as a replay. For every event that leads to a decision
at once (a registration's welcome, an order's thanks, ...), latency is the
decision record's Kafka timestamp (stamped by the worker's producer when it
publishes) minus the wall-clock time just before our `send()`: both clocks are
this machine's. Our own producer's batching is part of the path, as for any
client: it waits up to `BENCH_PRODUCER_LINGER_MS` (5, the default of Kafka's own
clients since 4.0 and of librdkafka) to batch records, as a producer at thousands of
events/s does. Production starts with a warm-up at the same rate (a quarter of the
window, at least 3 s) whose events are not sampled: a fresh worker's first
events are slow (imports, first state, first fetches) and the backlog they
leave would otherwise be measured instead of the steady state.

The same measurement through `relay.py` (a process that only forwards each event) is
the floor: what the broker and the Kafka clients take at that rate on their own.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from child import die_with_parent, stop
from new_topics import create_topics
from workers import Worker, topic_env

PRODUCER_LINGER_MS = int(os.environ.get("BENCH_PRODUCER_LINGER_MS", "5"))
"""With 0, every record went in a batch of its own (~2,650 batches/s at 2.65k events/s),
and the embedded broker's fetches slow down with the batches a partition holds
(README, "Embedded broker"): over a 20 s window the median latency grew from 10 to 78 ms
while the worker was busy 26% of the time. The tail measured the broker, not us."""
QUIET_SECONDS = 5.0
"""Stop waiting once producing has ended and no decision came for this long: a worker
behind by more than this still delivers (any decision, sampled or not, resets it)."""


@dataclass
class LatencyResult:
    target_rate: float
    achieved_rate: float
    produced: int
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    drift_ms: float
    """Median latency of the last fifth of the events minus the first fifth's: near 0
    when the worker keeps up; growing means the rate was above its capacity."""


def live_events(history: list[dict[str, Any]], tag: str) -> Iterator[dict[str, Any]]:
    """The history's events in order with fresh ids (cycled if the run needs more)."""
    lap = 0
    while True:
        for n, event in enumerate(history):
            customer = event["customer_id"] if lap == 0 else f"{event['customer_id']}-{lap}"
            yield {**event, "event_id": f"{tag}-{lap}-{n}", "customer_id": customer}
        lap += 1


async def produce_paced(
    bootstrap: str,
    topic: str,
    events: Iterator[dict[str, Any]],
    rate: float,
    warmup: float,
    seconds: float,
    sent_at: dict[str, float],
) -> tuple[int, float]:
    """Produces for warmup + seconds; fills `sent_at` (event id -> produce wall time)
    for events after the warm-up as they go out, so decisions can be matched while
    producing; returns (produced, events/s)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=PRODUCER_LINGER_MS)
    await producer.start()
    sent = 0
    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < warmup + seconds:
            while sent < int(elapsed * rate):
                event = next(events)
                now = time.time()
                event["occurred_at"] = datetime.fromtimestamp(now, UTC).isoformat()
                if elapsed >= warmup:
                    sent_at[event["event_id"]] = now
                await producer.send(
                    topic, key=event["customer_id"].encode(), value=orjson.dumps(event)
                )
                sent += 1
            await asyncio.sleep(0.002)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, sent / (time.perf_counter() - started)


async def collect_decisions(
    bootstrap: str,
    topic: str,
    sent_at: dict[str, float],
    producing: asyncio.Future[Any],
    timeout: float,
) -> list[tuple[float, float]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    latencies: dict[str, tuple[float, float]] = {}  # (sent at, latency); ~ produce order
    last_seen = 0.0  # last decision of any kind (warm-up ones too)
    ended = 0.0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if producing.done():
                ended = ended or time.monotonic()
                if time.monotonic() - max(last_seen, ended) > QUIET_SECONDS:
                    break
            for records in (await consumer.getmany(timeout_ms=200)).values():
                last_seen = time.monotonic()
                for record in records:
                    event_id = orjson.loads(record.value).get("event_id")
                    at = sent_at.get(event_id) if event_id else None
                    if at is not None and event_id not in latencies:
                        latencies[event_id] = (at, record.timestamp / 1000 - at)
    finally:
        await consumer.stop()
    return list(latencies.values())


async def _measure(
    bootstrap: str,
    topic: str,
    decisions: str,
    events: Iterator[dict[str, Any]],
    rate: float,
    seconds: float,
) -> tuple[list[tuple[float, float]], int, float]:
    sent_at: dict[str, float] = {}
    warmup = max(3.0, seconds / 4)
    producing = asyncio.ensure_future(
        produce_paced(bootstrap, topic, events, rate, warmup, seconds, sent_at)
    )
    latencies = await collect_decisions(
        bootstrap, decisions, sent_at, producing, warmup + seconds + 120
    )
    produced, achieved = await producing
    return latencies, produced, achieved


def percentile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) < 2:
        return sorted_values[0] if sorted_values else float("nan")
    return statistics.quantiles(sorted_values, n=1000, method="inclusive")[round(q * 1000) - 1]


def run_latency(
    broker_url: str,
    bootstrap: str,
    history: list[dict[str, Any]],
    rate: float,
    seconds: float,
    tag: str,
    workdir: Path,
    partitions: int,
) -> LatencyResult:
    topic = f"{tag}.events"
    env = topic_env(tag, topic)
    worker = Worker(broker_url, tag, env, workdir, partitions).start()
    try:
        worker.wait_ready()
        result = _sample(bootstrap, topic, env["CRM_DECISIONS_TOPIC"], history, rate, seconds, tag)
        worker.check_alive()
    finally:
        worker.stop()
    return _summary(result, rate, workdir / f"{tag}-samples.csv", worker.log_path)


def run_relay_latency(
    bootstrap: str,
    history: list[dict[str, Any]],
    rate: float,
    seconds: float,
    tag: str,
    workdir: Path,
    partitions: int,
) -> LatencyResult:
    """The same measurement through `relay.py` instead of a worker: every event is
    sampled (its relayed copy carries its event id), on fresh topics of its own."""
    topic, output = f"{tag}.events", f"{tag}.relayed"
    asyncio.run(create_topics(bootstrap, [topic, output], partitions))
    log_path = workdir / f"{tag}.log"
    with log_path.open("ab") as log:
        relay = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("relay.py")), bootstrap, topic, output],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        assert relay.stdout is not None
        if relay.stdout.readline().strip() != b"relaying":
            raise RuntimeError(f"the relay did not start; see {log_path}")
        result = _sample(bootstrap, topic, output, history, rate, seconds, tag)
        if relay.poll() is not None:
            raise RuntimeError(f"the relay exited ({relay.returncode}); see {log_path}")
    finally:
        stop(relay)
    return _summary(result, rate, workdir / f"{tag}-samples.csv", log_path)


Sampled = tuple[list[tuple[float, float]], int, float]
"""(send time, latency) per sampled event, events produced, events/s achieved."""


def _sample(
    bootstrap: str,
    topic: str,
    output: str,
    history: list[dict[str, Any]],
    rate: float,
    seconds: float,
    tag: str,
) -> Sampled:
    return asyncio.run(_measure(bootstrap, topic, output, live_events(history, tag), rate, seconds))


def _summary(sampled: Sampled, rate: float, csv: Path, log_path: Path) -> LatencyResult:
    samples, produced, achieved = sampled
    if not samples:
        raise RuntimeError(f"no output record matched any of {produced} events; see {log_path}")
    # Each sample, to see when the slow ones happened (a burst, a period, a drift).
    with csv.open("w") as handle:
        handle.write("sent_at_unix,latency_ms\n")
        handle.writelines(f"{at:.6f},{latency * 1000:.3f}\n" for at, latency in samples)
    latencies = [latency for _, latency in samples]
    fifth = max(1, len(latencies) // 5)
    drift = statistics.median(latencies[-fifth:]) - statistics.median(latencies[:fifth])
    latencies.sort()
    return LatencyResult(
        target_rate=rate,
        achieved_rate=achieved,
        produced=produced,
        samples=len(latencies),
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=latencies[-1] * 1000,
        drift_ms=drift * 1000,
    )
