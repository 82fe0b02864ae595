"""Parts of a state that are native records in memory and contract models everywhere else.

`TimerRecord` (a customer's pending timers) and `ContactEntry` (a contact history's
sends) are mypyc classes the compiled core reads directly. What a reader of the
changelog, of `--state-out` or of `customer-state.json` sees must not change with
them: these tests pin each record against its contract model.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from schemas.candidate import Category
from schemas.contact_entry import ContactEntry
from schemas.decision import ContactRecord
from schemas.state import CustomerState, PendingTimer
from schemas.step import OrchestratorState
from schemas.timer_record import TimerRecord
from streams.shell.state_codec import CODEC_NAME, CONTACTS_CODEC_NAME, decoder, register

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    record: type
    contract: type[BaseModel]
    codec: str
    holder: Callable[[list[Any]], BaseModel]
    """A state holding the given items."""
    items: Callable[[BaseModel], list[Any]]
    """The items of such a state."""
    examples: list[dict[str, Any]]
    """Field sets: one with every field set, one with a default left (written by the
    contract only where defaults are written)."""
    time_field: str
    omitted: str
    """The field an example leaves at its default."""


TIMERS = Case(
    record=TimerRecord,
    contract=PendingTimer,
    codec=CODEC_NAME,
    holder=lambda items: CustomerState.model_validate({"customer_id": "c-1", "timers": items}),
    items=lambda state: list(state.timers),  # type: ignore[attr-defined]
    examples=[
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
            "timer_id": "birthday",
            "rule_id": "birthday",
            "due_at": datetime(2027, 5, 22, 0, 0, 0, 120000, tzinfo=UTC),
            "anchor_at": AT + timedelta(days=1),
            "occurrence": "2027",
            "context": {},
        },
    ],
    time_field="due_at",
    omitted="context",
)
CONTACTS = Case(
    record=ContactEntry,
    contract=ContactRecord,
    codec=CONTACTS_CODEC_NAME,
    holder=lambda items: OrchestratorState.model_validate(
        {"customer_id": "c-1", "history": {"contacts": items}}
    ),
    items=lambda state: list(state.history.contacts),  # type: ignore[attr-defined]
    examples=[
        {
            "at": AT,
            "channel": "push",
            "category": Category.MARKETING,
            "rule_id": "winback",
            "action_id": "winback-1",
            "holdout": True,
        },
        {
            "at": AT + timedelta(microseconds=120000),
            "channel": "email",
            "category": Category.TRANSACTIONAL,
            "rule_id": "order_thanks",
            "action_id": "order_thanks-1",
            "holdout": False,
        },
    ],
    time_field="at",
    omitted="holdout",
)
CASES = pytest.mark.parametrize("case", [TIMERS, CONTACTS], ids=["timers", "contacts"])


@CASES
@pytest.mark.parametrize("given", ["model", "dict", "record"])
def test_a_state_holds_records_whatever_its_items_are_given_as(case: Case, given: str) -> None:
    items: list[Any] = {
        "model": [case.contract(**fields) for fields in case.examples],
        "dict": [dict(fields) for fields in case.examples],
        "record": [case.record(**fields) for fields in case.examples],
    }[given]
    held = case.items(case.holder(items))
    assert all(type(item) is case.record for item in held)
    assert held == [case.record(**fields) for fields in case.examples]


@CASES
@pytest.mark.parametrize("exclude_defaults", [True, False])
def test_a_state_writes_its_records_as_the_contract_model_does(
    case: Case, exclude_defaults: bool
) -> None:
    state = case.holder([dict(fields) for fields in case.examples])
    expected = [case.contract(**fields) for fields in case.examples]
    written = orjson.loads(state.model_dump_json(exclude_defaults=exclude_defaults))
    as_json = [
        orjson.loads(model.model_dump_json(exclude_defaults=exclude_defaults)) for model in expected
    ]
    assert as_json in _lists_in(written)
    assert [model.model_dump(mode="json") for model in expected] in _lists_in(
        state.model_dump(mode="json")
    )
    assert [model.model_dump() for model in expected] in _lists_in(state.model_dump())


@CASES
def test_the_changelog_reads_back_what_it_wrote_byte_for_byte(case: Case) -> None:
    register()
    state = case.holder([dict(fields) for fields in case.examples])
    raw = state.model_dump_json(exclude_defaults=True).encode()
    # The example at its default leaves that field out, as the model does.
    assert raw.count(f'"{case.omitted}"'.encode()) == 1
    back = decoder(case.codec)(raw)
    assert back.model_dump_json(exclude_defaults=True).encode() == raw
    assert [getattr(item, case.time_field) for item in case.items(back)] == [
        getattr(item, case.time_field) for item in case.items(state)
    ]


@CASES
@pytest.mark.parametrize(
    "problem",
    ["no zone", "missing", "out of range"],
)
def test_an_item_the_contract_refuses_is_refused_in_a_state(case: Case, problem: str) -> None:
    item: dict[str, Any] = orjson.loads(orjson.dumps(case.examples[0]))
    if problem == "missing":
        del item[case.time_field]
    else:
        item[case.time_field] = {
            "no zone": "2026-11-02T09:30:00",
            "out of range": "3100-01-01T00:00:00Z",
        }[problem]
    raw = orjson.dumps(case.holder([]).model_dump(mode="json"))
    with pytest.raises(ValidationError):
        case.holder([item])
    # From the changelog's JSON too.
    state = orjson.loads(raw)
    _lists_in_place(state)[0].append(item)
    with pytest.raises(ValidationError):
        type(case.holder([])).model_validate_json(orjson.dumps(state))


@CASES
def test_times_are_normalised_to_utc_and_checked_as_validation_did(case: Case) -> None:
    local = datetime(2027, 5, 22, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    fields = {**case.examples[0], case.time_field: local}
    record, model = case.record(**fields), case.contract(**fields)
    assert getattr(record, case.time_field) == getattr(model, case.time_field) == local
    assert getattr(record, case.time_field).tzinfo is UTC
    offset = datetime(2026, 11, 2, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert getattr(case.record(**{**fields, case.time_field: offset}), case.time_field) == AT
    with pytest.raises(ValueError, match="zone"):
        case.record(**{**fields, case.time_field: datetime(2026, 1, 1)})
    with pytest.raises(ValueError, match="2999"):
        case.record(**{**fields, case.time_field: datetime(3000, 1, 1, tzinfo=UTC)})


@CASES
def test_records_are_equal_when_every_field_is(case: Case) -> None:
    first, second = case.examples
    record = case.record(**first)
    assert record == case.record(**first)
    for name in first:
        assert record != case.record(**{**first, name: second[name]}), name
    assert record != case.contract(**first)
    assert repr(first[next(iter(first))]) in repr(record)


def _lists_in(value: Any) -> list[Any]:
    """Every list inside a dumped state (the records' list is one of them)."""
    if isinstance(value, dict):
        return [found for item in value.values() for found in _lists_in(item)]
    if isinstance(value, list):
        return [value]
    return []


def _lists_in_place(value: dict[str, Any]) -> list[list[Any]]:
    """The empty lists of a dumped state where records go (`timers`, `contacts`)."""
    found: list[list[Any]] = []
    for key, item in value.items():
        if key in ("timers", "contacts") and isinstance(item, list):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(_lists_in_place(item))
    return found


@CASES
def test_records_pickle_and_copy_like_models(case: Case) -> None:
    state = case.holder([dict(fields) for fields in case.examples])
    for copied in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        assert case.items(copied) == case.items(state)
        assert case.items(copied)[0] is not case.items(state)[0]
    assert case.items(state.model_copy(deep=True)) == case.items(state)


@CASES
def test_an_error_names_the_path_of_the_field_as_the_contract_would(case: Case) -> None:
    item = {**orjson.loads(orjson.dumps(case.examples[0])), case.time_field: "soon"}
    with pytest.raises(ValidationError) as caught:
        case.holder([item])
    (error,) = caught.value.errors()
    assert error["loc"][-2:] == (0, case.time_field)
    with pytest.raises(ValueError, match=f"^{case.time_field}: date-time must be between"):
        case.record(**{**case.examples[0], case.time_field: datetime(3500, 1, 1, tzinfo=UTC)})


@CASES
def test_a_record_has_every_field_of_its_contract_in_its_order(case: Case) -> None:
    # A field added to the contract and not to the record would be lost on every write.
    assert tuple(case.contract.model_fields) == case.record.FIELDS  # type: ignore[attr-defined]
    assert set(case.examples[0]) == set(case.contract.model_fields)
