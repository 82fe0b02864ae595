"""A candidate action as a native record in memory, its contract model everywhere else.

`CandidateRecord` is what the engine proposes and the policy reads. A deferred
candidate on the contacts changelog and the candidates of a `crm.candidates` message
must not change with it: these tests pin the record against `Candidate`.
"""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from schemas.candidate import Candidate, Category, Reason
from schemas.candidate_record import CandidateRecord, ReasonRecord
from schemas.step import OrchestratorState, StepMessage
from streams.shell.state_codec import CONTACTS_CODEC_NAME, decoder, register

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
FULL: dict[str, Any] = {
    "action_id": "order_thanks-1a2b",
    "rule_id": "order_thanks",
    "customer_id": "c-1",
    "channels": ["email", "push"],
    "template": "order_thanks_v1",
    "category": Category.TRANSACTIONAL,
    "priority": 90,
    "payload": {"order_id": "o-1", "amount": 39.9, "items": [{"sku": "oil-4l"}]},
    "triggered_at": AT,
    "expires_at": AT + timedelta(days=2, microseconds=120000),
    "reason": Reason(code="action:order_placed", text="order_placed happened"),
    "event_id": "e-1",
    "holdout": True,
}
DEFAULTS = {**FULL, "payload": {}, "event_id": None, "holdout": False}
EXAMPLES = pytest.mark.parametrize("fields", [FULL, DEFAULTS], ids=["every field", "defaults"])


def _contacts(candidate: Any) -> OrchestratorState:
    deferred = {"candidate": candidate, "deliver_at": AT + timedelta(hours=9)}
    return OrchestratorState.model_validate({"customer_id": "c-1", "deferred": [deferred]})


def _as_dict(fields: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(Candidate(**fields).model_dump_json())
    return decoded


@EXAMPLES
@pytest.mark.parametrize("given", ["model", "dict", "record"])
def test_a_deferred_candidate_is_held_as_a_record_whatever_it_is_given_as(
    fields: dict[str, Any], given: str
) -> None:
    candidate = {
        "model": lambda: Candidate(**fields),
        "dict": lambda: _as_dict(fields),
        "record": lambda: CandidateRecord(**fields),
    }[given]()
    held = _contacts(candidate).deferred[0].candidate
    assert type(held) is CandidateRecord
    assert type(held.reason) is ReasonRecord
    assert held == CandidateRecord(**fields)


@EXAMPLES
@pytest.mark.parametrize("exclude_defaults", [True, False])
def test_a_candidate_is_written_as_the_contract_model_writes_it(
    fields: dict[str, Any], exclude_defaults: bool
) -> None:
    state, model = _contacts(fields), Candidate(**fields)
    written = orjson.loads(state.model_dump_json(exclude_defaults=exclude_defaults))
    expected = orjson.loads(model.model_dump_json(exclude_defaults=exclude_defaults))
    assert written["deferred"][0]["candidate"] == expected
    assert state.model_dump(mode="json")["deferred"][0]["candidate"] == model.model_dump(
        mode="json"
    )
    assert state.model_dump()["deferred"][0]["candidate"] == model.model_dump()


@EXAMPLES
def test_the_contacts_changelog_reads_back_what_it_wrote_byte_for_byte(
    fields: dict[str, Any],
) -> None:
    register()
    state = _contacts(fields)
    raw = state.model_dump_json(exclude_defaults=True).encode()
    back = decoder(CONTACTS_CODEC_NAME)(raw)
    assert type(back.deferred[0].candidate) is CandidateRecord
    assert back.model_dump_json(exclude_defaults=True).encode() == raw
    assert back.deferred[0].candidate == state.deferred[0].candidate


def test_a_step_message_carries_records_and_is_written_as_before() -> None:
    as_models = StepMessage(customer_id="c-1", at=AT, candidates=[Candidate(**FULL)])
    raw = as_models.model_dump_json().encode()
    read = StepMessage.model_validate_json(raw)
    assert read.candidates == [CandidateRecord(**FULL)]
    assert read.model_dump_json().encode() == raw


@pytest.mark.parametrize(
    ("field", "value"),
    [("channels", []), ("triggered_at", "2026-11-02T09:30:00"), ("category", "gossip")],
)
def test_a_candidate_the_contract_refuses_is_refused(field: str, value: Any) -> None:
    bad = {**_as_dict(FULL), field: value}
    with pytest.raises(ValidationError) as caught:
        _contacts(bad)
    assert caught.value.errors()[0]["loc"][-1] == field
    raw = orjson.dumps(
        {
            "customer_id": "c-1",
            "deferred": [{"candidate": bad, "deliver_at": "2026-11-02T18:30:00Z"}],
        }
    )
    with pytest.raises(ValidationError):
        OrchestratorState.model_validate_json(raw)


def test_a_record_checks_what_validation_checked() -> None:
    local = datetime(2026, 11, 2, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    record = CandidateRecord(**{**FULL, "triggered_at": local, "category": "marketing"})
    assert record.triggered_at == local and record.triggered_at.tzinfo is UTC
    assert record.category is Category.MARKETING
    with pytest.raises(ValueError, match=r"^channels: "):
        CandidateRecord(**{**FULL, "channels": []})
    with pytest.raises(ValueError, match=r"^expires_at: .*zone"):
        CandidateRecord(**{**FULL, "expires_at": datetime(2026, 11, 3)})
    with pytest.raises(ValueError, match=r"^triggered_at: .*2999"):
        CandidateRecord(**{**FULL, "triggered_at": datetime(3000, 1, 1, tzinfo=UTC)})


def test_a_record_has_every_field_of_its_contract_in_its_order() -> None:
    # A field added to the contract and not to the record would be lost on every write.
    assert tuple(Candidate.model_fields) == CandidateRecord.FIELDS
    assert tuple(Reason.model_fields) == ReasonRecord.FIELDS
    assert set(FULL) == set(Candidate.model_fields)


def test_records_are_equal_when_every_field_is_and_pickle_and_copy() -> None:
    record = CandidateRecord(**FULL)
    assert record == CandidateRecord(**FULL)
    for name in FULL:
        if FULL[name] != DEFAULTS[name]:
            assert record != CandidateRecord(**{**FULL, name: DEFAULTS[name]}), name
    assert record != CandidateRecord(**{**FULL, "reason": Reason(code="x", text="x")})
    state = _contacts(FULL)
    for copied in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        assert copied.deferred[0].candidate == record
        assert copied.deferred[0].candidate is not state.deferred[0].candidate
