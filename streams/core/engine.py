"""The trigger engine: rules + one customer's state + an event or a clock -> candidates.

Both the Faust journey agent and the offline simulator drive this class, so
what the simulator says is what production does. Time is event time: an event
first fires the customer's timers that came due before it, then is applied;
a timer fires with `now` = its due time. Deterministic for a given sequence of
events per customer.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from mypy_extensions import mypyc_attr

from schemas.candidate_record import CandidateRecord, ReasonRecord
from schemas.event import Event
from schemas.profile_record import ProfileRecord, profile_of
from schemas.properties import OrderPlacedProperties
from schemas.rules import (
    ActionRule,
    BeforeDateRule,
    DelayRule,
    InactivityRule,
    LifecycleRule,
    RecurringRule,
    Rule,
    RuleSet,
    ThresholdRule,
)
from schemas.state import CustomerState
from schemas.timer_record import TimerRecord, new_timer
from schemas.timestamps import format_utc
from streams.core.action_ids import action_id
from streams.core.customer_state import StateLimits, apply_event, is_duplicate, new_state
from streams.core.expressions import Expression, ExpressionError, compile_expression
from streams.core.intervals import PopulationStats, personal_interval
from streams.core.lifecycle import (
    LAPSED,
    lapse_thresholds,
    stage_after_event,
)
from streams.core.rfm import measures, rfm_scores
from streams.core.rfm_population import Measures, RfmPopulation
from streams.core.rule_scope import FUNCTIONS, ROOTS, IntervalFunctions, RuleScope, known_field
from streams.core.rules_loader import RuleProblem, RulesError, line_of, parse_ruleset

LIFECYCLE_TIMER = "__lifecycle__"
MIN_INTERVAL = timedelta(days=1)
"""Floor of dynamic intervals (personal rhythm, learned cycles)."""
QUANTITY_EVENTS: Mapping[str, tuple[str, ...]] = {
    "total_spent": ("order_placed", "order_cancelled"),
    "orders_count": ("order_placed", "order_cancelled"),
    "reviews_count": ("review_submitted",),
    "visits_count": ("visit",),
}
"""Which events can move a threshold quantity."""
THRESHOLD_QUANTITIES = tuple(QUANTITY_EVENTS)
ORDER_EVENTS = frozenset({"order_placed", "order_cancelled"})
"""The events that change what RFM measures (orders, spend, the last order)."""
STATE_STAGE_EVENTS = frozenset({"registered", "order_placed", "order_cancelled", "profile_updated"})
"""Events that can change a lifecycle stage or a recurring date."""
CONTEXT_STRING_LIMIT = 256
CONTEXT_PROPERTY_LIMIT = 32


@dataclass(slots=True, init=False)
class Step:
    """What one call changed. `timers_changed` tells the shell to re-index the customer."""

    state: CustomerState
    candidates: list[CandidateRecord]
    duplicate: bool
    timers_changed: bool
    fired: list[datetime]
    """Due times of the timers that fired (for lateness metrics)."""
    overdue: list[CandidateRecord]
    """Candidates of timers that came due before the event, as of before it: they are a
    step of their own (what a live worker would have fired at their due time)."""
    overdue_at: datetime | None
    overdue_profile: ProfileRecord | None
    """Consent, DOI and timezone as they were before the event."""

    def __init__(self, state: CustomerState, duplicate: bool = False) -> None:
        # Written out: the __init__ that @dataclass generates is interpreted even in the
        # compiled core (~0.25 µs, one or two per event); this one is compiled.
        self.state = state
        self.candidates = []
        self.duplicate = duplicate
        self.timers_changed = False
        self.fired = []
        self.overdue = []
        self.overdue_at = None
        self.overdue_profile = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    index: int
    audience: Expression | None
    exclude: Expression | None
    when: Expression | None
    ttl: Expression
    window: Expression | None
    """within / delay / before, depending on the kind."""


# Tests subclass it to inject a failure; compiled, a class is closed unless it says so.
@mypyc_attr(allow_interpreted_subclasses=True)
class Engine:
    def __init__(
        self,
        ruleset: RuleSet,
        *,
        yaml_root: yaml.Node | None = None,
        source: str = "<rules>",
        limits: StateLimits | None = None,
        population: PopulationStats | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.settings = ruleset.settings
        self.limits = limits or StateLimits()
        self.population = population or PopulationStats()
        self.rfm_population = RfmPopulation()
        self.learns_rfm = self.settings.rfm.learn
        self._counted: tuple[Measures, Measures] | None = None
        """The last count `_apply` moved (to take back if the event then fails)."""
        self.default_tz = ZoneInfo(self.settings.default_timezone)
        problems: list[RuleProblem] = []
        self.rules: dict[str, CompiledRule] = {}
        for index, rule in enumerate(ruleset.rules):
            compiled = self._compile(rule, index, yaml_root, problems)
            if compiled is not None and rule.enabled:
                self.rules[rule.id] = compiled
        lifecycle = self.settings.lifecycle
        self.at_risk_after = self._compile_setting(
            lifecycle.at_risk_after,
            ("settings", "lifecycle", "at_risk_after"),
            yaml_root,
            problems,
        )
        self.dormant_after = self._compile_setting(
            lifecycle.dormant_after,
            ("settings", "lifecycle", "dormant_after"),
            yaml_root,
            problems,
        )
        self.churned_after = self._compile_setting(
            lifecycle.churned_after,
            ("settings", "lifecycle", "churned_after"),
            yaml_root,
            problems,
        )
        self.population_fallback = self._compile_setting(
            self.settings.intervals.population_fallback,
            ("settings", "intervals", "population_fallback"),
            yaml_root,
            problems,
        )
        self.cycles: dict[str, Expression | None] = {
            category: self._compile_setting(
                text,
                ("settings", "intervals", "consumption_cycles", category),
                yaml_root,
                problems,
            )
            for category, text in self.settings.intervals.consumption_cycles.items()
        }
        for unknown in ruleset.policy.unknown_rule_overrides([r.id for r in ruleset.rules]):
            problems.append(
                RuleProblem(
                    line_of(yaml_root, ("policy", "rule_overrides", unknown)),
                    unknown,
                    "policy.rule_overrides",
                    "names no rule of this file",
                )
            )
        if problems:
            raise RulesError(source, problems)
        self._index()
        self._context_cache: tuple[Event, dict[str, Any]] | None = None
        self.intervals = IntervalFunctions(self._personal_interval, self._category_cycle)

    # ---------------------------------------------------------------- compile
    def _compile_text(
        self,
        text: str | None,
        loc: tuple[int | str, ...],
        root: yaml.Node | None,
        rule_id: str | None,
        problems: list[RuleProblem],
        duration: bool = False,
    ) -> Expression | None:
        if text is None:
            return None
        try:
            compiled = compile_expression(
                text, roots=ROOTS, functions=FUNCTIONS, known_field=known_field
            )
        except ExpressionError as exc:
            problems.append(RuleProblem(line_of(root, loc), rule_id, str(loc[-1]), str(exc)))
            return None
        if duration:
            # A constant that is not a duration ("30" instead of "30d") would make the
            # rule silently never arm: refuse it here.
            value = compiled.evaluate(_EMPTY_SCOPE)
            if value is not None and not isinstance(value, timedelta):
                problems.append(
                    RuleProblem(
                        line_of(root, loc),
                        rule_id,
                        str(loc[-1]),
                        f"{text!r} is not a duration: add a unit, e.g. {text}d, 1h, 30m",
                    )
                )
                return None
        return compiled

    def _compile_setting(
        self,
        text: str,
        loc: tuple[int | str, ...],
        root: yaml.Node | None,
        problems: list[RuleProblem],
    ) -> Expression | None:
        return self._compile_text(text, loc, root, None, problems, duration=True)

    def _compile(
        self, rule: Rule, index: int, root: yaml.Node | None, problems: list[RuleProblem]
    ) -> CompiledRule | None:
        before = len(problems)

        def expr(name: str, text: str | None, duration: bool = False) -> Expression | None:
            return self._compile_text(
                text, ("rules", index, name), root, rule.id, problems, duration
            )

        window_field = {
            "inactivity": "within",
            "delay": "delay",
            "before": "before",
        }.get(rule.kind)
        compiled = CompiledRule(
            rule=rule,
            index=index,
            audience=expr("audience", rule.audience),
            exclude=expr("exclude", rule.exclude),
            when=expr("when", getattr(rule, "when", None)),
            ttl=expr("ttl", rule.ttl, duration=True) or _NEVER,
            window=(
                expr(window_field, getattr(rule, window_field), duration=True)
                if window_field
                else None
            ),
        )
        return compiled if len(problems) == before else None

    def _index(self) -> None:
        self.actions: dict[str, list[CompiledRule]] = defaultdict(list)
        self.anchors: dict[str, list[CompiledRule]] = defaultdict(list)
        self.cancels: dict[str, set[str]] = defaultdict(set)
        self.by_stage: dict[str, list[CompiledRule]] = defaultdict(list)
        self.thresholds: list[CompiledRule] = []
        self.recurring: list[CompiledRule] = []
        for compiled in self.rules.values():
            rule = compiled.rule
            for event_type in rule.cancel_on:
                self.cancels[event_type].add(rule.id)
            if isinstance(rule, ActionRule):
                self.actions[rule.on].append(compiled)
            elif isinstance(rule, InactivityRule):
                self.anchors[rule.after].append(compiled)
                for event_type in rule.unless:
                    self.cancels[event_type].add(rule.id)
            elif isinstance(rule, DelayRule):
                self.anchors[rule.after].append(compiled)
            elif isinstance(rule, BeforeDateRule):
                self.anchors[rule.on].append(compiled)
            elif isinstance(rule, LifecycleRule):
                for stage in rule.enter:
                    self.by_stage[stage].append(compiled)
            elif isinstance(rule, ThresholdRule):
                self.thresholds.append(compiled)
            elif isinstance(rule, RecurringRule):
                self.recurring.append(compiled)
        threshold_events = {
            event_type
            for c in self.thresholds
            for event_type in QUANTITY_EVENTS.get(c.rule.quantity, ())  # type: ignore[union-attr]
        }
        self.active_types = frozenset(
            {*self.actions, *self.anchors, *self.cancels, *threshold_events, *STATE_STAGE_EVENTS}
        )
        """Event types any rule, threshold, lifecycle or recurring date reacts to. Others
        (page views, visits...) only fold into state and let due timers fire: a fast path."""

    # ---------------------------------------------------------- intervals
    def _personal_interval(self, state: CustomerState) -> timedelta:
        own = personal_interval(state, self.settings.intervals.personal_min_gaps)
        if own is None and self.settings.intervals.learn_population:
            own = self.population.typical_gap()
        if own is None:
            own = self._duration(self.population_fallback, None) or timedelta(days=60)
        # Two orders in one session are not a rhythm: never react faster than a day.
        return max(own, MIN_INTERVAL)

    def _category_cycle(self, category: str) -> timedelta | None:
        configured = self.cycles.get(category)
        if configured is not None:
            return self._duration(configured, None)
        if self.settings.intervals.learn_consumption_cycles:
            learned = self.population.category_cycle(category)
            return max(learned, MIN_INTERVAL) if learned is not None else None
        return None

    def _duration(self, expression: Expression | None, scope: RuleScope | None) -> timedelta | None:
        if expression is None:
            return None
        value = expression.evaluate(scope if scope is not None else _EMPTY_SCOPE)
        if isinstance(value, timedelta) and value >= timedelta(0):
            return value
        return None

    def _scope(
        self,
        state: CustomerState,
        now: datetime,
        event: Event | Mapping[str, Any] | None,
        item: Mapping[str, Any] | None = None,
        timer: Mapping[str, Any] | None = None,
    ) -> RuleScope:
        return RuleScope(state, now, event, self.intervals, self._rfm, item=item, timer=timer)

    def _rfm(self, state: CustomerState, now: datetime) -> Mapping[str, Any]:
        return rfm_scores(state, now, self.settings.rfm, self.rfm_population).as_dict()

    def rfm(self, state: CustomerState, now: datetime) -> Mapping[str, Any]:
        return self._rfm(state, now)

    # ------------------------------------------------------------- public
    def on_event(self, state: CustomerState | None, event: Event) -> Step:
        if state is not None or not self.learns_rfm:
            return self._on_event(state, event)
        self._counted = None
        try:
            return self._on_event(None, event)
        except Exception:
            # A new customer's state goes with the error (the caller has none to keep):
            # so does its count. A known customer's is kept, changed, and counted so.
            self._take_back_count()
            raise

    def _take_back_count(self) -> None:
        # Read in a method of its own: in `on_event`, mypy still takes `_counted` for the
        # None assigned before the call that set it, and compiled code trusts mypy.
        counted = self._counted
        if counted is not None:
            self.rfm_population.move(counted[1], counted[0])

    def _on_event(self, state: CustomerState | None, event: Event) -> Step:
        if state is None:
            state = new_state(event.customer_id)
        elif is_duplicate(state, event.event_id):
            return Step(state=state, duplicate=True)
        # Fields of pydantic models are read once into locals: each read is a generic
        # attribute lookup (~35 ns), and a page view made ~100 of them in all.
        at = event.occurred_at
        event_type = event.type
        step = Step(state=state)
        timers = state.timers
        timers_before = len(timers)
        if timers and timers[0].due_at < at:
            self._fire_overdue(state, at, step)
        if event_type not in self.active_types:
            self._apply(state, event)
            if len(state.timers) != timers_before:
                step.timers_changed = True
            return step
        before = {q: getattr(state, q) for q in THRESHOLD_QUANTITIES}
        last_order_before = state.last_order_at
        is_order = event_type == "order_placed"
        categories_before = dict(state.category_last_purchase) if is_order else {}
        self._apply(state, event)
        new_order = is_order and state.orders_count > before["orders_count"]
        if new_order and isinstance(event.properties, OrderPlacedProperties):
            categories = sorted({i.category for i in event.properties.items if i.category})
            self.population.observe_order(last_order_before, at, categories_before, categories)
        if is_order and not new_order:
            # The same order_id again under another event id: state ignored it, and
            # so do the rules (no second thank-you, no second review request).
            return step
        scope = self._scope(state, at, event)
        self._context_cache = None
        if self._cancel(state, event):
            step.timers_changed = True
        self._lifecycle_after_event(state, event, scope, step, new_order)
        for compiled in self.actions.get(event_type, ()):
            self._fire_action(state, event, scope, compiled, step)
        self._thresholds(state, before, scope, step)
        for compiled in self.anchors.get(event_type, ()):
            self._arm(state, event, scope, compiled, step)
        if self.recurring and event_type in ("registered", "profile_updated", "order_placed"):
            self._arm_recurring(state, at, step)
        if len(state.timers) != timers_before:
            step.timers_changed = True
        return step

    def _apply(self, state: CustomerState, event: Event) -> None:
        if not self.learns_rfm or event.type not in ORDER_EVENTS:
            apply_event(state, event, self.limits)
            return
        # Counted before the rules run: a rule on this order sees its customer among
        # the population, with the measures it scores.
        before = measures(state)
        apply_event(state, event, self.limits)
        after = measures(state)
        self.rfm_population.move(before, after)
        self._counted = (before, after)

    def _fire_overdue(self, state: CustomerState, at: datetime, step: Step) -> None:
        overdue = Step(state=state)
        self._fire_due(state, at, overdue, strictly_before=True)
        step.fired.extend(overdue.fired)
        step.timers_changed = True
        if overdue.candidates:
            step.overdue = overdue.candidates
            step.overdue_at = max(overdue.fired)
            step.overdue_profile = profile_of(state)

    def advance(self, state: CustomerState, until: datetime) -> Step:
        """Fire every timer of this customer due at or before `until`."""
        step = Step(state=state)
        self._fire_due(state, until, step, strictly_before=False)
        return step

    @staticmethod
    def next_due(state: CustomerState) -> datetime | None:
        return state.timers[0].due_at if state.timers else None

    # ------------------------------------------------------------ timers
    def _schedule(self, state: CustomerState, timer: TimerRecord, step: Step) -> None:
        timer_id = timer.timer_id
        timers = [t for t in state.timers if t.timer_id != timer_id]
        bisect.insort(timers, timer, key=lambda t: (t.due_at, t.timer_id))
        limit = self.settings.max_timers_per_customer
        if len(timers) > limit:
            del timers[limit:]
        state.timers = timers
        step.timers_changed = True

    def _fire_due(
        self, state: CustomerState, until: datetime, step: Step, *, strictly_before: bool
    ) -> None:
        while state.timers:
            head = state.timers[0]
            due_at = head.due_at
            if due_at > until or (strictly_before and due_at == until):
                return
            state.timers.pop(0)
            step.timers_changed = True
            step.fired.append(due_at)
            self._fire(state, head, step)

    def _cancel(self, state: CustomerState, event: Event) -> bool:
        rule_ids = self.cancels.get(event.type)
        if not rule_ids or not state.timers:
            return False
        at = event.occurred_at
        kept = [
            t
            for t in state.timers
            if not (t.rule_id in rule_ids and t.anchor_at <= at <= t.due_at and _concerns(t, event))
        ]
        changed = len(kept) != len(state.timers)
        state.timers = kept
        return changed

    def _fire(self, state: CustomerState, timer: TimerRecord, step: Step) -> None:
        if timer.rule_id == LIFECYCLE_TIMER:
            self._lapse(state, timer, step)
            return
        compiled = self.rules.get(timer.rule_id)
        if compiled is None:
            return  # the rule was removed or disabled since the timer was armed
        rule = compiled.rule
        timer_view = {
            "anchor_at": timer.anchor_at,
            "due_at": timer.due_at,
            "occurrence": timer.occurrence,
        }
        scope = self._scope(
            state,
            timer.due_at,
            timer.context.get("event"),
            timer.context.get("item"),
            timer_view,
        )
        if isinstance(rule, DelayRule | BeforeDateRule) and not _holds(compiled.when, scope):
            return
        if isinstance(rule, RecurringRule):
            self._arm_recurring(state, timer.due_at, step, only=compiled)
        reason = _timer_reason(rule, timer)
        self._propose(
            state,
            compiled,
            scope,
            timer.due_at,
            timer.occurrence,
            reason,
            step,
            trigger={
                "timer_id": timer.timer_id,
                "anchor_at": timer.anchor_at,
                **timer.context.get("item", {}),
            },
            event_view=timer.context.get("event"),
        )

    # ------------------------------------------------------------ kinds
    def _fire_action(
        self,
        state: CustomerState,
        event: Event,
        scope: RuleScope,
        compiled: CompiledRule,
        step: Step,
    ) -> None:
        rule = compiled.rule
        assert isinstance(rule, ActionRule)
        if not _holds(compiled.when, scope):
            return
        occurrence, _ = self._occurrence(rule, event, scope)
        reason = ReasonRecord(code=f"action:{event.type}", text=f"{event.type} happened")
        self._propose(
            state,
            compiled,
            scope,
            event.occurred_at,
            occurrence,
            reason,
            step,
            trigger={},
            event_view=self._event_context(event),
        )

    def _arm(
        self,
        state: CustomerState,
        event: Event,
        scope: RuleScope,
        compiled: CompiledRule,
        step: Step,
    ) -> None:
        rule = compiled.rule
        at = event.occurred_at
        context: dict[str, Any] = {"event": self._event_context(event)}
        occurrence, match = self._occurrence(rule, event, scope)
        if match is not None:
            context["match"] = match
        if isinstance(rule, InactivityRule):
            # `when` of an inactivity rule is about the anchor event.
            if not _holds(compiled.when, scope):
                return
            if not rule.rearm and any(t.rule_id == rule.id for t in state.timers):
                return
            within = self._duration(compiled.window, scope)
            if within is None:
                return
            state.timers = [t for t in state.timers if t.rule_id != rule.id]
            self._schedule(
                state, new_timer(rule.id, rule.id, at + within, at, occurrence, context), step
            )
        elif isinstance(rule, DelayRule):
            # `when` of a delay rule is checked when due, with the anchor event and
            # the item in scope: the state then is what matters.
            if rule.for_each == "item_category":
                props = event.properties
                items = props.items if isinstance(props, OrderPlacedProperties) else []
                for category in sorted({i.category for i in items if i.category}):
                    item = {"category": category}
                    delay = self._duration(
                        compiled.window, self._scope(state, at, event, item=item)
                    )
                    if delay is not None:
                        self._schedule(
                            state,
                            new_timer(
                                f"{rule.id}:{category}",
                                rule.id,
                                at + delay,
                                at,
                                f"{occurrence}:{category}",
                                {**context, "item": item},
                            ),
                            step,
                        )
                return
            delay = self._duration(compiled.window, scope)
            if delay is not None:
                self._schedule(
                    state,
                    new_timer(
                        f"{rule.id}:{occurrence}", rule.id, at + delay, at, occurrence, context
                    ),
                    step,
                )
        elif isinstance(rule, BeforeDateRule):
            when = _as_datetime(scope.resolve(("event", rule.date)))
            if when is None or when <= at:
                return
            before = self._duration(compiled.window, scope)
            if before is None:
                return
            context["date"] = when
            self._schedule(
                state,
                new_timer(
                    f"{rule.id}:{occurrence}",
                    rule.id,
                    max(at, when - before),
                    at,
                    f"{occurrence}:{format_utc(when)}",
                    context,
                ),
                step,
            )

    @staticmethod
    def _occurrence(rule: Rule, event: Event, scope: RuleScope) -> tuple[str, list[str] | None]:
        """What identifies this occurrence: the event id, or the rule's `occurrence`
        property (e.g. an order id, so a re-sent order is the same occurrence)."""
        name = rule.__dict__.get("occurrence")
        if name:
            value = scope.resolve(("event", name))
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                text = str(value)
                return (f"{name}:{text}" if isinstance(rule, ActionRule) else text), [name, text]
        return event.event_id, None

    def _event_context(self, event: Event) -> dict[str, Any]:
        """The anchor event as timers keep it; built at most once per event."""
        cached = self._context_cache
        if cached is None or cached[0] is not event:
            cached = self._context_cache = (event, _event_context(event))
        return cached[1]

    def _thresholds(
        self, state: CustomerState, before: Mapping[str, Any], scope: RuleScope, step: Step
    ) -> None:
        for compiled in self.thresholds:
            rule = compiled.rule
            assert isinstance(rule, ThresholdRule)
            old, new = before[rule.quantity], getattr(state, rule.quantity)
            if old < rule.crosses <= new:
                count = state.threshold_crossings.get(rule.id, 0) + 1
                state.threshold_crossings[rule.id] = count
                reason = ReasonRecord(
                    code="threshold", text=f"{rule.quantity} reached {rule.crosses:g} ({new:g})"
                )
                self._propose(
                    state,
                    compiled,
                    scope,
                    scope.now,
                    f"crossing:{count}",
                    reason,
                    step,
                    trigger={"quantity": rule.quantity, "value": new},
                    event_view=None,
                )

    # --------------------------------------------------------- lifecycle
    def _lifecycle_after_event(
        self, state: CustomerState, event: Event, scope: RuleScope, step: Step, new_order: bool
    ) -> None:
        stage = stage_after_event(state, event.type, self.settings.lifecycle)
        if stage != state.lifecycle_stage and stage is not None:
            self._enter(state, stage, event.occurred_at, scope, step)
        if new_order or event.type == "order_cancelled":
            self._arm_lapses(state, scope, step)

    def _arm_lapses(self, state: CustomerState, scope: RuleScope, step: Step) -> None:
        state.timers = [t for t in state.timers if t.rule_id != LIFECYCLE_TIMER]
        step.timers_changed = True
        last = state.last_order_at
        if last is None:
            return
        at_risk = self._duration(self.at_risk_after, scope) or timedelta(days=90)
        dormant = self._duration(self.dormant_after, scope) or timedelta(days=120)
        churned = self._duration(self.churned_after, scope) or timedelta(days=180)
        for stage, after in lapse_thresholds(state, at_risk, dormant, churned):
            self._schedule(
                state,
                TimerRecord(
                    timer_id=f"{LIFECYCLE_TIMER}:{stage}",
                    rule_id=LIFECYCLE_TIMER,
                    due_at=last + after,
                    anchor_at=last,
                    occurrence=stage,
                    context={"stage": stage, "after_seconds": after.total_seconds()},
                ),
                step,
            )

    def _lapse(self, state: CustomerState, timer: TimerRecord, step: Step) -> None:
        if state.last_order_at != timer.anchor_at:
            return  # an order since then re-armed the lapse timers
        stage = str(timer.context.get("stage"))
        current = state.lifecycle_stage
        if current in LAPSED and LAPSED.index(current) >= LAPSED.index(stage):
            return
        scope = self._scope(state, timer.due_at, None)
        self._enter(state, stage, timer.due_at, scope, step)

    def _enter(
        self, state: CustomerState, stage: str, at: datetime, scope: RuleScope, step: Step
    ) -> None:
        previous = state.lifecycle_stage
        state.lifecycle_stage = stage
        state.lifecycle_changed_at = at
        for compiled in self.by_stage.get(stage, ()):
            reason = ReasonRecord(
                code="lifecycle", text=f"entered {stage} (from {previous or 'none'})"
            )
            self._propose(
                state,
                compiled,
                scope,
                at,
                f"{stage}:{format_utc(at)}",
                reason,
                step,
                trigger={"stage": stage, "previous_stage": previous},
                event_view=None,
            )

    # --------------------------------------------------------- recurring
    def _arm_recurring(
        self, state: CustomerState, after: datetime, step: Step, only: CompiledRule | None = None
    ) -> None:
        for compiled in (only,) if only is not None else self.recurring:
            rule = compiled.rule
            assert isinstance(rule, RecurringRule)
            anchor = _recurring_date(state, rule.date)
            existing = next((t for t in state.timers if t.rule_id == rule.id), None)
            if anchor is None:
                if existing is not None:
                    state.timers = [t for t in state.timers if t.rule_id != rule.id]
                    step.timers_changed = True
                continue
            tz = self._timezone(state)
            due = next_yearly(anchor, rule.at, tz, after)
            if existing is not None and existing.due_at == due:
                continue
            self._schedule(
                state,
                TimerRecord(
                    timer_id=rule.id,
                    rule_id=rule.id,
                    due_at=due,
                    anchor_at=after,
                    occurrence=str(due.astimezone(tz).year),
                    context={},
                ),
                step,
            )

    def _timezone(self, state: CustomerState) -> ZoneInfo:
        name = state.profile.timezone
        if name:
            try:
                return ZoneInfo(name)
            except (KeyError, ValueError, OSError):
                pass
        return self.default_tz

    # ----------------------------------------------------------- propose
    def _propose(
        self,
        state: CustomerState,
        compiled: CompiledRule,
        scope: RuleScope,
        triggered_at: datetime,
        occurrence: str,
        reason: ReasonRecord,
        step: Step,
        trigger: Mapping[str, Any],
        event_view: Mapping[str, Any] | None,
    ) -> None:
        if compiled.audience is not None and not _holds(compiled.audience, scope):
            return
        if compiled.exclude is not None and _holds(compiled.exclude, scope):
            return
        rule = compiled.rule
        ttl = self._duration(compiled.ttl, scope) or timedelta(days=1)
        step.candidates.append(
            CandidateRecord(
                action_id=action_id(rule.id, state.customer_id, occurrence),
                rule_id=rule.id,
                customer_id=state.customer_id,
                channels=list(rule.channels),
                template=rule.template,
                category=rule.category,
                priority=rule.priority,
                payload=_payload(state, rule.kind, occurrence, trigger, event_view),
                triggered_at=triggered_at,
                expires_at=triggered_at + ttl,
                reason=reason,
                event_id=(event_view or {}).get("event_id"),
                holdout=in_holdout(state.customer_id, rule.id, rule.holdout),
            )
        )


class _EmptyScope:
    def resolve(self, path: tuple[str, ...]) -> Any:
        return None

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        return None


_EMPTY_SCOPE: Any = _EmptyScope()
_NEVER = compile_expression("1d", roots=ROOTS, functions=FUNCTIONS)


def _concerns(timer: TimerRecord, event: Event) -> bool:
    """Does a cancelling event concern this timer? A timer armed for one occurrence (say
    order o-1) is cancelled only by an event naming the same one (`order_id: o-1`);
    events that do not carry that property cancel every timer of the rule."""
    match = timer.context.get("match")
    if not match:
        return True
    name, value = match
    props = event.properties
    other = props.get(name) if isinstance(props, Mapping) else getattr(props, name, None)
    if other is None and not isinstance(props, Mapping) and props.__pydantic_extra__:
        other = props.__pydantic_extra__.get(name)
    return other is None or str(other) == value


def _as_datetime(value: Any) -> datetime | None:
    """Dates of custom events arrive as strings: accept RFC 3339 with a zone."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


def _holds(expression: Expression | None, scope: RuleScope) -> bool:
    return expression is None or bool(expression.evaluate(scope))


def in_holdout(customer_id: str, rule_id: str, share: float) -> bool:
    """Deterministic by customer and rule: the same customer is always in or out."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{rule_id}\x1f{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _event_context(event: Event) -> dict[str, Any]:
    """The anchor event as timers keep it: envelope and scalar properties, bounded."""
    context: dict[str, Any] = {
        "type": event.type,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
    }
    props = event.properties
    values: Mapping[str, Any] = props if isinstance(props, Mapping) else props.__dict__
    extra = None if isinstance(props, Mapping) else props.__pydantic_extra__
    for source in (values, extra or {}):
        for name, value in source.items():
            if len(context) >= CONTEXT_PROPERTY_LIMIT:
                return context
            if value is None:
                continue
            if isinstance(value, str):
                context[name] = value[:CONTEXT_STRING_LIMIT]
            elif isinstance(value, bool | int | float | datetime):
                context[name] = value
    return context


def _payload(
    state: CustomerState,
    kind: str,
    occurrence: str,
    trigger: Mapping[str, Any],
    event_view: Mapping[str, Any] | None,
) -> dict[str, Any]:
    profile = state.profile
    payload: dict[str, Any] = {
        "customer": {
            "first_name": profile.first_name,
            "email": profile.email,
            "phone": profile.phone,
            "locale": profile.locale,
            "timezone": profile.timezone,
            "tier": profile.tier,
            "orders_count": state.orders_count,
            "total_spent": state.total_spent,
            "lifecycle_stage": state.lifecycle_stage,
        },
        "trigger": {"kind": kind, "occurrence": occurrence, **_jsonable(trigger)},
    }
    if event_view is not None:
        payload["event"] = _jsonable(event_view)
    return payload


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: format_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _timer_reason(rule: Rule, timer: TimerRecord) -> ReasonRecord:
    if isinstance(rule, InactivityRule):
        return ReasonRecord(
            code="inactivity",
            text=f"no {' / '.join(rule.unless)} within {rule.within} after {rule.after}",
        )
    if isinstance(rule, DelayRule):
        return ReasonRecord(code="delay", text=f"{rule.delay} after {rule.after}")
    if isinstance(rule, BeforeDateRule):
        return ReasonRecord(code="before", text=f"{rule.before} before {rule.on}.{rule.date}")
    if isinstance(rule, RecurringRule):
        return ReasonRecord(code="recurring", text=f"yearly on {rule.date} ({timer.occurrence})")
    return ReasonRecord(code=rule.kind, text=rule.kind)


def _recurring_date(state: CustomerState, source: str) -> date | None:
    if source == "birthday":
        return state.profile.birthday
    value = getattr(state, source, None)
    return value.date() if isinstance(value, datetime) else None


def next_yearly(anchor: date, at: time, tz: ZoneInfo, after: datetime) -> datetime:
    """First instant strictly after `after` that is `anchor`'s month/day at `at`, local time.

    29 February falls on 28 February in other years. A local time skipped by a
    DST change resolves to the offset before the change (Python's fold=0).
    """
    local_year = after.astimezone(tz).year
    for year in range(local_year, local_year + 3):
        day = anchor.day
        if anchor.month == 2 and anchor.day == 29 and not _leap(year):
            day = 28
        local = datetime(year, anchor.month, day, at.hour, at.minute, tzinfo=tz)
        instant = local.astimezone(UTC)
        if instant > after:
            return instant
    raise AssertionError("unreachable: a yearly date always recurs within three years")


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def load_engine(
    text: str,
    source: str = "<rules>",
    limits: StateLimits | None = None,
    population: PopulationStats | None = None,
) -> Engine:
    ruleset, root = parse_ruleset(text, source)
    return Engine(ruleset, yaml_root=root, source=source, limits=limits, population=population)
