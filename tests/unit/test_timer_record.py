"""A state's timers are native records in memory and `PendingTimer`s everywhere else.

What a reader of the changelog, of `--state-out` or of `customer-state.json` sees must
not change with the record: these tests pin the record against the contract model.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from schemas.state import CustomerState, PendingTimer
from schemas.timer_record import TimerRecord
from streams.shell.state_codec import CODEC_NAME, decoder, register

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

FIELDS: list[dict[str, Any]] = [
    {
        "timer_id": "review_request:o-1",
        "rule_id": "review_request",
        "due_at": AT + timedelta(days=7),
        "anchor_at": AT,
        "occurrence": "o-1",
        "context": {
            "event": {"type": "order_placed", "occurred_at": AT, "amount": 39.9},
            "match": ["order_id", "o-1"],
        },
    },
    {
        # An empty context is a default: left out of the changelog, as by the model.
        "timer_id": "birthday",
        "rule_id": "birthday",
        "due_at": datetime(2027, 5, 22, 0, 0, 0, 120000, tzinfo=UTC),
        "anchor_at": AT,
        "occurrence": "2027",
        "context": {},
    },
]


def _state(timers: list[Any]) -> CustomerState:
    return CustomerState.model_validate({"customer_id": "c-1", "timers": timers})


@pytest.mark.parametrize("given", ["model", "dict", "record"])
def test_a_state_holds_records_whatever_its_timers_are_given_as(given: str) -> None:
    timers: list[Any] = {
        "model": [PendingTimer(**fields) for fields in FIELDS],
        "dict": [dict(fields) for fields in FIELDS],
        "record": [TimerRecord(**fields) for fields in FIELDS],
    }[given]
    state = _state(timers)
    assert all(type(timer) is TimerRecord for timer in state.timers)
    assert state.timers == [TimerRecord(**fields) for fields in FIELDS]


@pytest.mark.parametrize("exclude_defaults", [True, False])
def test_a_state_writes_its_timers_as_the_contract_model_does(exclude_defaults: bool) -> None:
    state = _state([dict(fields) for fields in FIELDS])
    written = orjson.loads(state.model_dump_json(exclude_defaults=exclude_defaults))["timers"]
    expected = [
        orjson.loads(PendingTimer(**fields).model_dump_json(exclude_defaults=exclude_defaults))
        for fields in FIELDS
    ]
    assert written == expected
    assert state.model_dump(mode="json")["timers"] == [
        PendingTimer(**fields).model_dump(mode="json") for fields in FIELDS
    ]
    assert state.model_dump()["timers"] == [
        PendingTimer(**fields).model_dump() for fields in FIELDS
    ]


def test_the_changelog_reads_back_what_it_wrote_byte_for_byte() -> None:
    register()
    state = _state([dict(fields) for fields in FIELDS])
    raw = state.model_dump_json(exclude_defaults=True).encode()
    assert b'"context"' in raw and raw.count(b'"context"') == 1  # the empty one left out
    back = decoder(CODEC_NAME)(raw)
    # As the contract reads them (a context's times come back as the strings written).
    read = [PendingTimer.model_validate(timer) for timer in orjson.loads(raw)["timers"]]
    assert back.timers == [TimerRecord.of(model) for model in read]
    assert [timer.due_at for timer in back.timers] == [timer.due_at for timer in state.timers]
    assert back.model_dump_json(exclude_defaults=True).encode() == raw


@pytest.mark.parametrize(
    "timer",
    [
        {"timer_id": "t", "rule_id": "r", "due_at": "2026-11-02T09:30:00", "anchor_at": AT},
        {"timer_id": "t", "rule_id": "r", "anchor_at": "2026-11-02T09:30:00Z", "occurrence": "x"},
        {
            "timer_id": "t",
            "rule_id": "r",
            "due_at": "3100-01-01T00:00:00Z",
            "anchor_at": "2026-11-02T09:30:00Z",
            "occurrence": "x",
        },
    ],
    ids=["no zone", "no due time", "out of range"],
)
def test_a_timer_the_contract_refuses_is_refused_in_a_state(timer: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CustomerState.model_validate_json(orjson.dumps({"customer_id": "c-1", "timers": [timer]}))


def test_times_are_normalised_to_utc_and_checked_as_validation_did() -> None:
    local = datetime(2027, 5, 22, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    offset = datetime(2026, 11, 2, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    record = TimerRecord(timer_id="t", rule_id="r", due_at=local, anchor_at=offset, occurrence="x")
    assert record.due_at == local and record.due_at.tzinfo is UTC
    assert record.anchor_at == AT and record.anchor_at.tzinfo is UTC
    model = PendingTimer(timer_id="t", rule_id="r", due_at=local, anchor_at=offset, occurrence="x")
    assert (record.due_at, record.anchor_at) == (model.due_at, model.anchor_at)
    with pytest.raises(ValueError, match="zone"):
        TimerRecord(
            timer_id="t", rule_id="r", due_at=datetime(2026, 1, 1), anchor_at=AT, occurrence="x"
        )
    with pytest.raises(ValueError, match="2999"):
        TimerRecord(
            timer_id="t",
            rule_id="r",
            due_at=datetime(3000, 1, 1, tzinfo=UTC),
            anchor_at=AT,
            occurrence="x",
        )


def test_records_are_equal_when_every_field_is() -> None:
    record = TimerRecord(**FIELDS[0])
    assert record == TimerRecord(**FIELDS[0])
    assert record != TimerRecord(**{**FIELDS[0], "occurrence": "o-2"})
    assert record != TimerRecord(**{**FIELDS[0], "context": {}})
    assert record != PendingTimer(**FIELDS[0])
    assert "review_request:o-1" in repr(record)
