"""The contact policy: the `policy:` section of a rules file (YAML).

It says when the business may talk to a customer at all, whatever the rules
propose: consent and double opt-in, quiet hours in the customer's timezone,
frequency caps over rolling windows, a minimum gap between messages, what
happens to a capped message, and the windows the orchestrator works with.
`streams/core/contact_policy.py` applies it; see its docstring for the order
of the checks.

Durations are strings in the rules language's duration syntax (``"24h"``,
``"7d"``, ``"90m"``) and are parsed when the file is loaded, so a typo is an
error at load time. Example::

    policy:
      default_timezone: Europe/Berlin
      quiet_hours: {start: "21:00", end: "08:00", applies_to: [marketing, service]}
      caps:
        - {name: marketing_daily, category: marketing, max: 1, per: 24h}
        - {name: marketing_weekly, category: marketing, max: 3, per: 7d}
        - {name: sms_monthly, channel: sms, max: 2, per: 30d}
      min_gap: 2h
      when_capped: {marketing: suppress, service: defer}
      rule_overrides:
        appointment_reminder: {when_capped: defer}

Transactional messages (order confirmations, password resets) are never held
back by quiet hours, by the minimum gap, or by caps that are not explicitly
``category: transactional``, and they never use up the budget of the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from schemas.candidate import Category
from streams.core.expressions import parse_duration

__all__ = [
    "Cap",
    "Duration",
    "Policy",
    "QuietHours",
    "RuleOverride",
    "WhenCapped",
    "WhenCappedDefaults",
    "format_duration",
]

_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_CHANNEL = r"^[a-z][a-z0-9_]{0,31}$"

_UNIT_SECONDS: tuple[tuple[str, int], ...] = (
    ("d", 86400),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
)


def format_duration(value: timedelta) -> str:
    """Exact duration text in the largest whole unit up to days: 24 h -> "1d", 7 d -> "7d"."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros % 1_000_000:
        return f"{micros / 1_000_000}s"
    seconds = micros // 1_000_000
    if seconds == 0:
        return "0s"
    for unit, size in _UNIT_SECONDS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is a multiple of 1 s")


def _parse_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a quoted duration such as "2h", "24h" or "7d"')
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A duration given as text (``"7d"``), held as a timedelta, written back as text."""


def _hh_mm(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError('must be a quoted local time "HH:MM", e.g. "21:00"')
    return value


def _format_hh_mm(value: time) -> str:
    return value.strftime("%H:%M")


LocalTime = Annotated[
    time,
    BeforeValidator(_hh_mm),
    PlainSerializer(_format_hh_mm, return_type=str, when_used="json"),
]


class WhenCapped(StrEnum):
    """What happens to a message a cap (or the minimum gap) holds back."""

    SUPPRESS = "suppress"
    """Drop it (outcome `suppressed`)."""
    DEFER = "defer"
    """Deliver it at the earliest instant the caps allow (outcome `deferred`), if
    that is before it expires; otherwise it expires."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(_Strict):
    """A daily window, in the customer's local time, when nothing but transactional goes out.

    ``start`` > ``end`` wraps midnight (21:00-08:00). The window includes
    ``start`` and excludes ``end``. Messages of the listed categories that arrive
    inside it are deferred to its end (the first instant the local clock reads
    ``end``, also on daylight-saving switch days).
    """

    start: LocalTime = time(21, 0)
    end: LocalTime = time(8, 0)
    applies_to: list[Category] = Field(
        default_factory=lambda: [Category.MARKETING, Category.SERVICE],
        description="Categories held back; transactional always passes",
    )

    @model_validator(mode="after")
    def _check(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours need start != end (leave quiet_hours out to disable)")
        if Category.TRANSACTIONAL in self.applies_to:
            raise ValueError("transactional messages are never held by quiet hours")
        return self


class Cap(_Strict):
    """At most ``max`` messages per rolling ``per`` window.

    A cap counts the messages sent on ``channel`` (or on any channel when
    unset) of ``category``. A cap without a category counts and limits the
    marketing and service messages together; transactional messages are counted
    and limited only by caps that say ``category: transactional``.
    """

    name: Annotated[str, Field(pattern=_NAME)]
    channel: Annotated[str, Field(pattern=_CHANNEL)] | None = None
    category: Category | None = None
    max: Annotated[int, Field(ge=1, le=100_000)]
    per: Duration

    @field_validator("per")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a cap window must be longer than 0s")
        return value

    def applies(self, channel: str, category: Category) -> bool:
        """Does a message on ``channel`` of ``category`` count against this cap?"""
        if self.channel is not None and self.channel != channel:
            return False
        if self.category is None:
            return category is not Category.TRANSACTIONAL
        return self.category is category


def _default_caps() -> list[Cap]:
    return [
        Cap(name="marketing_daily", category=Category.MARKETING, max=1, per=timedelta(hours=24)),
        Cap(name="marketing_weekly", category=Category.MARKETING, max=3, per=timedelta(days=7)),
        Cap(name="sms_monthly", channel="sms", max=2, per=timedelta(days=30)),
    ]


class WhenCappedDefaults(_Strict):
    """What a cap does to each category's messages, unless the rule overrides it."""

    marketing: WhenCapped = WhenCapped.SUPPRESS
    service: WhenCapped = WhenCapped.DEFER
    transactional: WhenCapped = WhenCapped.DEFER

    def for_category(self, category: Category) -> WhenCapped:
        match category:
            case Category.MARKETING:
                return self.marketing
            case Category.SERVICE:
                return self.service
            case Category.TRANSACTIONAL:
                return self.transactional


class RuleOverride(_Strict):
    when_capped: WhenCapped | None = None


class Policy(_Strict):
    """The contact policy (section ``policy:`` of a rules file)."""

    require_doi_for_marketing_email: bool = Field(
        default=True, description="Marketing email only after the double opt-in is confirmed"
    )
    marketing_requires_opt_in: bool = Field(
        default=True,
        description="Marketing only on channels with an explicit, unrevoked opt-in (GDPR); "
        "false: allowed unless revoked",
    )
    default_timezone: str = Field(
        default="UTC", description="IANA timezone for customers without a (valid) one"
    )
    quiet_hours: QuietHours | None = Field(
        default_factory=QuietHours, description="null disables quiet hours"
    )
    caps: list[Cap] = Field(default_factory=_default_caps)
    min_gap: Duration = Field(
        default=timedelta(hours=2),
        description="Minimum time between two non-transactional messages, any channel",
    )
    when_capped: WhenCappedDefaults = WhenCappedDefaults()
    rule_overrides: dict[Annotated[str, Field(pattern=_NAME)], RuleOverride] = Field(
        default_factory=dict
    )
    decision_window: Duration = Field(
        default=timedelta(seconds=3),
        description="Candidates of one customer arriving this close are arbitrated by "
        "priority; 0s disables",
    )
    dedupe_window: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=256, description="Decided action ids remembered per customer"
    )
    attribution_window: Duration = Field(
        default=timedelta(days=7),
        description="How long a send or holdout stays attributable to a conversion",
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("min_gap", "decision_window", "attribution_window")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @model_validator(mode="after")
    def _unique_cap_names(self) -> Policy:
        seen: set[str] = set()
        for cap in self.caps:
            if cap.name in seen:
                raise ValueError(f"duplicate cap name {cap.name!r}")
            seen.add(cap.name)
        return self

    def when_capped_for(self, rule_id: str, category: Category) -> WhenCapped:
        override = self.rule_overrides.get(rule_id)
        if override is not None and override.when_capped is not None:
            return override.when_capped
        return self.when_capped.for_category(category)

    @property
    def history_horizon(self) -> timedelta:
        """How long the contact history must remember a send: the longest window in use."""
        windows = [cap.per for cap in self.caps]
        return max([self.min_gap, self.attribution_window, *windows])

    def unknown_rule_overrides(self, rule_ids: Iterable[str]) -> list[str]:
        """Override keys that name no rule (for the rules-file loader to report)."""
        known = set(rule_ids)
        return sorted(rule_id for rule_id in self.rule_overrides if rule_id not in known)
