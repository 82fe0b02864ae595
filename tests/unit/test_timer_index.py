"""The due-timer index finds each due customer once and stays bounded under re-arming.

Every test runs on both indexes: in memory (the memory store) and on disk (RocksDB).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.shell.disk_timer_index import DiskTimerIndex
from streams.shell.timer_index import DueIndex, TimerIndex, before_earliest

NewIndex = Callable[..., DueIndex]


@pytest.fixture(params=["memory", "disk"])
def new_index(request: pytest.FixtureRequest, tmp_path: Path) -> NewIndex:
    made: list[DiskTimerIndex] = []

    def make(**options: Any) -> DueIndex:
        if request.param == "memory":
            return TimerIndex(**options)
        options.pop("compact_slack", None)
        index = DiskTimerIndex(tmp_path / f"index-{len(made)}", **options)
        made.append(index)
        return index

    request.addfinalizer(lambda: [index.close() for index in made])
    return make


def index_entries(index: DueIndex) -> int:
    """Entries the index holds, live or superseded."""
    if isinstance(index, TimerIndex):
        return len(index)
    assert isinstance(index, DiskTimerIndex)
    on_disk = sum(1 for key in index.db.keys() if key.startswith(b"D"))  # noqa: SIM118
    assert len(index) == on_disk  # what the gauge says
    return on_disk


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Timers:
    """The truth the index is checked against: each customer's earliest due time."""

    def __init__(self, index: DueIndex) -> None:
        self.index = index
        self.due: dict[bytes, datetime] = {}

    def arm(self, key: bytes, due: datetime | None, partition: int = 0) -> None:
        if due is None:
            self.due.pop(key, None)
        else:
            self.due[key] = due
        self.index.note(partition, key, due)

    def pop(self, now: datetime, partition: int = 0) -> list[bytes]:
        return self.index.pop_due(partition, now.timestamp(), self.due.get)


def test_due_customers_come_out_once_in_due_order_and_not_before(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"b", at(20))
    timers.arm(b"a", at(10))
    timers.arm(b"c", at(30))
    assert timers.pop(at(9)) == []
    assert timers.pop(at(20)) == [b"a", b"b"]
    assert timers.pop(at(25)) == []
    assert timers.pop(at(30)) == [b"c"]


def test_re_armed_and_cancelled_timers_follow_the_latest_note(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"later", at(10))
    timers.arm(b"later", at(50))
    timers.arm(b"earlier", at(40))
    timers.arm(b"earlier", at(5))
    timers.arm(b"cancelled", at(10))
    timers.arm(b"cancelled", None)
    assert timers.pop(at(30)) == [b"earlier"]
    assert timers.pop(at(60)) == [b"later"]


def test_a_customer_noted_again_at_the_time_it_was_returned_comes_out_again(
    new_index: NewIndex,
) -> None:
    # Handling a returned customer notes its next due time, which can be the same
    # instant (another timer of it due then): the index must not take that for news
    # it already has.
    timers = Timers(new_index())
    timers.arm(b"a", at(10))
    assert timers.pop(at(10)) == [b"a"]
    timers.arm(b"a", at(10))
    assert timers.pop(at(11)) == [b"a"]


def test_a_customer_cancelled_without_a_note_and_re_armed_at_the_same_time_comes_out(
    new_index: NewIndex,
) -> None:
    timers = Timers(new_index())
    timers.arm(b"a", at(10))
    del timers.due[b"a"]  # its timers went away; nobody told the index
    assert timers.pop(at(11)) == []
    timers.arm(b"a", at(10))
    assert timers.pop(at(12)) == [b"a"]


class WallClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_due_customer_whose_handling_was_lost_comes_out_again_after_the_retry(
    new_index: NewIndex,
) -> None:
    wall = WallClock()
    timers = Timers(new_index(retry_seconds=30, wall_clock=wall))
    timers.arm(b"lost", at(10))
    timers.arm(b"handled", at(10))
    assert timers.pop(at(10)) == [b"handled", b"lost"]
    timers.arm(b"handled", at(500))  # its timer fired; the next one is later
    wall.now = 29
    assert timers.pop(at(400)) == []  # the partition's clock does not matter: wall time
    wall.now = 30
    assert timers.pop(at(400)) == [b"lost"]
    wall.now = 60
    assert timers.pop(at(400)) == [b"lost"]  # every 30 s until handled
    timers.arm(b"lost", None)
    wall.now = 1000
    assert timers.pop(at(500)) == [b"handled"]


def test_a_returned_customer_whose_timers_moved_on_is_not_retried_early(
    new_index: NewIndex,
) -> None:
    wall = WallClock()
    timers = Timers(new_index(retry_seconds=30, wall_clock=wall))
    timers.arm(b"a", at(10))
    assert timers.pop(at(10)) == [b"a"]
    timers.due[b"a"] = at(100)  # handled, but the note went missing
    wall.now = 30
    assert timers.pop(at(50)) == []
    assert timers.pop(at(100)) == [b"a"]


def test_a_limited_pop_leaves_the_rest_for_the_next(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    for second, key in enumerate((b"a", b"b", b"c")):
        timers.arm(key, at(second))
    first = timers.index.pop_due(0, at(5).timestamp(), timers.due.get, limit=2)
    assert first == [b"a", b"b"]
    assert timers.pop(at(5)) == [b"c"]


def test_state_re_armed_later_without_a_note_is_followed(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"a", at(10))
    timers.due[b"a"] = at(40)  # the state moved on; nobody told the index
    assert timers.pop(at(20)) == []
    assert timers.pop(at(40)) == [b"a"]


def test_re_arming_many_times_keeps_the_index_bounded_by_the_customers(new_index: NewIndex) -> None:
    index = new_index(compact_slack=100)
    timers = Timers(index)
    customers = [f"c{i}".encode() for i in range(500)]
    for round_ in range(200):  # each customer's timer pushed later 200 times
        for key in customers:
            timers.arm(key, at(1000 + round_))
    assert index_entries(index) <= 2 * len(customers) + 100
    assert timers.pop(at(1198)) == []
    assert sorted(timers.pop(at(1199))) == sorted(customers)
    for key in customers:
        timers.arm(key, None)  # fired, none left
    assert timers.pop(at(100_000)) == []


def test_rebuild_and_drop_are_per_partition(new_index: NewIndex) -> None:
    index = new_index()
    assert index.rebuild(1, [(b"a", at(10)), (b"b", None), (b"c", at(20))]) == 2
    index.note(2, b"d", at(5))
    due = {b"a": at(10), b"c": at(20), b"d": at(5)}
    assert index.pop_due(1, at(15).timestamp(), due.get) == [b"a"]
    index.drop([2])
    assert index.partitions() == [1]
    assert index.pop_due(2, at(15).timestamp(), due.get) == []
    # Back on this worker after a rebalance, the partition starts from what it notes.
    index.note(2, b"d", at(5))
    assert index.pop_due(2, at(15).timestamp(), due.get) == [b"d"]


def test_deferrals_are_released_only_up_to_the_earliest_timer_not_yet_fired(
    new_index: NewIndex,
) -> None:
    # The timer pass takes at most `limit` customers: one left behind holds back the
    # deferral pass's clock to just before its due time, so a deferral due at or after
    # it waits (in the simulator, the timer fires first).
    timers = Timers(new_index())
    for n in range(3):
        timers.arm(b"k%d" % n, at(10 * (n + 1)))
    clock = before_earliest(lambda partition: at(100), timers.index)
    assert timers.index.pop_due(0, at(100).timestamp(), timers.due.get, limit=2) == [b"k0", b"k1"]
    held = clock(0)
    assert held is not None and at(29) < held < at(30)
    timers.arm(b"k2", at(500))  # fired: its next timer is later than the clock
    assert clock(0) == at(100)
    assert clock(1) == at(100)  # a partition without timers is not held back


def test_a_customer_whose_firing_failed_does_not_hold_back_deferrals(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"failing", at(10))
    assert timers.pop(at(20)) == [b"failing"]  # returned, and never noted again
    assert timers.index.earliest(0) is None
    clock = before_earliest(lambda partition: at(20), timers.index)
    assert clock(0) == at(20)


def test_an_unknown_clock_stays_unknown(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"a", at(10))
    assert before_earliest(lambda partition: None, timers.index)(0) is None


def test_a_rebuild_replaces_what_the_partition_held(new_index: NewIndex) -> None:
    index = new_index()
    index.note(0, b"gone", at(5))
    index.note(1, b"other partition", at(5))
    assert index.rebuild(0, iter([(b"kept", at(10))])) == 1
    due = {b"gone": at(5), b"kept": at(10), b"other partition": at(5)}
    assert index.pop_due(0, at(20).timestamp(), due.get) == [b"kept"]
    assert index.pop_due(1, at(20).timestamp(), due.get) == [b"other partition"]


def test_due_times_before_1970_come_first(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"recent", at(0))
    timers.arm(b"old", datetime(1960, 1, 1, tzinfo=UTC))
    assert timers.index.earliest(0) == datetime(1960, 1, 1, tzinfo=UTC).timestamp()
    assert timers.pop(datetime(1965, 1, 1, tzinfo=UTC)) == [b"old"]
    assert timers.pop(at(0)) == [b"recent"]


def test_the_disk_index_starts_empty_whatever_a_previous_run_left(tmp_path: Path) -> None:
    # It is rebuilt from the table after each recovery: entries of a previous run
    # would name customers whose timers have since fired or moved.
    first = DiskTimerIndex(tmp_path / "index")
    first.note(0, b"a", at(10))
    first.close()
    second = DiskTimerIndex(tmp_path / "index")
    try:
        assert second.pop_due(0, at(20).timestamp(), {b"a": at(10)}.get) == []
        second.note(0, b"b", at(10))
        assert second.pop_due(0, at(20).timestamp(), {b"b": at(10)}.get) == [b"b"]
    finally:
        second.close()


def test_the_disk_index_holds_no_python_objects_per_customer(tmp_path: Path) -> None:
    # What it is for: a worker's memory must not grow with the timers it holds.
    import tracemalloc

    customers = 100_000
    index = DiskTimerIndex(tmp_path / "index")
    try:
        tracemalloc.start()
        index.rebuild(0, ((b"customer-%d" % n, at(n)) for n in range(customers)))
        for n in range(0, customers, 10):
            index.note(0, b"customer-%d" % n, at(n + 0.5))
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        in_memory = TimerIndex()
        tracemalloc.start()
        in_memory.rebuild(0, ((b"customer-%d" % n, at(n)) for n in range(customers)))
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert held < baseline / 20, (held, baseline)
        # Re-armed customers moved: customer-0 from 0 s to 0.5 s, the first one due.
        assert index.earliest(0) == at(0.5).timestamp()
        due = {b"customer-0": at(0.5), b"customer-1": at(1)}
        assert index.pop_due(0, at(1).timestamp(), due.get) == [b"customer-0", b"customer-1"]
    finally:
        index.close()


def test_an_entry_a_rebuild_superseded_comes_up_once(new_index: NewIndex) -> None:
    # A note between the reset and the rebuild's read of the same customer leaves two
    # entries: the older must be cleared when it comes up, not checked on every pass.
    index = new_index()
    index.reset(0)
    index.note(0, b"a", at(5))
    index.extend(0, [(b"a", at(10))])
    due = {b"a": at(10)}
    assert index.pop_due(0, at(7).timestamp(), due.get) == []
    assert index_entries(index) == 1
    assert index.pop_due(0, at(10).timestamp(), due.get) == [b"a"]
    assert index_entries(index) == 0


def test_a_state_read_that_fails_loses_no_timer(new_index: NewIndex) -> None:
    wall = WallClock()
    timers = Timers(new_index(retry_seconds=30, wall_clock=wall))
    for n in range(4):
        timers.arm(b"k%d" % n, at(n))
    failing = True

    def next_due(key: bytes) -> datetime | None:
        if key == b"k2" and failing:
            raise OSError("disk read failed")
        return timers.due.get(key)

    with pytest.raises(OSError):
        timers.index.pop_due(0, at(10).timestamp(), next_due)
    failing = False
    # k2 and k3 were never taken: still due. k0 and k1 were taken before the failure,
    # and their caller never got them: they come back with the retry.
    assert timers.pop(at(10)) == [b"k2", b"k3"]
    timers.arm(b"k2", None)  # handled: fired, none left
    timers.arm(b"k3", None)
    wall.now = 30
    assert sorted(timers.pop(at(10))) == [b"k0", b"k1"]


def test_partition_numbers_beyond_16_bits(new_index: NewIndex) -> None:
    timers = Timers(new_index())
    timers.arm(b"a", at(1), partition=70_000)
    timers.arm(b"b", at(1), partition=65_535)
    assert timers.pop(at(2), partition=70_000) == [b"a"]
    timers.index.drop([65_535])
    assert timers.pop(at(2), partition=65_535) == []


def test_indexes_no_process_holds_open_are_removed_and_no_other(tmp_path: Path) -> None:
    # Workers may share a data dir, each with its own index: one starting must not wipe
    # another's, and those of workers gone must not pile up.
    import subprocess
    import sys

    gone = DiskTimerIndex(tmp_path / "customers.due-index.gone")
    gone.note(0, b"a", at(1))
    gone.close()
    live = tmp_path / "customers.due-index.live"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, rocksdict; db = rocksdict.Rdict(sys.argv[1]); print('open', flush=True);"
            " sys.stdin.read()",
            str(live),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        mine = DiskTimerIndex(tmp_path / "customers.due-index.mine")
        try:
            mine.note(0, b"a", at(1))
            left = sorted(path.name for path in tmp_path.iterdir())
            assert left == ["customers.due-index.live", "customers.due-index.mine"]
        finally:
            mine.close()
    finally:
        holder.communicate("")
