"""Test helpers that talk to the broker the way an outside user would: plain aiokafka."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from streams.shell.embedded_broker import WORKER_ENV, EmbeddedBroker, free_port


@dataclass
class Deployment:
    """Unique topic names and app id, so tests sharing one broker do not see each other."""

    broker: EmbeddedBroker
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    partitions: int = 4

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-crm"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.events.dlq"

    @property
    def candidates(self) -> str:
        return f"{self.prefix}.candidates"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}.decisions"

    @property
    def actions_prefix(self) -> str:
        return f"{self.prefix}.actions."

    @property
    def feedback(self) -> str:
        return f"{self.prefix}.feedback"

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-customers-changelog"

    @property
    def contacts_changelog(self) -> str:
        return f"{self.app_id}-contacts-changelog"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "CRM_BROKER": self.broker.url,
            "CRM_APP_ID": self.app_id,
            "CRM_EVENTS_TOPIC": self.events,
            "CRM_DLQ_TOPIC": self.dlq,
            "CRM_CANDIDATES_TOPIC": self.candidates,
            "CRM_DECISIONS_TOPIC": self.decisions,
            "CRM_ACTIONS_TOPIC_PREFIX": self.actions_prefix,
            "CRM_FEEDBACK_TOPIC": self.feedback,
            "CRM_TIMERS_TOPIC": f"{self.prefix}.timers",
            "CRM_PARTITIONS": str(self.partitions),
            **WORKER_ENV,
            **extra,
        }


class WorkerProcess:
    """`crm-triggers worker` as a real OS process, as an operator would run it."""

    def __init__(
        self, deployment: Deployment, log_dir: Path, data_dir: Path | None = None, **env: str
    ) -> None:
        """`data_dir`: the worker's local table storage, kept across restarts as an
        operator's volume would be (default: a new one per worker)."""
        self.web_port = free_port()
        self.log_path = log_dir / f"worker-{self.web_port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams",
                "worker",
                "--web-port",
                str(self.web_port),
                "--data-dir",
                str(data_dir or log_dir / f"data-{self.web_port}"),
            ],
            env=deployment.env(**env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = self.get("/health/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

    def metric(self, name: str) -> float | None:
        """Sum of the series of `name` on /metrics (a full series such as
        'crm_table_keys{table="customers"}' reads one); None if /metrics does not answer."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith((name + " ", name + "{"))
        )

    def memory_mb(self, field: str = "VmRSS") -> float | None:
        """A memory figure of the process from /proc (VmRSS now, VmHWM the peak)."""
        return process_rss_mb(self.process, field)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode


async def wait_for_gauge(
    worker: WorkerProcess, name: str, expected: float, timeout: float
) -> float:
    """Poll the worker's /metrics until `name` reads `expected`, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = worker.metric(name)
        if value == expected:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} = {value}, expected {expected}\n{worker.log_tail()}")


def ts(at: datetime) -> str:
    """An event time as producers write it: RFC 3339 UTC with microseconds."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(
    customer_id: str, event_type: str, event_id: str, occurred_at: str, **properties: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "properties": properties,
    }


async def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    count = 0
    try:
        for key, value in messages:
            await producer.send(topic, key=key, value=value)
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


def as_message(evt: dict[str, Any]) -> tuple[bytes, bytes]:
    return str(evt["customer_id"]).encode(), orjson.dumps(evt)


async def consume_until(
    bootstrap: str,
    topics: list[str],
    done: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 60.0,
) -> list[ConsumerRecord]:
    """Read topics from the beginning until `done(records)` or the deadline."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done(records) and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def latest_by_key(records: list[ConsumerRecord]) -> dict[bytes, Any]:
    """A compacted view of a changelog: last value per key, parsed as JSON."""
    latest: dict[bytes, Any] = {}
    for record in records:
        if record.value is None:
            latest.pop(record.key, None)
        else:
            latest[record.key] = orjson.loads(record.value)
    return latest


def process_rss_mb(process: subprocess.Popen[bytes] | None, field: str = "VmRSS") -> float | None:
    """A memory figure of a child process from /proc; None once it is gone."""
    if process is None:
        return None
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None
