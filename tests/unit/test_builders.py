"""A builder makes exactly the model its class would: same fields, same set of given
fields (what `exclude_unset` dumps), same validation errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas.builders import builder
from schemas.candidate import Candidate, Category, Reason
from schemas.decision import DecisionReason, ReasonCode
from schemas.state import CustomerState, PendingTimer

AT = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=2)))

CASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        PendingTimer,
        {
            "timer_id": "review_request:o1",
            "rule_id": "review_request",
            "due_at": AT,  # not UTC: normalised as by the class
            "anchor_at": "2026-03-22T00:30:00Z",
            "occurrence": "o1",
        },
    ),
    (CustomerState, {"customer_id": "c-1"}),
    (
        Candidate,
        {
            "action_id": "a1",
            "rule_id": "welcome",
            "customer_id": "c-1",
            "channels": ["email"],
            "template": "welcome",
            "category": Category.SERVICE,
            "priority": 50,
            "triggered_at": AT,
            "expires_at": AT + timedelta(days=1),
            "reason": Reason(code="action:registered", text="registered happened"),
        },
    ),
    (DecisionReason, {"code": ReasonCode.SENT, "text": "sent on email"}),
]


@pytest.mark.parametrize(("model", "fields"), CASES, ids=lambda case: getattr(case, "__name__", ""))
def test_a_builder_makes_what_the_class_makes(
    model: type[BaseModel], fields: dict[str, Any]
) -> None:
    built = builder(model)(**fields)
    made = model(**fields)
    assert type(built) is model
    assert built == made
    assert built.model_fields_set == made.model_fields_set
    assert built.model_dump_json(exclude_unset=True) == made.model_dump_json(exclude_unset=True)


def test_times_are_normalised_to_utc_as_by_the_class() -> None:
    timer = builder(PendingTimer)(**CASES[0][1])
    assert timer.due_at.tzinfo is UTC
    assert timer.due_at == AT


def test_a_builder_rejects_what_the_class_rejects_with_the_same_errors() -> None:
    bad = {**CASES[3][1], "code": "no_such_code", "text": 5}
    with pytest.raises(ValidationError) as by_class:
        DecisionReason(**bad)
    with pytest.raises(ValidationError) as by_builder:
        builder(DecisionReason)(**bad)
    assert by_builder.value.errors() == by_class.value.errors()
    assert {e["loc"][0] for e in by_builder.value.errors()} == {"code", "text"}


def test_positional_arguments_are_refused_like_the_class_does() -> None:
    with pytest.raises(TypeError):
        DecisionReason(ReasonCode.SENT, "x")  # type: ignore[misc]
    with pytest.raises(TypeError, match="keyword arguments only"):
        builder(DecisionReason)(ReasonCode.SENT, "x")
