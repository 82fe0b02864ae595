"""Run a standalone benchmark app (Faust baseline, Quix peer) in its own process.

The app writes one JSON object to `result` when it has measured, then keeps
running: stopping a framework from inside its own handler is fragile, so the
parent reads the result and stops the process (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the harness dies, even by SIGKILL, so an
    interrupted `make bench` leaves no worker running (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_child(
    argv: list[str],
    result: Path,
    log: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`env` is added to this process's environment for the child."""
    result.unlink(missing_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        deadline = time.monotonic() + timeout
        while not result.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"{Path(argv[1]).name} exited ({proc.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{Path(argv[1]).name}: no result in {timeout:.0f} s; see {log}")
            time.sleep(0.05)
        data: dict[str, Any] = json.loads(result.read_text())
        if "error" in data:
            raise RuntimeError(f"{Path(argv[1]).name}: {data['error']}")
        return data
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def write_result(path: Path, data: dict[str, Any]) -> None:
    """Atomic: the parent polls for the file and must never read half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)
