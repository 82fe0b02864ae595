"""Pending timers per worker vs RSS, and fire lateness with that many pending.

Arms N timers due far in the future (one customer each, through a `before` rule
whose date comes from the event), measures the worker's RSS once they are all
processed, then arms P probe timers due over the next ~30 s and measures how late
each fires: the candidate's Kafka timestamp (set by the worker when it publishes)
minus its due time.

    python bench/timers_scale.py --pending 1000000 --probes 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from journey_throughput import load  # bench/ is on sys.path when run as a script
from workers import parse_metrics

from streams.settings import Settings
from streams.shell.embedded_broker import EmbeddedBroker, free_port
from streams.shell.topics import ensure_topics

RULES = """
version: 1
rules:
  - id: probe
    kind: before
    on: timer.arm
    date: due
    before: 0s
    channels: [email]
    template: probe
    category: service
"""
PARTITIONS = 8


def metric(port: int, name: str) -> float:
    """Sum of the series of `name` (a full series such as 'x{a="b"}' reads one): since
    events are counted per type, the first series alone never reached the total."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        return parse_metrics(response.read().decode()).get(name, 0.0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def arm(customer: str, due: datetime, now: datetime, n: int) -> tuple[bytes, bytes]:
    value = {
        "event_id": f"arm-{n}",
        "type": "timer.arm",
        "customer_id": customer,
        "occurred_at": now.isoformat(),
        "properties": {"due": due.isoformat()},
    }
    return customer.encode(), orjson.dumps(value)


async def lateness(
    bootstrap: str, topic: str, due: dict[bytes, datetime], timeout: float
) -> list[float]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    late: dict[bytes, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(late) < len(due) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key in due and record.key not in late:
                        late[record.key] = record.timestamp / 1000 - due[record.key].timestamp()
    finally:
        await consumer.stop()
    return sorted(late.values())


def wait_processed(port: int, proc: subprocess.Popen[bytes], n: int) -> float:
    started = time.monotonic()
    while metric(port, "crm_events_consumed_total") < n:
        if proc.poll() is not None:
            raise RuntimeError("worker died")
        time.sleep(0.5)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=2_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crm-timers-"))
    rules = work / "rules.yaml"
    rules.write_text(RULES)
    with EmbeddedBroker(log_path=work / "tansu.log") as broker:
        settings = Settings(broker=broker.url, partitions=PARTITIONS)
        asyncio.run(ensure_topics(settings))
        port = free_port()
        env = {
            **os.environ,
            "CRM_BROKER": broker.url,
            "CRM_PARTITIONS": str(PARTITIONS),
            "CRM_RULES_FILE": str(rules),
        }
        log = open(work / "worker.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams",
                "worker",
                "--web-port",
                str(port),
                "--data-dir",
                str(work / "data"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while True:
                try:
                    metric(port, 'crm_table_keys{table="customers"}')
                    break
                except OSError:
                    time.sleep(0.2)
            base = rss_mb(proc.pid)
            now = datetime.now(UTC)
            far = now + timedelta(days=1)
            batch = [arm(f"c-{i}", far, now, i) for i in range(args.pending)]
            asyncio.run(load(broker.bootstrap, settings.events_topic, batch))
            del batch
            took = wait_processed(port, proc, args.pending)
            time.sleep(1.0)
            loaded = rss_mb(proc.pid)
            entries = metric(port, "crm_timer_index_entries")
            start = datetime.now(UTC) + timedelta(seconds=5)
            due = {
                f"p-{i}".encode(): start + timedelta(seconds=30 * i / args.probes)
                for i in range(args.probes)
            }
            probes = [
                arm(k.decode(), d, datetime.now(UTC), args.pending + i)
                for i, (k, d) in enumerate(due.items())
            ]
            asyncio.run(load(broker.bootstrap, settings.events_topic, probes))
            late = asyncio.run(lateness(broker.bootstrap, settings.decisions_topic, due, 120))
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    q = statistics.quantiles(late, n=100) if len(late) >= 2 else [float("nan")] * 99
    print(
        f"pending timers {args.pending:,} (index entries {entries:,.0f}), "
        f"armed in {took:.0f} s ({args.pending / took:,.0f} events/s)"
    )
    print(
        f"worker RSS: {base:.0f} MB idle -> {loaded:.0f} MB loaded: "
        f"{(loaded - base) * 1024 * 1024 / max(args.pending, 1):,.0f} bytes per pending timer"
    )
    print(
        f"probe timers fired {len(late)}/{args.probes}; lateness p50 {q[49]:.3f} s, "
        f"p99 {q[98]:.3f} s, max {max(late) if late else float('nan'):.3f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
