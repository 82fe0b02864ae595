"""The default playbook end to end through the engine: the scenarios a CRM team signs off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from engine_helpers import T0, Journey, days, default_engine, hours, ids, order

SECOND = timedelta(seconds=1)
CART = [{"sku": "oil-4l", "category": "motor_oil", "price": 40.0}]


def playbook(customer: str = "cust-1") -> Journey:
    return Journey(default_engine(), customer=customer)


# ---------------------------------------------------------------------------- welcome


def test_registration_is_welcomed_at_once() -> None:
    journey = playbook()
    fired = journey("registered", T0, email="a@example.com")
    assert "welcome" in ids(fired)
    (welcome,) = journey.fired("welcome")
    assert welcome.triggered_at == T0
    assert welcome.category.value == "service"
    assert welcome.expires_at == T0 + days(2)


def test_every_order_is_thanked_once_even_when_resent() -> None:
    journey = playbook()
    journey.send(order(T0, "o-1", event_id="e-1"))
    journey.send(order(T0 + hours(1), "o-1", event_id="e-2"))
    journey.send(order(T0 + days(1), "o-2", event_id="e-3"))
    thanks = journey.fired("order_thanks")
    assert len(thanks) == 2
    assert thanks[0].action_id != thanks[1].action_id
    assert thanks[0].category.value == "transactional"


# ----------------------------------------------------------------------- doi_reminder


def test_doi_reminder_two_days_after_registration_without_confirmation() -> None:
    journey = playbook()
    journey("registered", T0, email="a@example.com")
    assert "doi_reminder" not in ids(journey.advance(T0 + days(2) - SECOND))
    fired = journey.advance(T0 + days(2))
    assert ids(fired) == ["doi_reminder"]
    assert fired[0].triggered_at == T0 + days(2)


def test_no_doi_reminder_once_the_email_is_confirmed() -> None:
    journey = playbook()
    journey("registered", T0, email="a@example.com")
    journey("email_confirmed", T0 + days(1))
    journey.advance(T0 + days(10))
    assert journey.fired("doi_reminder") == []


def test_no_doi_reminder_without_an_email_address() -> None:
    journey = playbook()
    journey("registered", T0, phone="+4915100000")
    journey.advance(T0 + days(10))
    assert journey.fired("doi_reminder") == []


# ------------------------------------------------------------------ first_order_nudge


def test_first_order_nudge_thirty_days_after_registration_without_an_order() -> None:
    journey = playbook()
    journey("registered", T0, email="a@example.com")
    journey.advance(T0 + days(30) - SECOND)
    assert journey.fired("first_order_nudge") == []
    journey.advance(T0 + days(30))
    (nudge,) = journey.fired("first_order_nudge")
    assert nudge.triggered_at == T0 + days(30)


def test_no_first_order_nudge_after_an_order() -> None:
    journey = playbook()
    journey("registered", T0, email="a@example.com")
    journey.order(T0 + days(29))
    journey.advance(T0 + days(60))
    assert journey.fired("first_order_nudge") == []


# --------------------------------------------------------------------- abandoned_cart


def test_abandoned_cart_one_hour_after_the_last_cart_change() -> None:
    journey = playbook()
    journey("cart_updated", T0, items=CART, value=40.0)
    journey("cart_updated", T0 + hours(0.5), items=CART * 2, value=80.0)
    journey.advance(T0 + hours(1))
    assert journey.fired("abandoned_cart") == []
    journey.advance(T0 + hours(2))
    (cart,) = journey.fired("abandoned_cart")
    assert cart.triggered_at == T0 + hours(1.5)
    assert cart.payload["event"]["value"] == 80.0


def test_no_abandoned_cart_when_the_cart_is_ordered_within_the_hour() -> None:
    journey = playbook()
    journey("cart_updated", T0, items=CART, value=40.0)
    journey.order(T0 + hours(0.75), amount=40.0)
    journey.advance(T0 + days(1))
    assert journey.fired("abandoned_cart") == []


def test_no_abandoned_cart_when_the_cart_is_emptied() -> None:
    journey = playbook()
    journey("cart_updated", T0, items=CART, value=40.0)
    journey("cart_updated", T0 + hours(0.25), items=[])
    journey.advance(T0 + days(1))
    assert journey.fired("abandoned_cart") == []


# ---------------------------------------------------------- review_request, second_order


def test_review_request_seven_days_after_the_order() -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey.advance(T0 + days(7))
    (request,) = journey.fired("review_request")
    assert request.triggered_at == T0 + days(7)


def test_no_review_request_when_a_review_was_written_or_the_order_cancelled() -> None:
    reviewed = playbook("reviewed")
    reviewed.order(T0, "o-1")
    reviewed("review_submitted", T0 + days(2), rating=4, order_id="o-1")
    reviewed.advance(T0 + days(30))
    assert reviewed.fired("review_request") == []

    cancelled = playbook("cancelled")
    cancelled.order(T0, "o-1")
    cancelled("order_cancelled", T0 + days(1), order_id="o-1")
    cancelled.advance(T0 + days(30))
    assert cancelled.fired("review_request") == []


def test_cancelling_one_order_keeps_the_review_request_of_another() -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey.order(T0 + days(1), "o-2")
    journey("order_cancelled", T0 + days(2), order_id="o-1")
    journey.advance(T0 + days(30))
    assert [c.payload["event"]["order_id"] for c in journey.fired("review_request")] == ["o-2"]


@pytest.mark.parametrize("rating", [3, 4, 5])
def test_second_order_nudge_after_a_good_review_of_the_first_order(rating: int) -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey("review_submitted", T0 + days(8), rating=rating, order_id="o-1")
    journey.advance(T0 + days(11) - SECOND)
    assert journey.fired("second_order") == []
    journey.advance(T0 + days(11))
    (nudge,) = journey.fired("second_order")
    assert nudge.triggered_at == T0 + days(11)


@pytest.mark.parametrize("rating", [1, 2])
def test_no_second_order_nudge_after_a_negative_review(rating: int) -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey("review_submitted", T0 + days(8), rating=rating, order_id="o-1")
    journey.advance(T0 + days(60))
    assert journey.fired("second_order") == []


def test_no_second_order_nudge_when_the_second_order_comes_first() -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey("review_submitted", T0 + days(8), rating=5, order_id="o-1")
    journey.order(T0 + days(9), "o-2")
    journey.advance(T0 + days(60))
    assert journey.fired("second_order") == []


def test_no_second_order_nudge_for_a_repeat_customers_review() -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey.order(T0 + days(2), "o-2")
    journey("review_submitted", T0 + days(8), rating=5, order_id="o-2")
    journey.advance(T0 + days(60))
    assert journey.fired("second_order") == []


# ---------------------------------------------------------------------------- winback


def test_winback_180_days_after_the_last_order_and_again_after_a_later_lapse() -> None:
    journey = playbook()
    journey.order(T0, "o-1")
    journey.advance(T0 + days(180) - SECOND)
    assert journey.fired("winback") == []
    journey.advance(T0 + days(180))
    (first,) = journey.fired("winback")
    assert first.triggered_at == T0 + days(180)

    journey.order(T0 + days(200), "o-2")
    journey.advance(T0 + days(380) - SECOND)
    assert len(journey.fired("winback")) == 1
    journey.advance(T0 + days(380))
    second = journey.fired("winback")[1]
    assert second.triggered_at == T0 + days(380)
    assert second.action_id != first.action_id


def test_no_winback_while_the_customer_keeps_ordering() -> None:
    journey = playbook()
    for month in range(8):
        journey.order(T0 + days(150 * month))
    assert journey.fired("winback") == []
    journey.advance(T0 + days(150 * 7 + 179))
    assert journey.fired("winback") == []


# -------------------------------------------------------------------- overdue_repeat


def test_overdue_repeat_at_one_and_a_half_personal_intervals() -> None:
    journey = playbook()
    for n in range(3):
        journey.order(T0 + days(20 * n))  # a 20-day rhythm
    journey.advance(T0 + days(40 + 30) - SECOND)
    assert journey.fired("overdue_repeat") == []
    journey.advance(T0 + days(40 + 30))
    (late,) = journey.fired("overdue_repeat")
    assert late.triggered_at == T0 + days(70)


def test_no_overdue_repeat_for_a_one_time_buyer() -> None:
    journey = playbook()
    journey.order(T0)
    journey.advance(T0 + days(400))
    assert journey.fired("overdue_repeat") == []


# ---------------------------------------------------------------------- replenishment


def test_replenishment_at_ninety_percent_of_the_consumption_cycle() -> None:
    journey = playbook()
    journey.order(T0, categories=["motor_oil", "wiper_blades"])
    journey.advance(T0 + days(400))
    by_category = {c.payload["trigger"]["category"]: c for c in journey.fired("replenishment")}
    assert by_category["motor_oil"].triggered_at == T0 + days(270) * 0.9
    assert by_category["wiper_blades"].triggered_at == T0 + days(365) * 0.9


# ------------------------------------------------------------------ appointment_reminder


def test_appointment_reminder_24_hours_before_it_starts() -> None:
    journey = playbook()
    starts = datetime(2026, 4, 15, 9, 0, tzinfo=UTC)
    journey(
        "appointment_scheduled", T0, appointment_id="a-1", starts_at="2026-04-15T11:00:00+02:00"
    )
    journey.advance(starts - hours(24) - SECOND)
    assert journey.fired("appointment_reminder") == []
    journey.advance(starts - hours(24))
    (reminder,) = journey.fired("appointment_reminder")
    assert reminder.triggered_at == starts - hours(24)
    assert reminder.channels == ["sms", "push", "email"]
    assert reminder.expires_at == starts - hours(4)  # ttl 20h: relevant until the appointment


def test_rescheduled_appointment_is_reminded_once_at_the_new_time() -> None:
    journey = playbook()
    first, moved = T0 + days(10), T0 + days(12)
    journey("appointment_scheduled", T0, appointment_id="a-1", starts_at=first.isoformat())
    journey(
        "appointment_scheduled", T0 + days(1), appointment_id="a-1", starts_at=moved.isoformat()
    )
    journey.advance(T0 + days(30))
    assert [c.triggered_at for c in journey.fired("appointment_reminder")] == [moved - hours(24)]


# ------------------------------------------------------------------ vip and birthday


def test_vip_when_total_spend_reaches_500() -> None:
    journey = playbook()
    journey.order(T0, amount=250)
    journey.order(T0 + days(1), amount=249.99)
    assert journey.fired("vip_threshold") == []
    journey.order(T0 + days(2), amount=0.01)
    (vip,) = journey.fired("vip_threshold")
    assert vip.triggered_at == T0 + days(2)


def test_birthday_at_nine_in_the_playbooks_default_timezone() -> None:
    journey = playbook()
    journey("profile_updated", T0, birthday="1990-06-01")  # Europe/Berlin: CEST in June
    journey.advance(datetime(2026, 12, 31, tzinfo=UTC))
    (birthday,) = journey.fired("birthday")
    assert birthday.triggered_at == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
