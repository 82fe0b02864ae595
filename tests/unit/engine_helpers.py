"""Helpers for the trigger engine tests: small inline rules, events, and a customer driver."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from schemas.candidate import Candidate
from schemas.event import Event, event_model_for
from schemas.state import CustomerState
from streams.core.engine import Engine, load_engine
from streams.core.intervals import PopulationStats
from streams.core.rules_loader import parse_ruleset
from streams.playbook import DEFAULT_RULES

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""A Monday morning in UTC; every scenario is expressed relative to it."""
CUSTOMER = "cust-1"
_ids = itertools.count(1)


def rules(body: str, settings: str = "") -> str:
    """A rules file from indented rule snippets (each starting with `- id: ...`)."""
    text = "version: 1\n"
    if settings:
        text += "settings:\n" + textwrap.indent(textwrap.dedent(settings).strip("\n"), "  ") + "\n"
    body = textwrap.dedent(body).strip("\n")
    text += "rules:\n" + textwrap.indent(body, "  ") + "\n" if body else "rules: []\n"
    return text


def rule(rule_id: str, kind: str, **fields: Any) -> str:
    """One rule in YAML with default channels, template and category."""
    lines = [f"- id: {rule_id}", f"  kind: {kind}"]
    fields.setdefault("channels", "[email]")
    fields.setdefault("template", f"{rule_id}_v1")
    fields.setdefault("category", "marketing")
    for name, value in fields.items():
        lines.append(f"  {name}: {value}")
    return "\n".join(lines)


def engine_of(
    *rule_texts: str, settings: str = "", population: PopulationStats | None = None
) -> Engine:
    return load_engine(rules("\n".join(rule_texts), settings), population=population)


def default_engine() -> Engine:
    return load_engine(DEFAULT_RULES.read_text(encoding="utf-8"), str(DEFAULT_RULES))


E = TypeVar("E", bound=Engine)


def engine_as(engine_class: type[E], text: str) -> E:
    """An engine of a subclass that overrides a method, say to inject a failure."""
    ruleset, root = parse_ruleset(text)
    return engine_class(ruleset, yaml_root=root)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def event(
    event_type: str,
    at: datetime,
    *,
    event_id: str | None = None,
    customer: str = CUSTOMER,
    **properties: Any,
) -> Event:
    """A validated event, built through the contract models the decoder uses."""
    obj = {
        "event_id": event_id or f"evt-{next(_ids)}",
        "type": event_type,
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }
    return event_model_for(event_type).model_validate(obj)


def order(
    at: datetime,
    order_id: str | None = None,
    amount: float = 50.0,
    *,
    categories: Iterable[str] = (),
    **kwargs: Any,
) -> Event:
    items = [{"sku": f"sku-{c}", "category": c, "price": amount} for c in categories]
    props: dict[str, Any] = {"order_id": order_id or f"o-{next(_ids)}", "amount": amount}
    if items:
        props["items"] = items
    return event("order_placed", at, **props, **kwargs)


@dataclass
class Journey:
    """One customer fed through an engine, collecting every candidate it proposes."""

    engine: Engine
    customer: str = CUSTOMER
    state: CustomerState | None = None
    candidates: list[Candidate] = field(default_factory=list)

    def send(self, ev: Event) -> list[Candidate]:
        step = self.engine.on_event(self.state, ev)
        self.state = step.state
        # Timers that came due before the event fire first, as their own step.
        fired = [*step.overdue, *step.candidates]
        self.candidates.extend(fired)
        return fired

    def __call__(self, event_type: str, at: datetime, **properties: Any) -> list[Candidate]:
        return self.send(event(event_type, at, customer=self.customer, **properties))

    def order(
        self, at: datetime, order_id: str | None = None, amount: float = 50.0, **kw: Any
    ) -> list[Candidate]:
        return self.send(order(at, order_id, amount, customer=self.customer, **kw))

    def advance(self, until: datetime) -> list[Candidate]:
        assert self.state is not None
        step = self.engine.advance(self.state, until)
        self.candidates.extend(step.candidates)
        return step.candidates

    def fired(self, rule_id: str) -> list[Candidate]:
        return [c for c in self.candidates if c.rule_id == rule_id]

    @property
    def stage(self) -> str | None:
        assert self.state is not None
        return self.state.lifecycle_stage


def ids(candidates: Iterable[Candidate]) -> list[str]:
    return [c.rule_id for c in candidates]
