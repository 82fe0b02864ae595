"""What a rule expression can see: `event.*`, `state.*`, `rfm.*`, `item.*`, `timer.*`.

Paths resolve only through declared model fields and plain dict keys, never
through Python attributes, so a rules file cannot reach methods or internals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from schemas.event import Event
from schemas.state import CustomerState

ROOTS = frozenset({"event", "state", "rfm", "item", "timer"})
FUNCTIONS: Mapping[str, tuple[int, int]] = {
    "age": (1, 1),
    "personal_interval": (0, 0),
    "category_cycle": (1, 1),
    "max": (1, 8),
    "min": (1, 8),
    "days": (1, 1),
    "hours": (1, 1),
    "len": (1, 1),
    "lower": (1, 1),
}
ENVELOPE_FIELDS = ("type", "event_id", "occurred_at", "customer_id", "source")


def _revive_date(value: Any) -> Any:
    if isinstance(value, str) and 20 <= len(value) <= 40 and value[4:5] == "-" and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if parsed.tzinfo is not None:
            return parsed
    return value


def walk(value: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if value is None:
            return None
        if isinstance(value, BaseModel):
            if part in type(value).__pydantic_fields__:
                value = getattr(value, part)
            elif value.model_extra is not None and part in value.model_extra:
                value = value.model_extra[part]
            else:
                return None
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


class RuleScope:
    """Scope for one evaluation. `now` is event time (or the timer's due time)."""

    __slots__ = ("_rfm", "event", "intervals", "item", "now", "rfm_of", "state", "timer")

    def __init__(
        self,
        state: CustomerState,
        now: datetime,
        event: Event | Mapping[str, Any] | None,
        intervals: IntervalFunctions,
        rfm_of: Callable[[CustomerState, datetime], Mapping[str, Any]],
        item: Mapping[str, Any] | None = None,
        timer: Mapping[str, Any] | None = None,
    ) -> None:
        self.state = state
        self.now = now
        self.event = event
        self.intervals = intervals
        self.rfm_of = rfm_of
        self.item = item
        self.timer = timer
        self._rfm: Mapping[str, Any] | None = None

    def resolve(self, path: tuple[str, ...]) -> Any:
        root, rest = path[0], path[1:]
        if root == "state":
            return walk(self.state, rest)
        if root == "event":
            event = self.event
            if isinstance(event, Event):
                if not rest:
                    return None
                if rest[0] in ENVELOPE_FIELDS:
                    return walk(getattr(event, rest[0]), rest[1:])
                return walk(event.properties, rest)
            # A timer's copy of its anchor event: after a restart it comes back from the
            # changelog as JSON, dates as text. Read them as dates again, so a rule
            # decides the same before and after a restart.
            return _revive_date(walk(event, rest))
        if root == "rfm":
            if self._rfm is None:
                self._rfm = self.rfm_of(self.state, self.now)
            return walk(self._rfm, rest)
        if root == "item":
            return walk(self.item, rest)
        if root == "timer":
            return walk(self.timer, rest)
        return None

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        if name == "age":
            (at,) = args
            return self.now - at if isinstance(at, datetime) else None
        if name == "personal_interval":
            return self.intervals.personal(self.state)
        if name == "category_cycle":
            (category,) = args
            return self.intervals.category(category) if isinstance(category, str) else None
        if name in ("max", "min"):
            values = [a for a in args if a is not None]
            try:
                return (max if name == "max" else min)(values) if values else None
            except TypeError:
                return None
        if name == "days":
            (d,) = args
            return d.total_seconds() / 86400 if isinstance(d, timedelta) else None
        if name == "hours":
            (d,) = args
            return d.total_seconds() / 3600 if isinstance(d, timedelta) else None
        if name == "len":
            (x,) = args
            return len(x) if isinstance(x, str | list | dict) else None
        if name == "lower":
            (s,) = args
            return s.lower() if isinstance(s, str) else None
        return None


class IntervalFunctions:
    """personal_interval() and category_cycle(): configured, personal, then learned."""

    def __init__(
        self,
        personal: Callable[[CustomerState], timedelta],
        category: Callable[[str], timedelta | None],
    ) -> None:
        self.personal = personal
        self.category = category


FIXED_FIELDS: Mapping[str, frozenset[str]] = {
    "rfm": frozenset({"r", "f", "m", "score"}),
    "timer": frozenset({"anchor_at", "due_at", "occurrence"}),
    "item": frozenset({"category"}),
}


def known_field(dotted: str) -> bool:
    """Catch typos at load time: `state.ordrs_count` is an error, not a silent null.

    `state.*` is checked against the CustomerState model (nested models too; keys
    of dict fields such as `state.consent.email` are free). `event.*` is free:
    producers may send any property.
    """
    parts = dotted.split(".")
    root = parts[0]
    if root in FIXED_FIELDS:
        return len(parts) == 1 or (len(parts) == 2 and parts[1] in FIXED_FIELDS[root])
    if root != "state":
        return True
    model: Any = CustomerState
    for part in parts[1:]:
        fields = getattr(model, "__pydantic_fields__", None)
        if fields is None:
            return True  # a dict or list field: keys are data, not schema
        info = fields.get(part)
        if info is None:
            return False
        model = _model_of(info.annotation)
    return True


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside `X | None`, or None for plain values and dicts."""
    candidates = getattr(annotation, "__args__", (annotation,))
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
