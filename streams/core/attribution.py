"""Per-rule outcomes and conversion against the holdout group (pure).

A decision converts when the same customer places an order within the rule's
attribution window after it: after a `sent` for the treatment group, after a
`holdout` for the control group. Lift is the difference of the two rates.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass
class RuleReport:
    rule_id: str
    outcomes: Counter[str] = field(default_factory=Counter)
    suppressed_by: Counter[str] = field(default_factory=Counter)
    sent_converted: int = 0
    holdout_converted: int = 0

    @property
    def sent_rate(self) -> float | None:
        sent = self.outcomes["sent"]
        return self.sent_converted / sent if sent else None

    @property
    def holdout_rate(self) -> float | None:
        held = self.outcomes["holdout"]
        return self.holdout_converted / held if held else None

    @property
    def lift(self) -> float | None:
        if self.sent_rate is None or self.holdout_rate is None:
            return None
        return self.sent_rate - self.holdout_rate


def build_report(
    decisions: Iterable[Mapping[str, Any]],
    orders: Mapping[str, list[datetime]],
    windows: Mapping[str, timedelta],
    default_window: timedelta,
) -> list[RuleReport]:
    """`orders`: each customer's order times, sorted. Deferred decisions are counted
    as such and again by their final outcome (both are published)."""
    reports: dict[str, RuleReport] = defaultdict(lambda: RuleReport(rule_id=""))
    for decision in decisions:
        rule_id = str(decision["rule_id"])
        report = reports[rule_id]
        report.rule_id = rule_id
        outcome = str(decision["outcome"])
        report.outcomes[outcome] += 1
        if outcome == "suppressed":
            report.suppressed_by[str(decision["reason"]["code"])] += 1
        if outcome not in ("sent", "holdout"):
            continue
        at = datetime.fromisoformat(str(decision["decided_at"]))
        window = windows.get(rule_id, default_window)
        times = orders.get(str(decision["customer_id"]), [])
        i = bisect.bisect_right(times, at)
        if i < len(times) and times[i] - at <= window:
            if outcome == "sent":
                report.sent_converted += 1
            else:
                report.holdout_converted += 1
    return sorted(reports.values(), key=lambda r: r.rule_id)
