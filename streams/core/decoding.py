"""Raw Kafka message -> validated `Event`, or a `Rejection` that says exactly why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.dead_letter import FieldError, RejectCode
from schemas.event import Event, event_model_for


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_message_bytes: int = 256 * 1024
    max_future_skew: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Rejection:
    code: RejectCode
    message: str
    errors: tuple[FieldError, ...] = field(default_factory=tuple)


def decode_event(
    key: bytes | None, value: bytes | None, limits: DecodeLimits, now: datetime
) -> Event | Rejection:
    """Validate one message of `crm.events`. Never raises on bad input."""
    if value is None or len(value) == 0:
        return Rejection(RejectCode.EMPTY_VALUE, "message value is empty or a tombstone")
    if len(value) > limits.max_message_bytes:
        return Rejection(
            RejectCode.OVERSIZED,
            f"message is {len(value)} bytes, the limit is {limits.max_message_bytes}",
        )
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectCode.INVALID_JSON, f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection(
            RejectCode.NOT_AN_OBJECT, f"event must be a JSON object, got {type(obj).__name__}"
        )
    customer_id = obj.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id.strip():
        return Rejection(
            RejectCode.MISSING_CUSTOMER_ID, "customer_id is missing, empty or not a string"
        )
    if key is None:
        return Rejection(
            RejectCode.MISSING_KEY, "message has no key; the key must be the customer id"
        )
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(RejectCode.KEY_MISMATCH, "message key is not valid UTF-8")
    if key_text != customer_id:
        return Rejection(
            RejectCode.KEY_MISMATCH,
            f"message key {_clip(key_text)!r} differs from customer_id {_clip(customer_id)!r}",
        )
    try:
        # The validator itself: `model_validate`'s wrapper costs ~0.5 µs per event.
        event: Event = event_model_for(obj.get("type")).__pydantic_validator__.validate_python(obj)
    except ValidationError as exc:
        return _rejection_from(exc)
    if event.occurred_at > now + limits.max_future_skew:
        return Rejection(
            RejectCode.TIMESTAMP_IN_FUTURE,
            f"occurred_at is more than {limits.max_future_skew} ahead of the worker's clock",
            (FieldError(field="occurred_at", problem="in the future", code="future"),),
        )
    return event


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _rejection_from(exc: ValidationError) -> Rejection:
    details: list[ErrorDetails] = exc.errors(include_url=False, include_input=False)
    errors = tuple(
        FieldError(field=_dotted(err["loc"]), problem=err["msg"], code=err["type"])
        for err in details[:20]
    )
    roots = {str(err["loc"][0]) for err in details if err["loc"]}
    if "schema_version" in roots:
        code = RejectCode.UNSUPPORTED_VERSION
    elif "occurred_at" in roots:
        code = RejectCode.INVALID_TIMESTAMP
    elif roots - {"properties"}:
        code = RejectCode.INVALID_ENVELOPE
    else:
        code = RejectCode.INVALID_PROPERTIES
    summary = "; ".join(f"{e.field}: {e.problem}" for e in errors[:5])
    return Rejection(code, summary, errors)
