"""`crm-triggers report`: per-rule decisions and conversion vs holdout, from files."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from streams.core.attribution import RuleReport, build_report
from streams.core.engine import load_engine
from streams.core.expressions import parse_duration


def _lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open("rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    rows.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
    return rows


def _orders(events: list[dict[str, Any]]) -> dict[str, list[datetime]]:
    orders: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        if event.get("type") == "order_placed" and isinstance(event.get("customer_id"), str):
            try:
                orders[event["customer_id"]].append(datetime.fromisoformat(event["occurred_at"]))
            except (KeyError, TypeError, ValueError):
                continue
    for times in orders.values():
        times.sort()
    return orders


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def run_report(decisions: Path, events: Path, rules: Path, console: Console) -> list[RuleReport]:
    engine = load_engine(rules.read_text(encoding="utf-8"), str(rules))
    windows = {
        rule_id: parse_duration(compiled.rule.attribution_window)
        for rule_id, compiled in engine.rules.items()
    }
    default: timedelta = engine.ruleset.policy.attribution_window
    reports = build_report(_lines(decisions), _orders(_lines(events)), windows, default)
    table = Table(title="Decisions and conversions per rule")
    for column in (
        "rule",
        "sent",
        "deferred",
        "suppressed (by reason)",
        "expired",
        "holdout",
        "conv. sent",
        "conv. holdout",
        "lift",
    ):
        table.add_column(column, justify="left" if column.startswith(("rule", "supp")) else "right")
    for report in reports:
        outcomes = report.outcomes
        suppressed = ", ".join(f"{code} {n}" for code, n in report.suppressed_by.most_common())
        table.add_row(
            report.rule_id,
            str(outcomes["sent"]),
            str(outcomes["deferred"]),
            f"{outcomes['suppressed']}" + (f" ({suppressed})" if suppressed else ""),
            str(outcomes["expired"]),
            str(outcomes["holdout"]),
            _rate(report.sent_rate),
            _rate(report.holdout_rate),
            "-" if report.lift is None else f"{report.lift * 100:+.1f} pp",
        )
    console.print(table)
    return reports
