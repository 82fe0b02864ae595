"""The event envelope (contract, DESIGN.md §3) and one model per core event type.

`EVENT_MODELS[type]` validates a whole decoded message in one pass, so an error
points at the exact field (`properties.amount`), not just "bad event".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from schemas.properties import PROPERTIES_BY_TYPE, Properties
from schemas.timestamps import Rfc3339

SCHEMA_VERSION = 1
"""Current envelope version. Producers may omit it; a higher one is rejected, not guessed."""

EventType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.\-]{0,63}$")]
CustomerId = Annotated[str, Field(min_length=1, max_length=256)]


class Event(BaseModel):
    """A validated customer event. `properties` is typed for core types."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: Annotated[str, Field(min_length=1, max_length=256)]
    type: EventType
    customer_id: CustomerId
    occurred_at: Rfc3339
    source: Annotated[str, Field(max_length=256)] | None = None
    properties: Any = Field(default_factory=dict)

    @property
    def is_core(self) -> bool:
        return self.type in PROPERTIES_BY_TYPE


class CustomEvent(Event):
    """Any type outside the core list: accepted, properties kept as sent."""

    properties: dict[str, Any] = Field(default_factory=dict)


def _typed_event_model(event_type: str, properties: type[Properties]) -> type[Event]:
    name = "".join(part.capitalize() for part in event_type.split("_")) + "Event"
    model: type[Event] = create_model(
        name,
        __base__=Event,
        __doc__=f"A `{event_type}` event.",
        type=(Literal[event_type], ...),  # type: ignore[arg-type]
        properties=(properties, Field(default_factory=properties)),
    )
    return model


EVENT_MODELS: dict[str, type[Event]] = {
    event_type: _typed_event_model(event_type, props)
    for event_type, props in PROPERTIES_BY_TYPE.items()
}


def event_model_for(event_type: object) -> type[Event]:
    if isinstance(event_type, str):
        return EVENT_MODELS.get(event_type, CustomEvent)
    return CustomEvent
