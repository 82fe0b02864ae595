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

"Idle" is what the broker confirmed: the time from the partition's last event to the
consumer's last fetch response for it, not to now. A broker that stops answering
(an outage, a stall) otherwise looks like a partition with no new events: its
workers went on to the wall clock with the tail of a replay still unread and fired
every timer of it at once (a "no order within 30 days" nudge before the order).
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


def confirmed_idle(last_event_at: float | None, last_fetch_at: float | None) -> timedelta | None:
    """How long a partition has had no new event as far as the broker has said: from its
    last processed event to the last fetch response for it after that (both on one
    monotonic clock). None when no event was processed yet; zero when no fetch answered
    since the last event."""
    if last_event_at is None:
        return None
    if last_fetch_at is None or last_fetch_at <= last_event_at:
        return timedelta(0)
    return timedelta(seconds=last_fetch_at - last_event_at)
