"""Recurring triggers: the birthday message, yearly at 09:00 in the customer's timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from engine_helpers import Journey, engine_of, rule

BIRTHDAY = rule("birthday", "recurring", date="birthday", at='"09:00"')
SECOND = timedelta(seconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def birthday_journey(default_timezone: str = "UTC", customer: str = "cust-1") -> Journey:
    engine = engine_of(BIRTHDAY, settings=f"default_timezone: {default_timezone}")
    return Journey(engine, customer=customer)


def next_birthday(journey: Journey, rule_id: str = "birthday") -> datetime | None:
    """Due time of the customer's pending yearly timer of `rule_id`."""
    assert journey.state is not None
    due = [t.due_at for t in journey.state.timers if t.rule_id == rule_id]
    assert len(due) <= 1
    return due[0] if due else None


@pytest.mark.parametrize(
    ("timezone", "birthday", "expected_utc"),
    [
        # 09:00 CET (UTC+1) in winter, 09:00 CEST (UTC+2) in summer.
        ("Europe/Berlin", "1990-01-15", utc(2026, 1, 15, 8)),
        ("Europe/Berlin", "1990-07-15", utc(2026, 7, 15, 7)),
        # 09:00 EST (UTC-5) in winter, 09:00 EDT (UTC-4) in summer.
        ("America/New_York", "1990-01-15", utc(2026, 1, 15, 14)),
        ("America/New_York", "1990-07-15", utc(2026, 7, 15, 13)),
        ("Asia/Kolkata", "1990-07-15", utc(2026, 7, 15, 3, 30)),
    ],
)
def test_birthday_at_nine_local_time(timezone: str, birthday: str, expected_utc: datetime) -> None:
    journey = birthday_journey()
    journey("profile_updated", utc(2026, 1, 1), birthday=birthday, timezone=timezone)
    assert next_birthday(journey) == expected_utc
    assert journey.advance(expected_utc - SECOND) == []
    (fired,) = journey.advance(expected_utc)
    assert fired.rule_id == "birthday"
    assert fired.triggered_at == expected_utc


def test_default_timezone_applies_when_the_customer_has_none() -> None:
    berlin = birthday_journey("Europe/Berlin", customer="berlin")
    berlin("profile_updated", utc(2026, 1, 1), birthday="1990-01-15")
    assert next_birthday(berlin) == utc(2026, 1, 15, 8)

    tokyo = birthday_journey("Asia/Tokyo", customer="tokyo")  # UTC+9, no DST
    tokyo("profile_updated", utc(2026, 1, 1), birthday="1990-01-15")
    assert next_birthday(tokyo) == utc(2026, 1, 15, 0)

    own = birthday_journey("Asia/Tokyo", customer="own-zone")
    own("profile_updated", utc(2026, 1, 1), birthday="1990-01-15", timezone="America/New_York")
    assert next_birthday(own) == utc(2026, 1, 15, 14)


def test_leap_day_birthday_falls_on_28_february_in_other_years() -> None:
    journey = birthday_journey()
    journey("profile_updated", utc(2026, 1, 1), birthday="2000-02-29")
    (in_2026,) = journey.advance(utc(2026, 12, 31))
    assert in_2026.triggered_at == utc(2026, 2, 28, 9)
    (in_2027,) = journey.advance(utc(2027, 12, 31))
    assert in_2027.triggered_at == utc(2027, 2, 28, 9)
    (in_2028,) = journey.advance(utc(2028, 12, 31))
    assert in_2028.triggered_at == utc(2028, 2, 29, 9)


def test_birthday_fires_again_next_year_with_a_new_action_id() -> None:
    journey = birthday_journey("Europe/Berlin")
    journey("profile_updated", utc(2026, 1, 1), birthday="1985-05-20")
    (this_year,) = journey.advance(utc(2026, 5, 20, 7))
    assert next_birthday(journey) == utc(2027, 5, 20, 7)
    assert journey.advance(utc(2027, 5, 20, 7) - SECOND) == []
    (next_year,) = journey.advance(utc(2027, 5, 20, 7))
    assert next_year.action_id != this_year.action_id


def test_birthday_already_past_today_is_next_year() -> None:
    journey = birthday_journey()
    journey("profile_updated", utc(2026, 3, 10, 9, 30), birthday="1990-03-10")
    assert next_birthday(journey) == utc(2027, 3, 10, 9)


def test_timezone_change_reschedules_the_birthday() -> None:
    journey = birthday_journey()
    journey("profile_updated", utc(2026, 1, 1), birthday="1990-01-15", timezone="Europe/Berlin")
    assert next_birthday(journey) == utc(2026, 1, 15, 8)
    journey("profile_updated", utc(2026, 1, 5), timezone="America/New_York")
    assert next_birthday(journey) == utc(2026, 1, 15, 14)
    assert journey.advance(utc(2026, 1, 15, 13, 59)) == []
    (fired,) = journey.advance(utc(2026, 1, 16))
    assert fired.triggered_at == utc(2026, 1, 15, 14)


def test_birthday_change_reschedules_and_unknown_birthday_arms_nothing() -> None:
    journey = birthday_journey()
    journey("profile_updated", utc(2026, 1, 1), timezone="Europe/Berlin")
    assert next_birthday(journey) is None
    journey("profile_updated", utc(2026, 1, 2), birthday="1990-06-01")
    journey("profile_updated", utc(2026, 1, 3), birthday="1990-04-01")
    fired = journey.advance(utc(2026, 12, 31))
    assert [c.triggered_at for c in fired] == [utc(2026, 4, 1, 7)]


def test_other_local_time_of_day() -> None:
    text = rule("birthday", "recurring", date="birthday", at='"18:30"')
    journey = Journey(engine_of(text))
    journey("profile_updated", utc(2026, 1, 1), birthday="1990-01-15", timezone="Europe/Berlin")
    assert next_birthday(journey) == utc(2026, 1, 15, 17, 30)


def test_first_order_anniversary() -> None:
    text = rule("anniversary", "recurring", date="first_order_at", at='"09:00"')
    journey = Journey(engine_of(text))
    journey.order(utc(2026, 2, 10, 15))
    journey.order(utc(2026, 6, 1, 15))
    assert next_birthday(journey, "anniversary") == utc(2027, 2, 10, 9)


def test_birthday_sent_with_the_registration_does_not_crash_the_engine() -> None:
    journey = birthday_journey()
    journey("registered", utc(2026, 1, 1), email="a@example.com", birthday="1990-01-15")
    assert journey.state is not None
    birthday = journey.state.profile.birthday
    assert birthday is None or next_birthday(journey) == utc(2026, 1, 15, 9)
