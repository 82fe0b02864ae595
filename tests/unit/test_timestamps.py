"""The common-form shortcut of `Rfc3339` must read every string exactly as the full
pydantic chain does: same instant, same rejections."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, Strict, TypeAdapter, ValidationError

from schemas.timestamps import MAX_YEAR, MIN_YEAR, Rfc3339
from streams.core.decoding import DecodeLimits, Rejection, decode_event
from streams.core.engine import load_engine
from streams.core.orchestrator import event_steps
from streams.demo.history import generate_history
from streams.playbook import DEFAULT_RULES
from streams.simulator import orchestrator_for

FAST = TypeAdapter(Rfc3339)
CHAIN = TypeAdapter(Annotated[AwareDatetime, Strict(False)])


def chain(text: str) -> datetime | None:
    """What the validator gave before the shortcut: pydantic's parse, then UTC in range."""
    try:
        utc = CHAIN.validate_python(text).astimezone(UTC)
    except (ValidationError, OverflowError):
        return None
    return utc if MIN_YEAR <= utc.year <= MAX_YEAR else None


def fast(text: str) -> datetime | None:
    try:
        value: datetime = FAST.validate_python(text)
    except ValidationError:
        return None
    return value


digits = st.integers
stamps = st.builds(
    lambda y, mo, d, h, mi, s, frac, zone: (
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"
    ),
    digits(0, 9999),
    digits(0, 13),
    digits(0, 32),
    digits(0, 25),
    digits(0, 60),
    digits(0, 61),
    st.sampled_from(["", ".1", ".123", ".123456", ".1234567"]),
    st.one_of(
        st.just("Z"),
        st.just(""),
        st.builds(
            lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
            st.sampled_from("+-"),
            digits(0, 25),
            digits(0, 60),
        ),
    ),
)


@settings(max_examples=3000, deadline=None, derandomize=True)  # 300k found no mismatch
@given(stamps)
def test_common_forms_read_as_pydantic_reads_them(text: str) -> None:
    assert fast(text) == chain(text)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-22T10:15:00Z",
        "2026-11-22T11:15:00.5+01:00",
        "2026-11-22 10:15:00Z",
        "2026-11-22t10:15:00z",
        "2026-11-22T10:15Z",
        "2026-02-30T10:15:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T10:15:00",
        "2026-11-22",
        "١٩٩٠-11-22T10:15:00Z",  # non-ASCII digits: never the shortcut
        1_700_000_000,
        "",
    ],
)
def test_other_forms_keep_the_full_chain(value: Any) -> None:
    expected = chain(value) if isinstance(value, str) else None
    if isinstance(value, str) and ("T" not in value and "t" not in value and " " not in value):
        expected = None  # a date alone is refused before pydantic parses it
    assert (fast(value) if isinstance(value, str) else _reject(value)) == expected


def _reject(value: Any) -> None:
    with pytest.raises(ValidationError):
        FAST.validate_python(value)


RFC3339_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _times(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if RFC3339_TEXT.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _times(item)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item)


def test_every_time_the_engine_and_the_policy_write_is_utc_with_a_z() -> None:
    # pydantic-core writes the datetimes (no Python serializer): a value that reached a
    # model unvalidated in another timezone would print its own offset instead of `Z`.
    # States, contact histories and decisions of a simulated history: all UTC.
    end = datetime(2026, 11, 22, 10, tzinfo=UTC)
    engine = load_engine(DEFAULT_RULES.read_text())
    orchestrator = orchestrator_for(engine)
    states: dict[str, Any] = {}
    contacts: dict[str, Any] = {}
    written: list[bytes] = []
    history = sorted(generate_history(300, 60, end, seed=3), key=lambda e: e["occurred_at"])
    for raw in history:
        event = decode_event(raw["customer_id"].encode(), orjson.dumps(raw), DecodeLimits(), end)
        if isinstance(event, Rejection):
            continue
        step = engine.on_event(states.get(event.customer_id), event)
        states[event.customer_id] = step.state
        for message in event_steps(orchestrator, step, event.occurred_at, event.type):
            done = orchestrator.on_step(contacts.get(event.customer_id), message)
            contacts[event.customer_id] = done.state
            written += [d.model_dump_json().encode() for d in (*done.decisions, *done.actions)]
    written += [s.model_dump_json().encode() for s in (*states.values(), *contacts.values())]
    times = [t for record in written for t in _times(orjson.loads(record))]
    assert len(times) > 10_000
    assert [t for t in times if not t.endswith("Z")] == []
