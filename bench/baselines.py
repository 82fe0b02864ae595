"""Launchers for the standalone throughput apps: the Quix peer and the Faust baselines.

Each run is a new process with a new consumer group (and state dir), reading the
bench topic from the start; the app times itself (`rate_window`: first to N-th event,
or to a time limit) and writes its figure to a result file (bench/child.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

from child import run_child
from pipeline import REPLAY_ENV

HERE = Path(__file__).resolve().parent


class Measured(NamedTuple):
    rate: float
    events: int
    """How many events the rate was measured over (`rate_window`)."""


DEFAULT_PEER_PYTHON = HERE / ".venv-peer" / "bin" / "python"


def peer_python() -> Path:
    path = Path(os.environ.get("BENCH_PEER_PYTHON", DEFAULT_PEER_PYTHON))
    if not path.exists():
        raise RuntimeError(
            f"peer virtualenv missing ({path}): `make bench` creates it "
            "(python -m venv bench/.venv-peer && bench/.venv-peer/bin/pip install quixstreams)"
        )
    return path


def run_peer(
    bootstrap: str, topic: str, n: int, seconds: float, tag: str, workdir: Path
) -> Measured:
    options = {
        "bootstrap": bootstrap,
        "topic": topic,
        "events": n,
        "seconds": seconds,
        "group": tag,
        "state-dir": workdir / f"{tag}-state",
    }
    return _rate(peer_python(), "peer_quix.py", options, tag, workdir, 120 + n / 1000)


def run_faust(
    broker_url: str,
    topic: str,
    n: int,
    seconds: float,
    mode: str,
    tag: str,
    workdir: Path,
    partitions: int,
) -> Measured:
    options = {
        "mode": mode,
        "broker": broker_url,
        "topic": topic,
        "partitions": partitions,
        "events": n,
        "seconds": seconds,
        "app-id": tag,
        "data-dir": workdir / f"{tag}-data",
    }
    return _rate(Path(sys.executable), "faust_baseline.py", options, tag, workdir, 120 + n / 500)


def run_core_loop(
    bootstrap: str,
    topic: str,
    n: int,
    seconds: float,
    state: str,
    tag: str,
    workdir: Path,
    partitions: int,
) -> Measured:
    """The design probe (`core_loop.py`): the worker's core in a plain aiokafka loop."""
    options = {
        "bootstrap": bootstrap,
        "topic": topic,
        "events": n,
        "seconds": seconds,
        "state": state,
        "tag": tag,
        "partitions": partitions,
    }
    # Decisions made as the throughput runs' workers make them.
    return _rate(
        Path(sys.executable), "core_loop.py", options, tag, workdir, 120 + n / 1000, REPLAY_ENV
    )


def _rate(
    python: Path,
    script: str,
    options: dict[str, object],
    tag: str,
    workdir: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run `script` with `--name value` per option and `--result`; what it measured."""
    result = workdir / f"{tag}.json"
    argv = [str(python), str(HERE / script), "--result", str(result)]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    data = run_child(argv, result=result, log=workdir / f"{tag}.log", timeout=timeout, env=env)
    return Measured(float(data["rate"]), int(data["events"]))
