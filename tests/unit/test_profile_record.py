"""A journey step and its profile snapshot as native records in memory.

`JourneyStep` and `ProfileRecord` are mypyc classes the compiled core builds at every
step the orchestrator takes. What the contacts changelog and `crm.candidates` carry
must not change with them: these tests pin the profile against its contract model
(`ProfileSnapshot`) and a step read from the topic against the message it came from.
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
from schemas.candidate_record import CandidateRecord
from schemas.journey_step import JourneyStep, from_message
from schemas.profile_record import ProfileRecord, profile_of
from schemas.state import ConsentEntry, CustomerState
from schemas.step import OrchestratorState, ProfileSnapshot, StepMessage
from streams.core.orchestrator import step_message
from streams.shell.state_codec import CONTACTS_CODEC_NAME, decoder, register

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
FULL: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "consent": {
        "email": ConsentEntry(granted=True, category="marketing", changed_at=AT),
        "sms": ConsentEntry(granted=False, category="all", changed_at=AT + timedelta(hours=1)),
    },
    "email_confirmed_at": AT + timedelta(microseconds=120000),
}
EXAMPLES = [FULL, {"timezone": "Asia/Tokyo"}, {}]
"""Every field set; one set and the rest at their defaults; nothing set."""


def _state(profile: Any) -> OrchestratorState:
    return OrchestratorState.model_validate({"customer_id": "c-1", "profile": profile})


@pytest.mark.parametrize("fields", EXAMPLES)
@pytest.mark.parametrize("given", ["model", "dict", "record"])
def test_a_contacts_state_holds_a_record_whatever_the_profile_is_given_as(
    fields: dict[str, Any], given: str
) -> None:
    profile = {
        "model": lambda: ProfileSnapshot(**fields),
        "dict": lambda: orjson.loads(orjson.dumps(ProfileSnapshot(**fields).model_dump())),
        "record": lambda: ProfileRecord(**fields),
    }[given]()
    held = _state(profile).profile
    assert type(held) is ProfileRecord
    assert held == ProfileRecord(**fields)


@pytest.mark.parametrize("fields", EXAMPLES)
@pytest.mark.parametrize("exclude_defaults", [True, False])
def test_a_profile_is_written_as_the_contract_model_writes_it(
    fields: dict[str, Any], exclude_defaults: bool
) -> None:
    written = orjson.loads(_state(fields).model_dump_json(exclude_defaults=exclude_defaults))
    model = ProfileSnapshot(**fields)
    assert written["profile"] == orjson.loads(
        model.model_dump_json(exclude_defaults=exclude_defaults)
    )
    assert _state(fields).model_dump(mode="json")["profile"] == model.model_dump(mode="json")
    assert _state(fields).model_dump()["profile"] == model.model_dump()


@pytest.mark.parametrize("fields", EXAMPLES)
def test_the_contacts_changelog_reads_back_what_it_wrote_byte_for_byte(
    fields: dict[str, Any],
) -> None:
    register()
    state = _state(fields)
    raw = state.model_dump_json(exclude_defaults=True).encode()
    back = decoder(CONTACTS_CODEC_NAME)(raw)
    assert type(back.profile) is ProfileRecord
    assert back.model_dump_json(exclude_defaults=True).encode() == raw
    assert back.profile == state.profile


def test_a_profile_the_contract_refuses_is_refused_in_a_state() -> None:
    bad = {"timezone": "Europe/Berlin", "email_confirmed_at": "2026-11-02T09:30:00"}  # no zone
    with pytest.raises(ValidationError) as caught:
        _state(bad)
    assert caught.value.errors()[0]["loc"][-2:] == ("profile", "email_confirmed_at")
    raw = orjson.dumps({"customer_id": "c-1", "profile": bad})
    with pytest.raises(ValidationError):
        OrchestratorState.model_validate_json(raw)


def test_the_confirmation_time_is_normalised_to_utc_and_checked_as_validation_did() -> None:
    local = datetime(2027, 5, 22, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    record = ProfileRecord(email_confirmed_at=local)
    assert record.email_confirmed_at == ProfileSnapshot(email_confirmed_at=local).email_confirmed_at
    assert record.email_confirmed_at is not None and record.email_confirmed_at.tzinfo is UTC
    with pytest.raises(ValueError, match=r"^email_confirmed_at: .*zone"):
        ProfileRecord(email_confirmed_at=datetime(2026, 1, 1))


def test_a_profile_has_every_field_of_its_contract_in_its_order() -> None:
    # A field added to the contract and not to the record would be lost on every write.
    assert tuple(ProfileSnapshot.model_fields) == ProfileRecord.FIELDS
    assert set(FULL) == set(ProfileSnapshot.model_fields)


def test_profiles_are_equal_when_every_field_is_and_pickle_and_copy() -> None:
    record = ProfileRecord(**FULL)
    assert record == ProfileRecord(**FULL)
    for name, other in (("timezone", "UTC"), ("consent", {}), ("email_confirmed_at", None)):
        assert record != ProfileRecord(**{**FULL, name: other}), name
    state = _state(FULL)
    for copied in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        assert copied.profile == state.profile
        assert copied.profile is not state.profile


def test_a_snapshot_does_not_follow_later_consent_changes_of_the_state() -> None:
    state = CustomerState(customer_id="c-1", consent=dict(FULL["consent"]))
    snapshot = profile_of(state)
    state.consent["push"] = ConsentEntry(granted=True, category="marketing", changed_at=AT)
    assert set(snapshot.consent) == {"email", "sms"}


def _candidate() -> Candidate:
    return Candidate(
        action_id="welcome-1",
        rule_id="welcome",
        customer_id="c-1",
        channels=["email"],
        template="welcome_v1",
        category=Category.SERVICE,
        priority=60,
        triggered_at=AT,
        expires_at=AT + timedelta(days=2),
        reason=Reason(code="registered", text="registered"),
    )


def test_a_step_read_from_the_topic_carries_what_the_message_did() -> None:
    message = StepMessage(
        customer_id="c-1",
        at=AT,
        event_type="registered",
        profile=ProfileSnapshot(**FULL),
        candidates=[_candidate()],
    )
    raw = message.model_dump_json().encode()
    step = from_message(StepMessage.model_validate_json(raw))
    assert (step.customer_id, step.at, step.event_type) == ("c-1", AT, "registered")
    assert step.profile == ProfileRecord(**FULL)
    assert step.candidates == [CandidateRecord.of(_candidate())]
    assert not step.is_tick
    tick = from_message(
        StepMessage.model_validate_json(b'{"customer_id":"c-1","at":"2026-11-02T09:30:00Z"}')
    )
    assert tick.is_tick and tick.at == AT


def test_a_step_checks_its_time_as_the_message_did() -> None:
    local = datetime(2026, 11, 2, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert JourneyStep(customer_id="c-1", at=local).at.tzinfo is UTC
    with pytest.raises(ValueError, match=r"^at: .*zone"):
        JourneyStep(customer_id="c-1", at=datetime(2026, 11, 2))


def test_records_refuse_times_outside_the_contracts_years() -> None:
    with pytest.raises(ValueError, match="2999"):
        ProfileRecord(email_confirmed_at=datetime(3000, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="2999"):
        JourneyStep(customer_id="c-1", at=datetime(1899, 12, 31, tzinfo=UTC))


def test_steps_are_equal_when_every_field_is_and_pickle_and_copy() -> None:
    step = JourneyStep(
        customer_id="c-1", at=AT, event_type="registered", profile=ProfileRecord(**FULL)
    )
    assert step == JourneyStep(
        customer_id="c-1", at=AT, event_type="registered", profile=ProfileRecord(**FULL)
    )
    assert step != JourneyStep(customer_id="c-1", at=AT, event_type="registered")
    for copied in (pickle.loads(pickle.dumps(step)), copy.deepcopy(step)):
        assert copied == step
        assert copied is not step
    assert "registered" in repr(step)


def test_a_step_keeps_what_it_was_given_as_of_its_making() -> None:
    # The engine's step goes on holding its candidates, and the state its consent: the
    # orchestrator decides on the step as it was made.
    state = CustomerState(customer_id="c-1", consent=dict(FULL["consent"]))
    proposed = [CandidateRecord.of(_candidate())]
    step = step_message(state, AT, "registered", proposed)
    proposed.clear()
    state.consent.clear()
    assert step.candidates == [CandidateRecord.of(_candidate())]
    assert set(step.profile.consent) == {"email", "sms"}  # type: ignore[union-attr]
