"""The rules file (YAML): declarative triggers and the settings they depend on.

Conditions and durations are strings in the rules expression language
(`streams/core/expressions.py`); they are compiled when the file is loaded, so
a typo is reported with the rule, the field and the line, never at 3 am.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.candidate import Category
from schemas.policy import Policy

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
EventTypeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.\-]{0,63}$")]
ChannelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Condition = Annotated[str, Field(min_length=1, max_length=2000)]
DurationText = Annotated[str, Field(min_length=1, max_length=500)]

Stage = Literal[
    "prospect", "new", "regular", "seasonal", "at_risk", "dormant", "churned", "reactivated"
]
STAGES: tuple[str, ...] = get_args(Stage)


def _hh_mm(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError('must be a quoted local time "HH:MM", e.g. "09:00"')
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleBase(Strict):
    id: RuleId
    description: str = ""
    enabled: bool = True
    channels: Annotated[list[ChannelName], Field(min_length=1)] = Field(
        description="Channels in fallback order"
    )
    template: Annotated[str, Field(min_length=1, max_length=200)]
    category: Category
    priority: Annotated[int, Field(ge=0, le=1000)] = 50
    ttl: DurationText = Field(default="1d", description="How long the message stays relevant")
    audience: Condition | None = Field(
        default=None, description="Who is eligible, checked when the trigger fires"
    )
    exclude: Condition | None = Field(
        default=None, description="Who is never contacted by this rule, checked when it fires"
    )
    cancel_on: list[EventTypeName] = Field(
        default_factory=list, description="Events that cancel this rule's pending timers"
    )
    holdout: Annotated[float, Field(ge=0.0, le=0.9)] = Field(
        default=0.0, description="Share of customers kept as a control group"
    )
    attribution_window: DurationText = "7d"


class ActionRule(RuleBase):
    kind: Literal["action"]
    on: EventTypeName = Field(description="Event type that fires the rule")
    when: Condition | None = None
    occurrence: str | None = Field(
        default=None,
        description="Event property identifying the occurrence (default: the event id)",
    )


class InactivityRule(RuleBase):
    kind: Literal["inactivity"]
    after: EventTypeName = Field(description="Anchor event that arms the timer")
    unless: Annotated[list[EventTypeName], Field(min_length=1)] = Field(
        description="Events that, if they happen within the window, mean no trigger"
    )
    within: DurationText
    when: Condition | None = Field(default=None, description="Checked on the anchor event")
    rearm: bool = Field(
        default=True, description="A new anchor event restarts the window (e.g. cart changes)"
    )


class DelayRule(RuleBase):
    kind: Literal["delay"]
    after: EventTypeName
    delay: DurationText
    when: Condition | None = Field(
        default=None, description="Checked when due, with the anchor event in scope"
    )
    for_each: Literal["item_category"] | None = Field(
        default=None, description="One timer per distinct item category of the anchor event"
    )
    occurrence: str | None = Field(
        default=None,
        description="Anchor property identifying the occurrence (e.g. order_id): a re-sent "
        "anchor replaces its timer, and a cancel_on event naming it cancels only that one",
    )


class BeforeDateRule(RuleBase):
    kind: Literal["before"]
    on: EventTypeName = Field(description="Event carrying the date")
    date: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")] = Field(
        description="Property of the event holding the date (RFC 3339)"
    )
    before: DurationText
    occurrence: str | None = Field(
        default=None, description="Property identifying the date, so a reschedule replaces it"
    )
    when: Condition | None = Field(
        default=None, description="Checked when due, with the anchor event in scope"
    )


class LifecycleRule(RuleBase):
    kind: Literal["lifecycle"]
    enter: Annotated[list[Stage], Field(min_length=1)]


class ThresholdRule(RuleBase):
    kind: Literal["threshold"]
    quantity: Literal["total_spent", "orders_count", "reviews_count", "visits_count"]
    crosses: float = Field(description="Fires when the quantity goes from below to at/above")


class RecurringRule(RuleBase):
    kind: Literal["recurring"]
    date: Literal["birthday", "registered_at", "first_order_at"] = Field(
        description="Yearly date from the customer's state"
    )
    at: Annotated[time, BeforeValidator(_hh_mm)] = Field(
        default=time(9, 0), description='Local time in the customer\'s timezone, "HH:MM"'
    )


Rule = Annotated[
    ActionRule
    | InactivityRule
    | DelayRule
    | BeforeDateRule
    | LifecycleRule
    | ThresholdRule
    | RecurringRule,
    Field(discriminator="kind"),
]


class RfmSettings(Strict):
    """Quantile thresholds for scores 1-5 (four ascending cut points each)."""

    recency_days: Annotated[list[float], Field(min_length=4, max_length=4)] = [
        30.0,
        90.0,
        180.0,
        365.0,
    ]
    frequency: Annotated[list[float], Field(min_length=4, max_length=4)] = [1.0, 2.0, 4.0, 8.0]
    monetary: Annotated[list[float], Field(min_length=4, max_length=4)] = [
        50.0,
        150.0,
        400.0,
        1000.0,
    ]
    learn: bool = Field(
        default=False,
        description="Score against the quintiles of the customers with an order, learned "
        "online per worker, instead of the cut points above (used until "
        "learn_min_customers such customers are known)",
    )
    learn_min_customers: Annotated[int, Field(ge=1)] = Field(
        default=100,
        description="Customers with an order (on this worker) before learned scores apply",
    )


class LifecycleSettings(Strict):
    regular_min_orders: Annotated[int, Field(ge=2)] = 3
    at_risk_after: DurationText = Field(
        default="max(personal_interval() * 2, 60d)",
        description="No order for this long after the last one: at_risk",
    )
    dormant_after: DurationText = "120d"
    churned_after: DurationText = "180d"
    seasonal_min_years: Annotated[int, Field(ge=2)] = 2


class IntervalSettings(Strict):
    personal_min_gaps: Annotated[int, Field(ge=1)] = 2
    population_fallback: DurationText = Field(
        default="60d", description="Used until enough population gaps are learned"
    )
    learn_population: bool = True
    consumption_cycles: dict[str, DurationText] = Field(
        default_factory=dict, description="Per product category, e.g. motor_oil: 270d"
    )
    learn_consumption_cycles: bool = True


class EngineSettings(Strict):
    default_timezone: str = "UTC"
    rfm: RfmSettings = RfmSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    intervals: IntervalSettings = IntervalSettings()
    max_timers_per_customer: Annotated[int, Field(ge=4, le=1000)] = 64


class RuleSet(Strict):
    version: Literal[1] = 1
    settings: EngineSettings = EngineSettings()
    policy: Policy = Field(default_factory=Policy, description="The contact policy")
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self
