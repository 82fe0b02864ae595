"""`decode_event`: what a producer sees accepted, and why anything else is rejected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.dead_letter import RejectCode
from schemas.event import Event
from schemas.properties import CORE_EVENT_TYPES, PROPERTIES_BY_TYPE
from streams.core.decoding import DecodeLimits, Rejection, decode_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LIMITS = DecodeLimits()
CUSTOMER = "cust-42"

# One realistic `properties` object per core event type, as a producer would send it.
CORE_EXAMPLES: dict[str, dict[str, Any]] = {
    "registered": {
        "email": "anna@example.com",
        "phone": "+49 30 1234567",
        "first_name": "Anna",
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "source": "landing_black_friday",
        "tariff": "basic",
    },
    "email_confirmed": {"email": "anna@example.com"},
    "visit": {"session_id": "s-981", "channel": "web", "url": "https://shop.example/"},
    "page_view": {"url": "https://shop.example/shoes", "title": "Shoes", "session_id": "s-981"},
    "product_viewed": {"sku": "SKU-1001", "category": "shoes", "price": 89.5},
    "cart_updated": {
        "cart_id": "cart-7",
        "items": [
            {"sku": "SKU-1001", "category": "shoes", "quantity": 1, "price": 89.5},
            {"sku": "SKU-2002", "category": "socks", "quantity": 3, "price": 4.99},
        ],
        "value": 104.47,
        "currency": "EUR",
    },
    "order_placed": {
        "order_id": "ord-5531",
        "amount": 104.47,
        "currency": "EUR",
        "items": [{"sku": "SKU-1001", "category": "shoes", "quantity": 1, "price": 89.5}],
        "tariff": "basic",
    },
    "order_cancelled": {"order_id": "ord-5531", "amount": 104.47, "reason": "changed_mind"},
    "review_submitted": {
        "rating": 4,
        "order_id": "ord-5531",
        "sku": "SKU-1001",
        "text": "Comfortable, runs a bit small.",
    },
    "support_ticket": {
        "ticket_id": "T-77",
        "subject": "Where is my parcel?",
        "status": "open",
        "severity": "low",
    },
    "appointment_scheduled": {
        "appointment_id": "apt-3",
        "starts_at": "2026-11-25T09:30:00Z",
        "service": "fitting",
        "location": "Berlin Mitte",
    },
    "profile_updated": {
        "timezone": "America/New_York",
        "birthday": "1990-05-17",
        "locale": "en-US",
        "tier": "gold",
    },
    "consent_changed": {
        "channel": "email",
        "granted": True,
        "category": "marketing",
        "source": "preference_center",
    },
}


def envelope(event_type: str, properties: Any = None, **overrides: Any) -> dict[str, Any]:
    """A realistic event envelope; `overrides` replace (or with `...` remove) fields."""
    obj: dict[str, Any] = {
        "schema_version": 1,
        "event_id": f"evt-{event_type}-1",
        "type": event_type,
        "customer_id": CUSTOMER,
        "occurred_at": "2026-11-22T10:15:00Z",
        "source": "web",
        "properties": CORE_EXAMPLES.get(event_type, {}) if properties is None else properties,
    }
    for name, value in overrides.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def decode(
    obj: Any,
    key: bytes | None = CUSTOMER.encode(),
    limits: DecodeLimits = LIMITS,
    now: datetime = NOW,
) -> Event | Rejection:
    return decode_event(key, encode(obj), limits, now)


def rejected(result: Event | Rejection) -> Rejection:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def error_fields(result: Event | Rejection) -> list[str]:
    return [e.field for e in rejected(result).errors]


# --- accepted events -----------------------------------------------------------------


def test_examples_cover_every_core_type() -> None:
    assert set(CORE_EXAMPLES) == CORE_EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(CORE_EXAMPLES))
def test_valid_core_event_is_accepted_with_typed_properties(event_type: str) -> None:
    result = decode(envelope(event_type))

    assert isinstance(result, Event), result
    assert result.type == event_type
    assert result.customer_id == CUSTOMER
    assert result.event_id == f"evt-{event_type}-1"
    assert result.is_core
    assert isinstance(result.properties, PROPERTIES_BY_TYPE[event_type])
    # Nothing the producer sent is lost or altered.
    sent = CORE_EXAMPLES[event_type]
    assert result.properties.model_dump(mode="json", exclude_unset=True) == sent


def test_schema_version_may_be_omitted() -> None:
    result = decode(envelope("visit", schema_version=...))
    assert isinstance(result, Event)
    assert result.schema_version == 1


def test_core_properties_keep_extra_fields() -> None:
    props = {**CORE_EXAMPLES["order_placed"], "coupon": "BF2026"}
    result = decode(envelope("order_placed", props))
    assert isinstance(result, Event)
    assert result.properties.model_extra == {"coupon": "BF2026"}


def test_custom_event_type_is_accepted_with_properties_kept() -> None:
    props = {"points": 120, "program": {"name": "gold", "levels": [1, 2, None]}, "note": "x"}
    result = decode(envelope("loyalty.points_earned", props))

    assert isinstance(result, Event)
    assert result.type == "loyalty.points_earned"
    assert not result.is_core
    assert result.properties == props


def test_occurred_at_with_offset_is_normalised_to_utc() -> None:
    result = decode(envelope("visit", occurred_at="2026-11-22T11:15:00+01:00"))
    assert isinstance(result, Event)
    assert result.occurred_at == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert result.occurred_at.utcoffset() == timedelta(0)


def test_starts_at_with_offset_is_normalised_to_utc() -> None:
    props = {**CORE_EXAMPLES["appointment_scheduled"], "starts_at": "2026-11-25T04:30:00-05:00"}
    result = decode(envelope("appointment_scheduled", props))
    assert isinstance(result, Event)
    assert result.properties.starts_at == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert result.properties.starts_at.utcoffset() == timedelta(0)


# --- rejects before JSON parsing -----------------------------------------------------


@pytest.mark.parametrize("value", [None, b""], ids=["tombstone", "empty"])
def test_empty_value_or_tombstone_is_rejected(value: bytes | None) -> None:
    result = decode_event(CUSTOMER.encode(), value, LIMITS, NOW)
    assert rejected(result).code is RejectCode.EMPTY_VALUE


def test_oversized_message_is_rejected_against_the_configured_limit() -> None:
    obj = envelope("page_view", {**CORE_EXAMPLES["page_view"], "referrer_chain": ["x" * 500] * 4})
    value = encode(obj)

    # The same message passes under the default limit ...
    assert isinstance(decode_event(CUSTOMER.encode(), value, LIMITS, NOW), Event)
    # ... is accepted at exactly the configured limit ...
    at_limit = DecodeLimits(max_message_bytes=len(value))
    assert isinstance(decode_event(CUSTOMER.encode(), value, at_limit, NOW), Event)
    # ... and rejected one byte below it.
    below = DecodeLimits(max_message_bytes=len(value) - 1)
    result = rejected(decode_event(CUSTOMER.encode(), value, below, NOW))
    assert result.code is RejectCode.OVERSIZED
    assert str(len(value)) in result.message


@pytest.mark.parametrize(
    "value",
    [b"{not json", b'{"customer_id": "cust-42",}', b"\xff\xfe\x00garbage", b"{}{}"],
    ids=["broken", "trailing-comma", "binary", "two-objects"],
)
def test_invalid_json_is_rejected(value: bytes) -> None:
    result = decode_event(CUSTOMER.encode(), value, LIMITS, NOW)
    assert rejected(result).code is RejectCode.INVALID_JSON


@pytest.mark.parametrize(
    "obj",
    [[envelope("visit")], "an event", 42, 3.5, None, True],
    ids=["array", "string", "int", "float", "null", "bool"],
)
def test_json_that_is_not_an_object_is_rejected(obj: Any) -> None:
    assert rejected(decode(obj)).code is RejectCode.NOT_AN_OBJECT


# --- customer id and key ------------------------------------------------------------


@pytest.mark.parametrize(
    "customer_id",
    [..., "", "   ", 42, None, ["cust-42"]],
    ids=["missing", "empty", "blank", "number", "null", "list"],
)
def test_missing_empty_or_non_string_customer_id_is_rejected(customer_id: Any) -> None:
    result = decode(envelope("visit", customer_id=customer_id))
    assert rejected(result).code is RejectCode.MISSING_CUSTOMER_ID


def test_message_without_key_is_rejected() -> None:
    result = decode(envelope("visit"), key=None)
    assert rejected(result).code is RejectCode.MISSING_KEY


def test_key_differing_from_customer_id_is_rejected() -> None:
    result = rejected(decode(envelope("visit"), key=b"cust-43"))
    assert result.code is RejectCode.KEY_MISMATCH
    assert "cust-43" in result.message
    assert CUSTOMER in result.message


def test_non_utf8_key_is_rejected() -> None:
    result = decode(envelope("visit"), key=b"\xff\xfecust-42")
    assert rejected(result).code is RejectCode.KEY_MISMATCH


# --- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-22T10:15:00",
        1764000000,
        1764000000123,
        "2026-11-22",
        "yesterday at noon",
        "",
        None,
    ],
    ids=["naive", "epoch-seconds", "epoch-millis", "date-only", "garbage", "empty", "null"],
)
def test_bad_occurred_at_is_rejected_naming_the_field(occurred_at: Any) -> None:
    result = decode(envelope("visit", occurred_at=occurred_at))
    assert rejected(result).code is RejectCode.INVALID_TIMESTAMP
    assert "occurred_at" in error_fields(result)


def test_missing_occurred_at_is_rejected() -> None:
    result = decode(envelope("visit", occurred_at=...))
    assert rejected(result).code is RejectCode.INVALID_TIMESTAMP
    assert "occurred_at" in error_fields(result)


def test_timestamp_too_far_in_the_future_is_rejected() -> None:
    two_hours_ahead = (NOW + timedelta(hours=2)).isoformat()
    result = decode(envelope("visit", occurred_at=two_hours_ahead))
    assert rejected(result).code is RejectCode.TIMESTAMP_IN_FUTURE
    assert error_fields(result) == ["occurred_at"]


def test_small_clock_skew_into_the_future_is_tolerated() -> None:
    half_hour_ahead = (NOW + timedelta(minutes=30)).isoformat()
    assert isinstance(decode(envelope("visit", occurred_at=half_hour_ahead)), Event)


def test_future_skew_is_configurable() -> None:
    strict = DecodeLimits(max_future_skew=timedelta(0))
    one_minute_ahead = (NOW + timedelta(minutes=1)).isoformat()
    result = decode(envelope("visit", occurred_at=one_minute_ahead), limits=strict)
    assert rejected(result).code is RejectCode.TIMESTAMP_IN_FUTURE


def test_future_is_judged_against_the_injected_clock_not_the_wall_clock() -> None:
    obj = envelope("visit", occurred_at="2029-06-01T00:00:00Z")
    assert isinstance(decode(obj, now=datetime(2030, 1, 1, tzinfo=UTC)), Event)
    result = decode(obj, now=datetime(2020, 1, 1, tzinfo=UTC))
    assert rejected(result).code is RejectCode.TIMESTAMP_IN_FUTURE


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_out_of_range_timestamp_is_rejected_not_raised(occurred_at: str) -> None:
    result = decode(envelope("visit", occurred_at=occurred_at))
    assert rejected(result).code is RejectCode.INVALID_TIMESTAMP


# --- properties ----------------------------------------------------------------------


def _with(event_type: str, **changes: Any) -> dict[str, Any]:
    return envelope(event_type, {**CORE_EXAMPLES[event_type], **changes})


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (_with("order_placed", amount="59.90"), "properties.amount"),
        (_with("order_placed", amount=-1), "properties.amount"),
        (envelope("order_placed", {"amount": 10.0}), "properties.order_id"),
        (_with("order_placed", currency="eur"), "properties.currency"),
        (_with("order_placed", currency="EURO"), "properties.currency"),
        (_with("review_submitted", rating=6), "properties.rating"),
        (_with("review_submitted", rating=0), "properties.rating"),
        (_with("review_submitted", rating="5"), "properties.rating"),
        (
            _with("cart_updated", items=[{"sku": "SKU-1", "quantity": 0}]),
            "properties.items.0.quantity",
        ),
        (
            _with("cart_updated", items=[{"sku": "SKU-1"}, {"sku": "SKU-2", "quantity": 1.5}]),
            "properties.items.1.quantity",
        ),
        (
            _with("appointment_scheduled", starts_at="2026-11-25T09:30:00"),
            "properties.starts_at",
        ),
        (_with("appointment_scheduled", starts_at=1764063000), "properties.starts_at"),
        (_with("profile_updated", timezone="Mars/Olympus_Mons"), "properties.timezone"),
        (_with("registered", timezone="CEST+2"), "properties.timezone"),
        (_with("profile_updated", birthday="1990-13-01"), "properties.birthday"),
        (_with("consent_changed", granted="yes"), "properties.granted"),
        (_with("consent_changed", channel="E-Mail"), "properties.channel"),
        (_with("consent_changed", category="spam"), "properties.category"),
        (envelope("product_viewed", {"category": "shoes"}), "properties.sku"),
        (envelope("visit", ["not", "an", "object"]), "properties"),
        (envelope("loyalty.points_earned", "not an object"), "properties"),
    ],
    ids=[
        "amount-as-string",
        "negative-amount",
        "missing-order-id",
        "lowercase-currency",
        "long-currency",
        "rating-6",
        "rating-0",
        "rating-as-string",
        "quantity-0",
        "fractional-quantity",
        "starts-at-naive",
        "starts-at-epoch",
        "unknown-timezone",
        "abbreviation-timezone",
        "impossible-birthday",
        "granted-as-string",
        "bad-channel",
        "unknown-consent-category",
        "missing-sku",
        "core-properties-not-object",
        "custom-properties-not-object",
    ],
)
def test_wrong_property_is_rejected_naming_the_field(obj: dict[str, Any], field: str) -> None:
    result = rejected(decode(obj))
    assert result.code is RejectCode.INVALID_PROPERTIES
    assert field in error_fields(result)
    assert field in result.message


def test_every_offending_property_is_reported() -> None:
    result = decode(_with("order_placed", amount="59.90", currency="eur"))
    assert {"properties.amount", "properties.currency"} <= set(error_fields(result))


@pytest.mark.parametrize("timezone", ["America", "Europe"])
def test_timezone_naming_a_region_is_rejected_not_raised(timezone: str) -> None:
    result = decode(_with("profile_updated", timezone=timezone))
    assert rejected(result).code is RejectCode.INVALID_PROPERTIES
    assert "properties.timezone" in error_fields(result)


# --- envelope and version ------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unsupported_schema_version_is_rejected(version: Any) -> None:
    result = decode(envelope("visit", schema_version=version))
    assert rejected(result).code is RejectCode.UNSUPPORTED_VERSION
    assert "schema_version" in error_fields(result)


@pytest.mark.parametrize(
    "event_type",
    ["Order Placed", "ORDER_PLACED", "", "1visit", "a" * 65, 7, None],
    ids=["spaces", "upper", "empty", "digit-first", "too-long", "number", "null"],
)
def test_bad_type_name_is_rejected_as_envelope_error(event_type: Any) -> None:
    result = decode(envelope("visit", type=event_type))
    assert rejected(result).code is RejectCode.INVALID_ENVELOPE
    assert "type" in error_fields(result)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_id": ...}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": 17}, "event_id"),
        ({"type": ...}, "type"),
        ({"unexpected": "field"}, "unexpected"),
        ({"customer_id": "c" * 257}, "customer_id"),
    ],
    ids=["no-event-id", "empty-event-id", "numeric-event-id", "no-type", "extra", "long-id"],
)
def test_envelope_errors_name_the_field(overrides: dict[str, Any], field: str) -> None:
    obj = envelope("visit", **overrides)
    key = obj["customer_id"].encode()
    result = decode(obj, key=key)
    assert rejected(result).code is RejectCode.INVALID_ENVELOPE
    assert field in error_fields(result)


# --- never raises ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["2026-11-22T10:15:00Z", "2026-11-22", "EUR", "Europe/Berlin", "59.90"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)

PROPERTY_NAMES = sorted(
    {name for model in PROPERTIES_BY_TYPE.values() for name in model.model_fields}
)

# The whole datetime range, extremes included: converting them to UTC can overflow.
timestamps = st.datetimes(
    timezones=st.timezones() | st.just(UTC),
).map(datetime.isoformat)

envelopes = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=8) | json_values,
        "type": st.sampled_from(sorted(CORE_EVENT_TYPES)) | st.text(max_size=8),
        "customer_id": st.just(CUSTOMER),
        "occurred_at": timestamps | json_values,
        "properties": st.dictionaries(
            st.sampled_from(PROPERTY_NAMES), json_values | timestamps, max_size=6
        )
        | json_values,
    },
    optional={"schema_version": st.sampled_from([1, 2]) | json_values, "source": json_values},
)


def _check(result: object) -> None:
    assert isinstance(result, Event | Rejection)
    if isinstance(result, Rejection):
        assert result.code in set(RejectCode)
        assert isinstance(result.message, str)


@settings(max_examples=300)
@given(key=st.none() | st.binary(max_size=16), value=st.none() | st.binary(max_size=256))
def test_arbitrary_bytes_never_raise(key: bytes | None, value: bytes | None) -> None:
    _check(decode_event(key, value, LIMITS, NOW))


@settings(max_examples=300)
@given(value=json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    _check(decode_event(CUSTOMER.encode(), json.dumps(value).encode(), LIMITS, NOW))


@settings(max_examples=300)
@given(obj=envelopes)
def test_arbitrary_envelopes_never_raise(obj: dict[str, Any]) -> None:
    result = decode_event(CUSTOMER.encode(), json.dumps(obj).encode(), LIMITS, NOW)
    _check(result)
    if isinstance(result, Event):
        assert result.customer_id == CUSTOMER
        assert result.occurred_at.utcoffset() == timedelta(0)


def test_placeholder_dates_are_rejected_not_processed() -> None:
    from datetime import UTC, datetime

    import orjson

    from schemas.dead_letter import RejectCode
    from streams.core.decoding import DecodeLimits, Rejection, decode_event

    value = orjson.dumps(
        {
            "event_id": "e",
            "type": "visit",
            "customer_id": "c",
            "occurred_at": "0001-01-01T00:00:00Z",
            "properties": {},
        }
    )
    result = decode_event(b"c", value, DecodeLimits(), datetime(2026, 11, 1, tzinfo=UTC))
    assert isinstance(result, Rejection)
    assert result.code is RejectCode.INVALID_TIMESTAMP
