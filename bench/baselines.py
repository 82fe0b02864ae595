"""Launchers for the standalone throughput apps: the Quix peer and the Faust baselines.

Each run is a new process with a new consumer group (and state dir), reading the
bench topic from the start; the app times itself (first to N-th event) and
writes its figure to a result file (bench/child.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from child import run_child
from pipeline import REPLAY_ENV

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_PYTHON = HERE / ".venv-peer" / "bin" / "python"


def peer_python() -> Path:
    path = Path(os.environ.get("BENCH_PEER_PYTHON", DEFAULT_PEER_PYTHON))
    if not path.exists():
        raise RuntimeError(
            f"peer virtualenv missing ({path}): `make bench` creates it "
            "(python -m venv bench/.venv-peer && bench/.venv-peer/bin/pip install quixstreams)"
        )
    return path


def run_peer(bootstrap: str, topic: str, n: int, tag: str, workdir: Path) -> float:
    result = run_child(
        [
            str(peer_python()),
            str(HERE / "peer_quix.py"),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--events",
            str(n),
            "--result",
            str(workdir / f"{tag}.json"),
            "--group",
            tag,
            "--state-dir",
            str(workdir / f"{tag}-state"),
        ],
        result=workdir / f"{tag}.json",
        log=workdir / f"{tag}.log",
        timeout=120 + n / 1000,
    )
    return float(result["rate"])


def run_faust(
    broker_url: str, topic: str, n: int, mode: str, tag: str, workdir: Path, partitions: int
) -> float:
    result = run_child(
        [
            sys.executable,
            str(HERE / "faust_baseline.py"),
            "--mode",
            mode,
            "--broker",
            broker_url,
            "--topic",
            topic,
            "--partitions",
            str(partitions),
            "--events",
            str(n),
            "--result",
            str(workdir / f"{tag}.json"),
            "--app-id",
            tag,
            "--data-dir",
            str(workdir / f"{tag}-data"),
        ],
        result=workdir / f"{tag}.json",
        log=workdir / f"{tag}.log",
        timeout=120 + n / 500,
    )
    return float(result["rate"])


def run_core_loop(
    bootstrap: str, topic: str, n: int, state: str, tag: str, workdir: Path, partitions: int
) -> float:
    """The design probe (`core_loop.py`): the worker's core in a plain aiokafka loop."""
    result = run_child(
        [
            sys.executable,
            str(HERE / "core_loop.py"),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--events",
            str(n),
            "--state",
            state,
            "--tag",
            tag,
            "--partitions",
            str(partitions),
            "--result",
            str(workdir / f"{tag}.json"),
        ],
        result=workdir / f"{tag}.json",
        log=workdir / f"{tag}.log",
        timeout=120 + n / 1000,
        env=REPLAY_ENV,  # decisions made as the throughput runs' workers make them
    )
    return float(result["rate"])
