"""RFM scores against the population's own quintiles, learned online.

Configured cut points need someone to know the shop's distribution of recency,
frequency and spend, and to keep them current. Learned, a customer's score is the
quintile of the customers with an order that they fall in: 5 for the top fifth.
Each measure is a Fenwick tree of counts (an update and a rank both take a few dozen
steps, at any population size): recency by the day of the last order, frequency by
the order count, spend by a bucket 2% wide. Ties take their mid-rank, so where 60%
of customers have one order, those score 2 (their mid-rank is the 30th percentile)
rather than all 1 or all 4.

Per worker, like the population's order gaps (`intervals.py`): the counts cover the
customers of the partitions the worker owns, and are rebuilt from the recovered
states after each recovery.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
MAX_DAYS = 402_000
"""Days from 1900 to beyond 2999, the last year an event may carry (401,767)."""
MAX_ORDERS = 10_000
SPEND_STEP = math.log(1.02)
MAX_SPEND_BUCKET = 2_000
"""1.02 ** 2000 - 1 is ~1.6e17: any spend."""

Measures = tuple[int, float, datetime | None]
"""What the population counts of a customer: (orders_count, total_spent, last_order_at)."""


class _Counts:
    """How many values fall in each of `size` buckets; ranks in O(log size)."""

    __slots__ = ("size", "total", "tree")

    def __init__(self, size: int) -> None:
        self.size = size
        # Allocated at the first count (~1 MB for the days): nothing when not learning.
        self.tree: list[int] = []
        self.total = 0

    def add(self, bucket: int, count: int) -> None:
        self.total += count
        index = bucket + 1
        tree, size = self.tree, self.size
        if not tree:
            tree = self.tree = [0] * (size + 1)
        while index <= size:
            tree[index] += count
            index += index & -index

    def below(self, bucket: int) -> int:
        """Values in buckets before `bucket`."""
        index, found, tree = bucket, 0, self.tree
        if not tree:
            return 0
        while index > 0:
            found += tree[index]
            index -= index & -index
        return found

    def quintile(self, bucket: int) -> int:
        """1-5: the fifth of the values that `bucket`'s mid-rank falls in."""
        below = self.below(bucket)
        equal = self.below(bucket + 1) - below
        rank = (below + equal / 2) / self.total
        return min(5, 1 + int(rank * 5))


def _day(at: datetime) -> int:
    return min(MAX_DAYS - 1, max(0, (at - EPOCH).days))


def _orders(count: int) -> int:
    return min(MAX_ORDERS - 1, max(0, count))


def _spend(amount: float) -> int:
    if not amount > 0:  # also NaN
        return 0
    if not math.isfinite(amount):
        return MAX_SPEND_BUCKET - 1
    return min(MAX_SPEND_BUCKET - 1, int(math.log1p(amount) / SPEND_STEP))


class RfmPopulation:
    """Customers with at least one order, counted by each RFM measure."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.recency = _Counts(MAX_DAYS)
        self.frequency = _Counts(MAX_ORDERS)
        self.monetary = _Counts(MAX_SPEND_BUCKET)

    @property
    def customers(self) -> int:
        return self.frequency.total

    def move(self, before: Measures, after: Measures) -> None:
        """A customer's measures changed (an order, a cancellation): count them anew."""
        if before != after:
            self._count(before, -1)
            self._count(after, 1)

    def add(self, measures: Measures) -> None:
        """A recovered customer (the rebuild after a restart)."""
        self._count(measures, 1)

    def _count(self, measures: Measures, count: int) -> None:
        orders, spent, last_order_at = measures
        if orders <= 0 or last_order_at is None:
            return  # only customers with an order are scored against each other
        self.recency.add(_day(last_order_at), count)
        self.frequency.add(_orders(orders), count)
        self.monetary.add(_spend(spent), count)

    def scores(self, measures: Measures) -> tuple[int, int, int]:
        """(r, f, m) of a customer with an order, against the customers counted."""
        orders, spent, last_order_at = measures
        assert last_order_at is not None
        # A later last order is a better recency: its rank among the last orders' days.
        return (
            self.recency.quintile(_day(last_order_at)),
            self.frequency.quintile(_orders(orders)),
            self.monetary.quintile(_spend(spent)),
        )
