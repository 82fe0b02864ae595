"""The due-timer index finds each due customer once and stays bounded under re-arming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.shell.timer_index import TimerIndex, before_earliest

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Timers:
    """The truth the index is checked against: each customer's earliest due time."""

    def __init__(self, index: TimerIndex) -> None:
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


def test_due_customers_come_out_once_in_due_order_and_not_before() -> None:
    timers = Timers(TimerIndex())
    timers.arm(b"b", at(20))
    timers.arm(b"a", at(10))
    timers.arm(b"c", at(30))
    assert timers.pop(at(9)) == []
    assert timers.pop(at(20)) == [b"a", b"b"]
    assert timers.pop(at(25)) == []
    assert timers.pop(at(30)) == [b"c"]


def test_re_armed_and_cancelled_timers_follow_the_latest_note() -> None:
    timers = Timers(TimerIndex())
    timers.arm(b"later", at(10))
    timers.arm(b"later", at(50))
    timers.arm(b"earlier", at(40))
    timers.arm(b"earlier", at(5))
    timers.arm(b"cancelled", at(10))
    timers.arm(b"cancelled", None)
    assert timers.pop(at(30)) == [b"earlier"]
    assert timers.pop(at(60)) == [b"later"]


def test_a_customer_noted_again_at_the_time_it_was_returned_comes_out_again() -> None:
    # Handling a returned customer notes its next due time, which can be the same
    # instant (another timer of it due then): the index must not take that for news
    # it already has.
    timers = Timers(TimerIndex())
    timers.arm(b"a", at(10))
    assert timers.pop(at(10)) == [b"a"]
    timers.arm(b"a", at(10))
    assert timers.pop(at(11)) == [b"a"]


def test_a_customer_cancelled_without_a_note_and_re_armed_at_the_same_time_comes_out() -> None:
    timers = Timers(TimerIndex())
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


def test_a_due_customer_whose_handling_was_lost_comes_out_again_after_the_retry() -> None:
    wall = WallClock()
    timers = Timers(TimerIndex(retry_seconds=30, wall_clock=wall))
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


def test_a_returned_customer_whose_timers_moved_on_is_not_retried_early() -> None:
    wall = WallClock()
    timers = Timers(TimerIndex(retry_seconds=30, wall_clock=wall))
    timers.arm(b"a", at(10))
    assert timers.pop(at(10)) == [b"a"]
    timers.due[b"a"] = at(100)  # handled, but the note went missing
    wall.now = 30
    assert timers.pop(at(50)) == []
    assert timers.pop(at(100)) == [b"a"]


def test_a_limited_pop_leaves_the_rest_for_the_next() -> None:
    timers = Timers(TimerIndex())
    for second, key in enumerate((b"a", b"b", b"c")):
        timers.arm(key, at(second))
    first = timers.index.pop_due(0, at(5).timestamp(), timers.due.get, limit=2)
    assert first == [b"a", b"b"]
    assert timers.pop(at(5)) == [b"c"]


def test_state_re_armed_later_without_a_note_is_followed() -> None:
    timers = Timers(TimerIndex())
    timers.arm(b"a", at(10))
    timers.due[b"a"] = at(40)  # the state moved on; nobody told the index
    assert timers.pop(at(20)) == []
    assert timers.pop(at(40)) == [b"a"]


def test_re_arming_many_times_keeps_the_index_bounded_by_the_customers() -> None:
    index = TimerIndex(compact_slack=100)
    timers = Timers(index)
    customers = [f"c{i}".encode() for i in range(500)]
    for round_ in range(200):  # each customer's timer pushed later 200 times
        for key in customers:
            timers.arm(key, at(1000 + round_))
    assert len(index) <= 2 * len(customers) + 100
    assert timers.pop(at(1198)) == []
    assert sorted(timers.pop(at(1199))) == sorted(customers)
    for key in customers:
        timers.arm(key, None)  # fired, none left
    assert timers.pop(at(100_000)) == []


def test_rebuild_and_drop_are_per_partition() -> None:
    index = TimerIndex()
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


def test_deferrals_are_released_only_up_to_the_earliest_timer_not_yet_fired() -> None:
    # The timer pass takes at most `limit` customers: one left behind holds back the
    # deferral pass's clock to just before its due time, so a deferral due at or after
    # it waits (in the simulator, the timer fires first).
    timers = Timers(TimerIndex())
    for n in range(3):
        timers.arm(b"k%d" % n, at(10 * (n + 1)))
    clock = before_earliest(lambda partition: at(100), timers.index)
    assert timers.index.pop_due(0, at(100).timestamp(), timers.due.get, limit=2) == [b"k0", b"k1"]
    held = clock(0)
    assert held is not None and at(29) < held < at(30)
    timers.arm(b"k2", at(500))  # fired: its next timer is later than the clock
    assert clock(0) == at(100)
    assert clock(1) == at(100)  # a partition without timers is not held back


def test_a_customer_whose_firing_failed_does_not_hold_back_deferrals() -> None:
    timers = Timers(TimerIndex())
    timers.arm(b"failing", at(10))
    assert timers.pop(at(20)) == [b"failing"]  # returned, and never noted again
    assert timers.index.earliest(0) is None
    clock = before_earliest(lambda partition: at(20), timers.index)
    assert clock(0) == at(20)


def test_an_unknown_clock_stays_unknown() -> None:
    timers = Timers(TimerIndex())
    timers.arm(b"a", at(10))
    assert before_earliest(lambda partition: None, timers.index)(0) is None
