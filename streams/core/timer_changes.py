"""What one engine call did to a customer's timers, for metrics.

The engine replaces a timer object whenever it arms or re-arms one, so
comparing the timers before and after a call by identity tells what was
scheduled and what was removed. The engine reports the due times of the
timers it fired; any other removed timer was cancelled (cancel_on, re-armed,
superseded, or cut by the per-customer limit), even one due at the very
instant of the event that cancelled it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas.timer_record import TimerRecord


@dataclass(slots=True)
class TimerChanges:
    scheduled: list[str] = field(default_factory=list)
    """Rule id of each timer armed."""
    fired: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    @property
    def pending_delta(self) -> int:
        return len(self.scheduled) - len(self.fired) - len(self.cancelled)


def timer_changes(
    before: Sequence[TimerRecord], after: Sequence[TimerRecord], fired: Sequence[datetime]
) -> TimerChanges:
    changes = TimerChanges()
    fired_due = Counter(fired)
    kept = {id(timer) for timer in after}
    old = {id(timer) for timer in before}
    for timer in before:
        if id(timer) in kept:
            continue
        if fired_due[timer.due_at] > 0:
            fired_due[timer.due_at] -= 1
            changes.fired.append(timer.rule_id)
        else:
            changes.cancelled.append(timer.rule_id)
    changes.scheduled.extend(timer.rule_id for timer in after if id(timer) not in old)
    return changes
