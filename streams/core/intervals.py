"""Dynamic intervals: a customer's own rhythm, and the population's, learned online.

Gaps are kept in whole-day histogram buckets, so the population estimate is a
fixed-size array per worker, deterministic for a given order of orders, and can
be rebuilt from recovered customer state after a restart.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import median

from schemas.state import CustomerState
from streams.core.customer_state import placed_order_times

MAX_GAP_DAYS = 1095
MIN_POPULATION_SAMPLES = 30
MAX_CATEGORIES = 256


class GapHistogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (MAX_GAP_DAYS + 1)
        self.total = 0

    def add(self, gap: timedelta) -> None:
        days = min(MAX_GAP_DAYS, max(0, round(gap.total_seconds() / 86400)))
        self.counts[days] += 1
        self.total += 1

    def quantile(self, q: float) -> timedelta | None:
        if self.total == 0:
            return None
        rank = q * (self.total - 1)
        seen = 0
        for days, count in enumerate(self.counts):
            seen += count
            if seen > rank:
                return timedelta(days=days)
        return timedelta(days=MAX_GAP_DAYS)


class PopulationStats:
    """Repeat-purchase gaps of the population, overall and per product category."""

    def __init__(self) -> None:
        self.order_gaps = GapHistogram()
        self.category_gaps: dict[str, GapHistogram] = {}

    def observe_order(
        self,
        previous_order_at: datetime | None,
        at: datetime,
        category_last: dict[str, datetime],
        categories: list[str],
    ) -> None:
        if previous_order_at is not None and at > previous_order_at:
            self.order_gaps.add(at - previous_order_at)
        for category in categories:
            last = category_last.get(category)
            if last is None or at <= last:
                continue
            histogram = self.category_gaps.get(category)
            if histogram is None:
                if len(self.category_gaps) >= MAX_CATEGORIES:
                    continue
                histogram = self.category_gaps[category] = GapHistogram()
            histogram.add(at - last)

    def typical_gap(self) -> timedelta | None:
        if self.order_gaps.total < MIN_POPULATION_SAMPLES:
            return None
        return self.order_gaps.quantile(0.5)

    def category_cycle(self, category: str) -> timedelta | None:
        histogram = self.category_gaps.get(category)
        if histogram is None or histogram.total < MIN_POPULATION_SAMPLES:
            return None
        return histogram.quantile(0.5)

    def reset(self) -> None:
        """Forget everything learned (before a rebuild from recovered state)."""
        self.order_gaps = GapHistogram()
        self.category_gaps = {}

    def rebuild_from_orders(self, placed: Sequence[datetime]) -> None:
        """Feed one recovered customer's orders (after a restart): the placed times of
        those not cancelled, oldest first (`placed_order_times`)."""
        for gap in gaps_between(placed):
            self.order_gaps.add(gap)


def gaps_between(placed: Sequence[datetime]) -> list[timedelta]:
    return [later - earlier for earlier, later in itertools.pairwise(placed)]


def order_gaps(state: CustomerState) -> list[timedelta]:
    return gaps_between(placed_order_times(state))


def personal_interval(state: CustomerState, min_gaps: int) -> timedelta | None:
    """Median gap between the customer's recent orders; None with fewer than `min_gaps`."""
    gaps = order_gaps(state)
    if len(gaps) < min_gaps:
        return None
    return timedelta(seconds=median(g.total_seconds() for g in gaps))
