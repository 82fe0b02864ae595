"""Readable one-paragraph summaries of compiled rules (`crm-triggers rules check`)."""

from __future__ import annotations

from collections.abc import Iterator

from schemas.rules import (
    ActionRule,
    BeforeDateRule,
    DelayRule,
    InactivityRule,
    LifecycleRule,
    RecurringRule,
    Rule,
    ThresholdRule,
)
from streams.core.engine import Engine


def trigger_text(rule: Rule) -> str:
    if isinstance(rule, ActionRule):
        return f"on {rule.on}" + (f" when {rule.when}" if rule.when else "")
    if isinstance(rule, InactivityRule):
        return f"{rule.within} after {rule.after} unless {' or '.join(rule.unless)}" + (
            " (each new anchor restarts the window)" if rule.rearm else ""
        )
    if isinstance(rule, DelayRule):
        per = " per item category" if rule.for_each else ""
        return f"{rule.delay} after {rule.after}{per}" + (
            f", if {rule.when} (checked again when due)" if rule.when else ""
        )
    if isinstance(rule, BeforeDateRule):
        return f"{rule.before} before {rule.on}.{rule.date}"
    if isinstance(rule, LifecycleRule):
        return f"on entering {' / '.join(rule.enter)}"
    if isinstance(rule, ThresholdRule):
        return f"when {rule.quantity} reaches {rule.crosses:g}"
    if isinstance(rule, RecurringRule):
        return f"yearly on {rule.date} at {rule.at.strftime('%H:%M')} local time"
    return rule.kind


def describe(engine: Engine) -> Iterator[str]:
    for compiled in sorted(engine.rules.values(), key=lambda c: c.index):
        rule = compiled.rule
        yield f"{rule.id} [{rule.kind}] {trigger_text(rule)}"
        extras = [
            f"channels {' > '.join(rule.channels)}",
            f"{rule.category.value}",
            f"priority {rule.priority}",
            f"ttl {rule.ttl}",
        ]
        if rule.audience:
            extras.append(f"audience: {rule.audience}")
        if rule.exclude:
            extras.append(f"exclude: {rule.exclude}")
        if rule.cancel_on:
            extras.append(f"cancelled by {', '.join(rule.cancel_on)}")
        if rule.holdout:
            extras.append(f"holdout {rule.holdout:.0%}")
        yield "    " + "; ".join(extras)

    yield rfm_text(engine)


def rfm_text(engine: Engine) -> str:
    rfm = engine.settings.rfm

    def cuts(values: list[float]) -> str:
        return "/".join(f"{v:g}" for v in values)

    configured = (
        f"recency days {cuts(rfm.recency_days)}, orders {cuts(rfm.frequency)}, "
        f"spend {cuts(rfm.monetary)}"
    )
    if rfm.learn:
        return (
            "rfm: quintiles learned from the customers with an order "
            f"(cut points {configured} until {rfm.learn_min_customers} have ordered)"
        )
    return f"rfm: cut points {configured}"
