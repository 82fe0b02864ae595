"""Built-in action triggers that fire at once on an event type.

This is the engine's minimal trigger set until declarative rules (YAML) replace
it: `welcome` on registration and `order_thanks` on every order. Rule ids match
the default playbook's (a contract), so downstream consumers see the same ids
before and after rules arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from schemas.candidate import Candidate, Category, Reason
from schemas.event import Event
from schemas.properties import OrderPlacedProperties
from schemas.state import CustomerState
from streams.core.action_ids import action_id


@dataclass(frozen=True, slots=True)
class ActionTrigger:
    rule_id: str
    on_event: str
    channels: tuple[str, ...]
    template: str
    category: Category
    priority: int
    ttl: timedelta
    reason_text: str
    occurrence_property: str | None = None
    """A property that identifies the occurrence better than the event id (e.g. the
    order id: an order re-sent under a new event id is the same occurrence)."""
    occurrence_property: str | None = None
    """A property that identifies the occurrence better than the event id (e.g. the
    order id: an order re-sent under a new event id is the same occurrence)."""


BUILTIN_TRIGGERS: tuple[ActionTrigger, ...] = (
    ActionTrigger(
        "welcome",
        "registered",
        ("email", "push"),
        "welcome_v1",
        Category.SERVICE,
        50,
        timedelta(days=2),
        "customer registered",
    ),
    ActionTrigger(
        "order_thanks",
        "order_placed",
        ("email",),
        "order_thanks_v1",
        Category.TRANSACTIONAL,
        90,
        timedelta(days=1),
        "order placed",
        "order_id",
    ),
)


def _payload(event: Event, state: CustomerState) -> dict[str, object]:
    payload: dict[str, object] = {
        "customer": {
            "first_name": state.profile.first_name,
            "locale": state.profile.locale,
            "orders_count": state.orders_count,
        },
        "event": {"event_id": event.event_id, "type": event.type},
    }
    if isinstance(event.properties, OrderPlacedProperties):
        payload["order"] = {
            "order_id": event.properties.order_id,
            "amount": event.properties.amount,
            "currency": event.properties.currency,
        }
    return payload


def fire_action_triggers(
    event: Event, state: CustomerState, triggers: tuple[ActionTrigger, ...] = BUILTIN_TRIGGERS
) -> list[Candidate]:
    """Candidates proposed by `event` given the state after applying it."""
    candidates: list[Candidate] = []
    for trigger in triggers:
        if trigger.on_event != event.type:
            continue
        occurrence = event.event_id
        if trigger.occurrence_property is not None:
            value = getattr(event.properties, trigger.occurrence_property, None)
            if isinstance(value, str) and value:
                occurrence = f"{trigger.occurrence_property}:{value}"
        candidates.append(
            Candidate(
                action_id=action_id(trigger.rule_id, event.customer_id, occurrence),
                rule_id=trigger.rule_id,
                customer_id=event.customer_id,
                channels=list(trigger.channels),
                template=trigger.template,
                category=trigger.category,
                priority=trigger.priority,
                payload=_payload(event, state),
                triggered_at=event.occurred_at,
                expires_at=event.occurred_at + trigger.ttl,
                reason=Reason(code=f"event:{event.type}", text=trigger.reason_text),
                event_id=event.event_id,
            )
        )
    return candidates
