"""Local-time arithmetic for quiet hours, correct on daylight-saving switch days.

All instants in and out are aware datetimes; results are in UTC. A local wall
time that does not exist (the spring-forward gap) resolves to the first instant
the local clock reads at least that time, i.e. the moment of the switch; a wall
time that occurs twice (the autumn fold) resolves to its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["in_quiet_hours", "local_instant", "quiet_hours_end", "resolve_timezone"]


def resolve_timezone(name: str | None, default: str) -> ZoneInfo:
    """The customer's IANA zone, or ``default`` when unset or unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return ZoneInfo(default)


def _in_window(wall: time, start: time, end: time) -> bool:
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def in_quiet_hours(at: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    """Is ``at`` inside the daily local window [start, end) (wrapping midnight if start > end)?"""
    return _in_window(at.astimezone(tz).time(), start, end)


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the local clock in ``tz`` on ``day`` reads >= ``wall``."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # exists; fold=0 is the earlier of two occurrences
    # In a spring-forward gap: fold=1 maps with the offset after the switch (an
    # instant before it), fold=0 with the offset before (an instant after it). The
    # switch, where the wall clock jumps past `naive`, lies in between.
    low = int(naive.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    if low > high:
        low, high = high, low
    # Switches happen on whole seconds: bisect on integer epoch seconds.
    while high - low > 1:
        middle = (low + high) // 2
        local = datetime.fromtimestamp(middle, UTC).astimezone(tz).replace(tzinfo=None)
        if local >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def quiet_hours_end(at: datetime, tz: ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet window around ``at`` ends (UTC, always after ``at``), or None if
    ``at`` is outside it."""
    local = at.astimezone(tz)
    wall = local.time()
    if not _in_window(wall, start, end):
        return None
    day = local.date()
    if start > end and wall >= start:
        day += timedelta(days=1)  # evening part of a window that wraps midnight
    ends = local_instant(day, end, tz)
    if ends <= at:
        # `at` is in the second pass of an hour the clock repeats (autumn), after the
        # end's first pass: the clock reads `end` again an hour after that one.
        ends = datetime.combine(day, end).replace(tzinfo=tz, fold=1).astimezone(UTC)
    # Never at or before `at`: the contact policy steps forward to this end, and a step
    # back would send it round in circles.
    return ends if ends > at else None
