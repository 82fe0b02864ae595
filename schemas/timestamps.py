"""Timestamp types shared by every contract.

Producers must send RFC 3339 strings with an explicit zone. Numbers (epoch
seconds or millis) are rejected rather than guessed, because the two are easy to
confuse and a wrong guess silently shifts every timer by a factor of 1000.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    Strict,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)


def _require_string(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string with a zone, e.g. 2026-11-22T10:15:00Z")
    if "T" not in value and "t" not in value and " " not in value:
        raise ValueError("must be an RFC 3339 date-time with a zone, not a date alone")
    return value


MIN_YEAR, MAX_YEAR = 1900, 2999
"""Outside this, a time is a producer's placeholder ("0001-01-01"), not an event time;
computing timers or local dates from it would overflow."""


def to_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("date-time is out of the representable range") from exc
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"date-time must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return utc


def checked_utc(value: datetime, field: str) -> datetime:
    """What validating an `Rfc3339` makes of a datetime, for native records built
    without validation: aware, within the years, in UTC. Errors name the field, as a
    validation error would (they reach `--rejects` and the dead-letter topic)."""
    if value.tzinfo is UTC and MIN_YEAR <= value.year <= MAX_YEAR:
        return value
    if value.tzinfo is None:
        raise ValueError(f"{field}: a time must carry a zone, got {value.isoformat()}")
    try:
        return to_utc(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from exc


def _validate(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    """`_require_string`, then pydantic's aware-datetime parsing, then `to_utc`.

    A UTC datetime in range is returned as is: that is what the chain would give
    back, and it is the common case (models built from already validated times,
    ~8 per event in the simulator), where the chain's two Python calls cost more
    than the rest of the model's validation.
    """
    if type(value) is datetime and value.tzinfo is UTC and MIN_YEAR <= value.year <= MAX_YEAR:
        return value
    if type(value) is str and _COMMON_FORM.fullmatch(value):
        # The forms producers send (`...T10:15:00Z`, `.123+01:00`): the C parser reads
        # them exactly as pydantic's does, at a tenth of the cost of the chain below,
        # which still decides (and words the error for) everything else.
        try:
            parsed = datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
        else:
            if MIN_YEAR <= parsed.year <= MAX_YEAR:
                return parsed
    utc: datetime = to_utc(handler(_require_string(value)))
    return utc


_COMMON_FORM = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII
)


def format_utc(value: datetime) -> str:
    """Render a datetime as RFC 3339 in UTC with a `Z` suffix (millisecond precision kept)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # A UTC isoformat always ends in "+00:00": slicing it off is about twice as fast as
    # str.replace, and this runs for every datetime the simulator and the worker write.
    return f"{value.isoformat()[:-6]}Z"


Rfc3339 = Annotated[
    AwareDatetime,
    Strict(False),
    WrapValidator(_validate),
]
"""An aware datetime parsed from RFC 3339 text and normalised to UTC.

Written by pydantic-core itself: for a UTC value its JSON text is `format_utc`'s
(`2026-11-22T10:15:00Z`, `.120000Z` with microseconds), without a call into Python
per datetime (states hold dozens; that call was ~5% of a worker's time). Every value
is UTC: validation normalises what comes in, and the engine and the policy derive
times from those (tests/unit/test_timestamps.py checks a simulated history)."""
