"""The common-form shortcut of `Rfc3339` must read every string exactly as the full
pydantic chain does: same instant, same rejections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, Strict, TypeAdapter, ValidationError

from schemas.timestamps import MAX_YEAR, MIN_YEAR, Rfc3339

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
