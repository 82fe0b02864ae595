"""The offline simulator's throughput: `crm-triggers simulate` on the bench history.

The same events as the topic (~1M at BENCH_SCALE=1), default playbook, decisions
written to a file, as a user runs it. Timed as the user sees it: the wall clock
of the whole command (interpreter start, reading the JSONL, all jobs, writing
the output), so events/s = events in the file / that time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SimulatorResult:
    events: int
    seconds: float
    rate: float
    jobs: int


def run_simulator(events_file: Path, events: int, workdir: Path) -> SimulatorResult:
    jobs = os.cpu_count() or 1
    out = workdir / "simulated-decisions.jsonl"
    log = workdir / "simulate.log"
    started = time.perf_counter()
    with log.open("wb") as handle:
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "streams",
                "simulate",
                "--events",
                str(events_file),
                "--out",
                str(out),
                "--jobs",
                str(jobs),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"simulate exited {code}; see {log}")
    # Its summary line ("N events, M rejected, ...") is the count it read: trust it.
    summary = re.search(r"^(\d+) events, ", log.read_text(), re.MULTILINE)
    counted = int(summary.group(1)) if summary else events
    return SimulatorResult(events=counted, seconds=seconds, rate=counted / seconds, jobs=jobs)
