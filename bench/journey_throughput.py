"""Journey agent throughput on the embedded broker, side by side with raw aiokafka.

Not the full benchmark (that is `make bench`, a later issue): a quick harness
that pre-loads N generated events, then times (a) a raw aiokafka consumer that
decodes every value with orjson, the ceiling, and (b) a `crm-triggers worker`
process draining the same topic, measured from its first processed event to its
last through its /metrics counters. Each is run RUNS times; medians are printed.

    python bench/journey_throughput.py [--events 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.settings import Settings
from streams.shell.embedded_broker import EmbeddedBroker, free_port
from streams.shell.topics import ensure_topics

PARTITIONS = 8


def generate(n: int, customers: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=1)
    out: list[tuple[bytes, bytes]] = []
    for i in range(n):
        cid = f"c-{rng.randrange(customers)}"
        at = (start + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        roll = rng.random()
        if roll < 0.60:
            kind, props = "page_view", {"url": f"/p/{rng.randrange(500)}"}
        elif roll < 0.78:
            kind, props = "visit", {"channel": "web"}
        elif roll < 0.88:
            kind, props = (
                "product_viewed",
                {"sku": f"sku-{rng.randrange(300)}", "category": "motor_oil", "price": 19.9},
            )
        elif roll < 0.94:
            kind, props = (
                "cart_updated",
                {
                    "items": [
                        {"sku": "oil-4l", "category": "motor_oil", "quantity": 1, "price": 39.9}
                    ]
                },
            )
        elif roll < 0.97:
            kind, props = "registered", {"email": f"{cid}@example.org"}
        else:
            kind, props = "order_placed", {"order_id": f"o-{i}", "amount": 39.9, "currency": "EUR"}
        value = {
            "event_id": f"e-{i}",
            "type": kind,
            "customer_id": cid,
            "occurred_at": at,
            "properties": props,
        }
        out.append((cid.encode(), orjson.dumps(value)))
    return out


async def load(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < n:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - started)


def processed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(
            (
                "crm_events_consumed_total{",
                "crm_events_rejected_total{",
                "crm_events_duplicate_total ",
            )
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def worker_run(broker: EmbeddedBroker, topic: str, n: int, run: int, workdir: Path) -> float:
    port = free_port()
    env = {
        **os.environ,
        "CRM_BROKER": broker.url,
        "CRM_APP_ID": f"bench-{run}-{port}",
        "CRM_EVENTS_TOPIC": topic,
        "CRM_PARTITIONS": str(PARTITIONS),
        "CRM_DLQ_TOPIC": "bench.dlq",
        "CRM_CANDIDATES_TOPIC": "bench.candidates",
    }
    log = open(workdir / f"worker-{run}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams",
            "worker",
            "--web-port",
            str(port),
            "--data-dir",
            str(workdir / f"data-{run}"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        first_at: float | None = None
        first_count = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker died, see {log.name}")
            try:
                count = processed(port)
            except OSError:
                count = 0.0
            now = time.perf_counter()
            if count > 0 and first_at is None:
                first_at, first_count = now, count
            if count >= n and first_at is not None:
                return (count - first_count) / (now - first_at)
            time.sleep(0.05)
        raise RuntimeError("worker did not finish in time")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
        topic = "bench.events"
        settings = Settings(
            broker=broker.url,
            events_topic=topic,
            partitions=PARTITIONS,
            dlq_topic="bench.dlq",
            candidates_topic="bench.candidates",
        )
        asyncio.run(ensure_topics(settings))
        messages = generate(args.events, args.customers)
        asyncio.run(load(broker.bootstrap, topic, messages))
        raw, journey = [], []
        for run in range(args.runs):
            raw.append(asyncio.run(raw_consume(broker.bootstrap, topic, args.events)))
            journey.append(worker_run(broker, topic, args.events, run, workdir))
            print(
                f"run {run}: raw aiokafka+orjson {raw[-1]:,.0f}/s  "
                f"journey worker {journey[-1]:,.0f}/s",
                flush=True,
            )
    r, j = statistics.median(raw), statistics.median(journey)
    print(
        f"median of {args.runs}: raw {r:,.0f} events/s, journey worker {j:,.0f} events/s, "
        f"ratio {j / r:.3f} ({args.events:,} events, {args.customers:,} customers, "
        f"{PARTITIONS} partitions)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
