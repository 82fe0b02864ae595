"""A `python -m streams worker` subprocess as the benchmark drives it.

Every run gets its own app id (consumer group, changelogs) and its own internal
topics (candidates, timers, decisions, ...): a fresh group reads the shared
events topic from the start, and no run's orchestrator sees an earlier run's
candidates. Figures come from the worker's own /metrics, so nothing in the
engine is instrumented for the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from child import die_with_parent

from streams.shell.embedded_broker import WORKER_ENV, free_port

# Counters whose sum is "events handled by the journey agent" (valid, rejected, duplicate).
HANDLED = ("crm_events_consumed_total", "crm_events_rejected_total", "crm_events_duplicate_total")


def topic_env(tag: str, events_topic: str) -> dict[str, str]:
    """Environment giving a run its own internal topics next to a shared events topic."""
    return {
        "CRM_EVENTS_TOPIC": events_topic,
        "CRM_DLQ_TOPIC": f"{tag}.dlq",
        "CRM_CANDIDATES_TOPIC": f"{tag}.candidates",
        "CRM_TIMERS_TOPIC": f"{tag}.timers",
        "CRM_DECISIONS_TOPIC": f"{tag}.decisions",
        "CRM_FEEDBACK_TOPIC": f"{tag}.feedback",
        "CRM_ACTIONS_TOPIC_PREFIX": f"{tag}.actions.",
    }


def parse_metrics(text: str) -> dict[str, float]:
    """`name{labels}` -> value, plus `name` -> sum over its label sets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, raw = line.rpartition(" ")
        try:
            value = float(raw)
        except ValueError:
            continue
        out[series] = value
        name = series.split("{", 1)[0]
        if name != series:
            out[name] = out.get(name, 0.0) + value
    return out


class Worker:
    def __init__(
        self,
        broker_url: str,
        app_id: str,
        env: dict[str, str],
        workdir: Path,
        partitions: int,
        name: str | None = None,
    ) -> None:
        """Workers of one deployment share `app_id` (one consumer group) and differ
        by `name` (log file, data dir)."""
        self.port = free_port()
        self.app_id = app_id
        name = name or app_id
        self.log_path = workdir / f"{name}-{self.port}.log"
        self.data_dir = workdir / f"{name}-data"
        self.env = {
            **WORKER_ENV,
            **os.environ,
            **env,
            "CRM_BROKER": broker_url,
            "CRM_APP_ID": app_id,
            "CRM_PARTITIONS": str(partitions),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams",
                    "worker",
                    "--web-port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"worker {self.app_id} exited ({code}); see {self.log_path}")

    def metrics(self, timeout: float = 5.0) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return parse_metrics(response.read().decode())

    def handled(self) -> float:
        """Events the journey agent finished (0 while the web server is not up yet)."""
        try:
            values = self.metrics()
        except OSError:
            return 0.0
        return sum(values.get(name, 0.0) for name in HANDLED)

    def readiness(self) -> dict[str, Any]:
        """The /health/ready body whatever its status (assignment, recovery, ...)."""
        url = f"http://127.0.0.1:{self.port}/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503: not ready, same body
            body = json.loads(exc.read())
        return body

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.port}/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.HTTPError, OSError):
            return False

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start to the first 200 on /health/ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready():
                return time.perf_counter() - self.started_at
            time.sleep(0.05)
        raise RuntimeError(f"worker {self.app_id} not ready after {timeout:.0f} s")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (graceful: flushes the changelog), SIGKILL if it does not exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
