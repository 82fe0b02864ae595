"""Dead-letter records: what an operator reading `crm.events.dlq` gets back."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from schemas.dead_letter import DeadLetter, RejectCode, SourcePosition
from streams.core.dead_letters import build_dead_letter
from streams.core.decoding import DecodeLimits, Rejection, decode_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SOURCE = SourcePosition(topic="crm.events", partition=3, offset=1_234_567, timestamp_ms=1_700)


def reject(key: bytes | None, value: bytes | None) -> Rejection:
    result = decode_event(key, value, DecodeLimits(), NOW)
    assert isinstance(result, Rejection)
    return result


def dead_letter(
    key: bytes | None, value: bytes | None, max_value_bytes: int = 1024 * 1024
) -> DeadLetter:
    return build_dead_letter(reject(key, value), key, value, SOURCE, NOW, max_value_bytes)


def test_original_key_and_value_round_trip_through_base64() -> None:
    key = b"cust-\xff\x00-42"  # not UTF-8: must survive anyway
    value = b"\x00\x01\xfe{not json"
    dl = dead_letter(key, value)

    assert dl.key_base64 is not None and dl.value_base64 is not None
    assert base64.b64decode(dl.key_base64) == key
    assert base64.b64decode(dl.value_base64) == value
    assert dl.value_size_bytes == len(value)
    assert not dl.value_truncated


def test_text_copy_only_for_utf8_values() -> None:
    text = '{"customer_id": "cust-42", "type": "visit", "note": "Grüße"'
    utf8 = dead_letter(b"cust-42", text.encode())
    assert utf8.value_text == text

    binary = dead_letter(b"cust-42", b"\xff\xfe\xfd binary")
    assert binary.value_text is None
    assert binary.value_base64 is not None


def test_oversized_value_is_truncated_and_flagged() -> None:
    value = b'{"blob": "' + b"x" * 5000 + b'"}'
    rejection = decode_event(b"cust-42", value, DecodeLimits(max_message_bytes=1024), NOW)
    assert isinstance(rejection, Rejection)
    assert rejection.code is RejectCode.OVERSIZED

    dl = build_dead_letter(rejection, b"cust-42", value, SOURCE, NOW, max_value_bytes=1000)

    assert dl.error_code is RejectCode.OVERSIZED
    assert dl.value_truncated
    assert dl.value_size_bytes == len(value)
    assert dl.value_base64 is not None
    kept = base64.b64decode(dl.value_base64)
    assert len(kept) == 1000
    assert value.startswith(kept)


def test_value_exactly_at_the_limit_is_not_truncated() -> None:
    value = b"[1, 2, 3]"
    dl = dead_letter(b"cust-42", value, max_value_bytes=len(value))
    assert not dl.value_truncated
    assert dl.value_base64 is not None
    assert base64.b64decode(dl.value_base64) == value


def test_source_position_reason_and_time_are_kept() -> None:
    value = json.dumps(
        {
            "event_id": "e1",
            "type": "order_placed",
            "customer_id": "cust-42",
            "occurred_at": "2026-11-22T10:00:00Z",
            "properties": {"order_id": "o1", "amount": "59.90"},
        }
    ).encode()
    dl = dead_letter(b"cust-42", value)

    assert dl.source == SOURCE
    assert dl.rejected_at == NOW
    assert dl.error_code is RejectCode.INVALID_PROPERTIES
    assert "properties.amount" in [e.field for e in dl.errors]
    assert "properties.amount" in dl.error_message


def test_tombstone_without_key_has_no_copies() -> None:
    dl = dead_letter(None, None)
    assert dl.error_code is RejectCode.EMPTY_VALUE
    assert dl.key_base64 is None
    assert dl.value_base64 is None
    assert dl.value_text is None
    assert dl.value_size_bytes == 0
    assert not dl.value_truncated


def test_dead_letter_survives_json_round_trip() -> None:
    dl = dead_letter(b"\xffkey", b"\x00\xffvalue")
    restored = DeadLetter.model_validate_json(dl.model_dump_json())
    assert restored == dl
    wire = json.loads(dl.model_dump_json())
    assert wire["error_code"] == "invalid_json"
    assert wire["rejected_at"] == "2026-11-22T12:00:00Z"
