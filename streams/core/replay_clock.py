"""The clock a partition's due timers are judged by: the wall clock for live traffic,
event time while a backlog of older events is being replayed.

Timers fire from a scanner once a partition has processed all its input. Live, that
is right: events are recent and a deadline passes at the wall clock. During a replay
of history the wall clock is far ahead of the events: every timer of the history is
past due, and a worker that catches up with the replaying producer would fire them
before later events of the same history arrive (an order that cancels a "no order
within 30 days" nudge). So while a partition's latest event time is further behind the
wall clock than the allowed lateness, its clock is that event time minus the allowed
lateness (the simulator's order, with events that late still decided as in order);
once the partition has been idle for the grace period, its backlog is done and the
wall clock applies again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class ReplayClock:
    allowed_lateness: timedelta
    """How late an event may arrive and still be decided as if in order."""
    idle_grace: timedelta
    """A partition without events for this long has no backlog left."""

    def now_for(
        self, wall: datetime, watermark: datetime | None, idle_for: timedelta | None
    ) -> datetime:
        """`watermark`: the latest `occurred_at` the partition processed; `idle_for`: time
        since it last processed an event (None for either: nothing processed yet)."""
        if watermark is None or idle_for is None or idle_for >= self.idle_grace:
            return wall
        if watermark >= wall - self.allowed_lateness:
            return wall
        return watermark - self.allowed_lateness
