"""Recovery accounting: a recovery counts once, when it completes, with its duration."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.shell import metrics
from streams.shell.worker_status import WorkerStatus


class Probe:
    last_error = None

    def reachable(self) -> bool:
        return True

    def seconds_since_ok(self) -> float:
        return 0.0


def status_with(recovery: Any) -> WorkerStatus:
    app = SimpleNamespace(
        tables=SimpleNamespace(_recovery=recovery),
        rebalancing=False,
        in_recovery=recovery.in_recovery,
        assignor=SimpleNamespace(assigned_actives=lambda: set()),
    )
    return WorkerStatus(app, "events", Probe())  # type: ignore[arg-type]


def recoveries() -> float:
    return metrics.RECOVERIES._value.get()  # type: ignore[attr-defined]


def test_an_interrupted_recovery_is_counted_when_its_restart_completes() -> None:
    # Faust stamps an end for the interrupted recovery (100 -> 104), then restarts it at
    # 104.2: sampled in between restart and completion, nothing has completed yet.
    recovery = SimpleNamespace(
        in_recovery=True, _recovery_started_at=104.2, _recovery_ended_at=104.0
    )
    status = status_with(recovery)
    before = recoveries()
    status.refresh_gauges()
    assert recoveries() == before
    recovery._recovery_ended_at = 108.7
    recovery.in_recovery = False
    status.refresh_gauges()
    status.refresh_gauges()  # the same end stamp again: still one recovery
    assert recoveries() == before + 1
    assert metrics.RECOVERY_DURATION._value.get() == 108.7 - 104.2  # type: ignore[attr-defined]
