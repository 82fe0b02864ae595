"""Which clock a partition's due timers are judged by (streams/core/replay_clock.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.core.replay_clock import ReplayClock, confirmed_idle

WALL = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CLOCK = ReplayClock(allowed_lateness=timedelta(minutes=10), idle_grace=timedelta(seconds=2))
BUSY = timedelta(milliseconds=100)


def test_live_traffic_uses_the_wall_clock() -> None:
    assert CLOCK.now_for(WALL, WALL - timedelta(seconds=3), BUSY) == WALL
    # Events up to the allowed lateness behind are still live.
    assert CLOCK.now_for(WALL, WALL - timedelta(minutes=10), BUSY) == WALL


def test_a_replay_of_old_events_uses_their_time_less_the_allowed_lateness() -> None:
    replaying = WALL - timedelta(days=60)
    assert CLOCK.now_for(WALL, replaying, BUSY) == replaying - timedelta(minutes=10)
    # A timer of the history due just after the replayed events is not due yet.
    due = replaying + timedelta(seconds=1)
    assert CLOCK.now_for(WALL, replaying, BUSY) < due


def test_an_idle_partition_has_no_backlog_left_and_uses_the_wall_clock() -> None:
    replayed = WALL - timedelta(days=60)
    assert CLOCK.now_for(WALL, replayed, timedelta(seconds=2)) == WALL
    assert CLOCK.now_for(WALL, replayed, timedelta(seconds=1.9)) < WALL


def test_a_partition_that_processed_nothing_yet_uses_the_wall_clock() -> None:
    # After a restart, timers that came due while the worker was down fire at once.
    assert CLOCK.now_for(WALL, None, None) == WALL


def test_idle_counts_only_what_the_broker_confirmed() -> None:
    # Last event processed at t=100 s; fetch responses kept coming until t=103.5 s.
    assert confirmed_idle(100.0, 103.5) == timedelta(seconds=3.5)
    replayed = WALL - timedelta(days=60)
    assert CLOCK.now_for(WALL, replayed, confirmed_idle(100.0, 103.5)) == WALL


def test_a_broker_that_stopped_answering_is_not_an_idle_partition() -> None:
    # The broker froze at t=99 s with the tail of a replay unread; the worker finished
    # what it had fetched at t=100 s. However long the silence, the partition stays on
    # event time: its timers must not all fire at the wall clock before the tail is read.
    replayed = WALL - timedelta(days=60)
    silent = confirmed_idle(100.0, 99.0)
    assert silent == timedelta(0)
    assert CLOCK.now_for(WALL, replayed, silent) == replayed - timedelta(minutes=10)
    assert confirmed_idle(100.0, None) == timedelta(0)


def test_nothing_processed_yet_is_no_idle_figure() -> None:
    assert confirmed_idle(None, 99.0) is None
