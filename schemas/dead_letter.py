"""Dead-letter record (contract, DESIGN.md §3) published to `crm.events.dlq`.

The Kafka key of a dead letter is the original key, unchanged. The value is this
JSON object; the original bytes travel base64-encoded so that any bytes survive,
plus as text when they are valid UTF-8, for humans reading the topic.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.timestamps import Rfc3339


class RejectCode(StrEnum):
    """Machine-readable reason a message was rejected. Stable: alert on these."""

    OVERSIZED = "oversized"
    EMPTY_VALUE = "empty_value"
    MISSING_KEY = "missing_key"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_CUSTOMER_ID = "missing_customer_id"
    KEY_MISMATCH = "key_mismatch"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    INVALID_PROPERTIES = "invalid_properties"
    INVALID_ENVELOPE = "invalid_envelope"
    UNSUPPORTED_VERSION = "unsupported_version"
    PROCESSING_ERROR = "processing_error"


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str = Field(description="Dotted path of the offending field, e.g. properties.amount")
    problem: str
    code: str = Field(description="pydantic error type, e.g. float_type")


class SourcePosition(BaseModel):
    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    error_code: RejectCode
    error_message: str = Field(description="Human-readable explanation of the reject")
    errors: list[FieldError] = Field(default_factory=list)
    source: SourcePosition
    rejected_at: Rfc3339
    key_base64: str | None = Field(description="Original Kafka key, base64")
    value_base64: str | None = Field(description="Original value, base64 (may be truncated)")
    value_text: str | None = Field(
        default=None, description="Original value as UTF-8 text when it decodes (may be truncated)"
    )
    value_size_bytes: int
    value_truncated: bool = False
