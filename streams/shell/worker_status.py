"""Readiness and recovery status of a worker, for `/health/ready` and the gauges.

Ready means the worker can do its job now: it has joined the consumer group
and received an assignment (possibly empty, when there are more workers than
partitions: a standby is ready too), it is neither rebalancing nor recovering
its tables, and the brokers answer metadata requests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streams.shell import metrics
from streams.shell.broker_probe import BrokerProbe

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    ready: bool
    body: dict[str, Any]


class WorkerStatus:
    def __init__(self, app: Any, events_topic: str, probe: BrokerProbe) -> None:
        self.app = app
        self.events_topic = events_topic
        self.probe = probe
        self.assignment_received = False
        self._last_recovery_end: float | None = None

    def on_assigned(self) -> None:
        self.assignment_received = True

    def assigned_partitions(self) -> int:
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment
            return 0
        return sum(1 for tp in actives if tp.topic == self.events_topic)

    def readiness(self) -> Readiness:
        recovering = bool(getattr(self.app, "in_recovery", False))
        rebalancing = bool(self.app.rebalancing)
        reachable = self.probe.reachable()
        ready = self.assignment_received and not recovering and not rebalancing and reachable
        body = {
            "ready": ready,
            "assignment_received": self.assignment_received,
            "assigned_partitions": self.assigned_partitions(),
            "rebalancing": rebalancing,
            "recovering": recovering,
            "recovery_remaining_records": self.recovery_remaining(),
            "broker_reachable": reachable,
            "broker_last_ok_seconds_ago": self.probe.seconds_since_ok(),
            "broker_error": self.probe.last_error,
        }
        return Readiness(ready, body)

    def _recovery(self) -> Any:
        # Faust's Recovery service, created with the first table (private: getattr).
        return getattr(self.app.tables, "_recovery", None)

    def recovery_remaining(self) -> int:
        recovery = self._recovery()
        if recovery is None or not recovery.in_recovery:
            return 0
        try:
            return int(recovery.active_remaining_total())
        except Exception:  # highwaters not built yet
            return 0

    def refresh_gauges(self) -> None:
        """Sample status into gauges (once a second: cheap, no per-event cost)."""
        readiness = self.readiness()
        metrics.READY.set(1 if readiness.ready else 0)
        metrics.ASSIGNED_PARTITIONS.set(readiness.body["assigned_partitions"])
        metrics.BROKER_REACHABLE.set(1 if readiness.body["broker_reachable"] else 0)
        metrics.RECOVERY_ACTIVE.set(1 if readiness.body["recovering"] else 0)
        metrics.RECOVERY_REMAINING.set(readiness.body["recovery_remaining_records"])
        self._note_recovery_end()

    def _note_recovery_end(self) -> None:
        # Faust stamps the start and end of each recovery; a new end stamp means a
        # recovery completed since the last sample, however short it was.
        recovery = self._recovery()
        ended = getattr(recovery, "_recovery_ended_at", None)
        started = getattr(recovery, "_recovery_started_at", None)
        if ended is None or started is None or ended == self._last_recovery_end:
            return
        if ended < started:
            return  # a recovery restarted after this end stamp: count it when it ends
        self._last_recovery_end = ended
        duration = max(0.0, ended - started)
        metrics.RECOVERIES.inc()
        metrics.RECOVERY_DURATION.set(duration)
        log.info(
            "tables recovered in %.3f s",
            duration,
            extra={"duration_seconds": round(duration, 3)},
        )
