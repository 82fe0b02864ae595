"""The offline simulator is the oracle for the streaming worker: deterministic, and the same
decisions as feeding the engine event by event in event time."""

from __future__ import annotations

import io
import random
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_helpers import T0, days, default_engine, engine_as, hours

from schemas.event import Event
from schemas.journey_step import JourneyStep
from schemas.state import CustomerState
from schemas.step import OrchestratorState
from streams import simulator
from streams.cli import main
from streams.core.decoding import decode_event
from streams.core.engine import Engine, Step
from streams.core.orchestrator import event_steps, step_message
from streams.playbook import DEFAULT_RULES
from streams.simulator import FAR_FUTURE, NO_SKEW_LIMIT, orchestrator_for, simulate

UNTIL = T0 + days(400)


def _event(
    n: int, customer: str, event_type: str, at: datetime, **properties: Any
) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-e{n}",
        "type": event_type,
        "customer_id": customer,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "properties": properties,
    }


def history() -> list[dict[str, Any]]:
    """A few customers' journeys touching every rule of the default playbook."""
    events: list[dict[str, Any]] = []
    items = [
        {"sku": "oil-4l", "category": "motor_oil", "price": 40.0},
        {"sku": "filter-a", "category": "filters", "price": 20.0},
    ]
    for c in range(6):
        customer = f"cust-{c}"
        start = T0 + timedelta(minutes=7 * c)  # no two events share an instant
        seq = iter(range(100))

        def add(at: timedelta, event_type: str, customer: str = customer, **props: Any) -> None:
            events.append(_event(next(seq), customer, event_type, start + at, **props))  # noqa: B023

        add(hours(0), "registered", email=f"{customer}@example.com", timezone="Europe/Berlin")
        add(hours(1), "profile_updated", birthday=f"19{80 + c}-0{1 + c}-1{c}")
        if c % 2 == 0:
            add(hours(20), "email_confirmed")
        if c == 5:
            continue  # never orders
        add(days(2), "cart_updated", items=items, value=60.0)
        if c % 3 == 0:
            continue  # abandons the cart
        first_order = f"{customer}-o1"
        add(days(2) + hours(0.5), "order_placed", order_id=first_order, amount=60.0, items=items)
        add(days(9) + hours(1), "review_submitted", rating=2 + c % 4, order_id=first_order)
        add(
            days(20),
            "appointment_scheduled",
            appointment_id=f"{customer}-a1",
            starts_at=(start + days(30)).isoformat(),
        )
        add(days(40), "order_placed", order_id=f"{customer}-o2", amount=480.0 + c, items=items[:1])
        if c == 4:
            add(days(41), "order_cancelled", order_id=f"{customer}-o2")
            add(days(90), "order_placed", order_id=f"{customer}-o3", amount=600.0)
    return events


def write_events(path: Path, events: list[dict[str, Any]], seed: int) -> Path:
    lines = [orjson.dumps(e) for e in events]
    lines.append(lines[3])  # a re-sent event: a duplicate
    lines.append(b"{not json")  # a rejected line
    random.Random(seed).shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(path: Path) -> bytes:
    out = io.BytesIO()
    simulate(path, default_engine(), UNTIL, out)
    return out.getvalue()


def test_simulation_is_deterministic_over_shuffled_input(tmp_path: Path) -> None:
    path = write_events(tmp_path / "events.jsonl", history(), seed=7)
    first, second = run(path), run(path)
    assert first == second
    rules = {orjson.loads(line)["rule_id"] for line in first.splitlines()}
    # The history is rich enough to exercise most of the playbook.
    assert {"welcome", "order_thanks", "review_request", "abandoned_cart", "birthday"} <= rules
    assert {"appointment_reminder", "vip_threshold", "winback", "replenishment"} <= rules


def test_input_order_does_not_matter_when_event_times_differ(tmp_path: Path) -> None:
    one = write_events(tmp_path / "a.jsonl", history(), seed=1)
    other = write_events(tmp_path / "b.jsonl", history(), seed=2)
    assert one.read_bytes() != other.read_bytes()
    assert run(one) == run(other)


def test_simulator_equals_feeding_the_engine_in_event_time(tmp_path: Path) -> None:
    path = write_events(tmp_path / "events.jsonl", history(), seed=3)
    out = io.BytesIO()
    summary = simulate(path, default_engine(), UNTIL, out)
    simulated = [orjson.loads(line) for line in out.getvalue().splitlines()]

    engine = default_engine()
    orchestrator = orchestrator_for(engine)
    events = sorted(history(), key=lambda e: e["occurred_at"])
    states: dict[str, CustomerState] = {}
    contacts: dict[str, OrchestratorState] = {}
    expected: list[dict[str, Any]] = []

    def orchestrate(message: JourneyStep) -> None:
        done = orchestrator.on_step(contacts.get(message.customer_id), message)
        contacts[message.customer_id] = done.state
        expected.extend(d.model_dump(mode="json") for d in done.decisions)

    for obj in events:
        key = obj["customer_id"].encode()
        decoded = decode_event(key, orjson.dumps(obj), NO_SKEW_LIMIT, FAR_FUTURE)
        if not isinstance(decoded, Event):
            continue
        step = engine.on_event(states.get(decoded.customer_id), decoded)
        if step.duplicate:
            continue
        states[obj["customer_id"]] = step.state
        for message in event_steps(orchestrator, step, decoded.occurred_at, decoded.type):
            orchestrate(message)
    for customer in sorted(states):
        step = engine.advance(states[customer], UNTIL)
        orchestrate(step_message(step.state, UNTIL, None, step.candidates))

    assert simulated == orjson.loads(orjson.dumps(expected))
    assert summary.decisions == len(expected)
    assert summary.duplicates == 1
    assert sum(summary.rejected.values()) == 1
    assert summary.customers == len(states)


def _decisions(path: Path, jobs: int, until: datetime | None) -> tuple[list[bytes], bytes, bytes]:
    out, states, rejects = io.BytesIO(), io.BytesIO(), io.BytesIO()
    summary = simulate(path, default_engine(), until, out, states, jobs=jobs, rejects=rejects)
    assert summary.until == (
        until
        or max(
            datetime.fromisoformat(orjson.loads(line)["occurred_at"])
            for line in path.read_bytes().splitlines()
            if line.startswith(b'{"')
        )
    )
    return sorted(out.getvalue().splitlines()), states.getvalue(), rejects.getvalue()


@pytest.mark.parametrize("until", [UNTIL, None])
def test_parallel_jobs_decide_what_one_job_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: datetime | None
) -> None:
    # Each job reads the file for its own customers. Without --until, the end clock is
    # the latest event of all jobs: a customer whose last event is early still has the
    # timers due until another job's latest event fired.
    events = history()
    jobs_of = {zlib.crc32(f"cust-{c}".encode()) % 2 for c in range(6)}
    assert jobs_of == {0, 1}  # both jobs have customers
    late = _event(99, "cust-0", "page_view", T0 + days(200))
    # A rejected line in each job, besides the unparseable one of `write_events`.
    bad = [_event(98, f"cust-{c}", "order_placed", T0, order_id="x", amount="1") for c in (0, 5)]
    assert {zlib.crc32(b"cust-0") % 2, zlib.crc32(b"cust-5") % 2} == {0, 1}
    path = write_events(tmp_path / "events.jsonl", [*events, late, *bad], seed=5)
    monkeypatch.setattr(simulator, "PARALLEL_FROM_LINES", 0)
    one = _decisions(path, 1, until)
    two = _decisions(path, 2, until)
    assert one == two
    assert len(one[0]) > 20
    assert [orjson.loads(r)["error_code"] for r in one[2].splitlines()].count(
        "invalid_properties"
    ) == 2


def test_parallel_jobs_keep_a_customer_together_however_its_lines_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Producers write the same customer's id raw or escaped, with spaces, with an escaped
    # key, or nested in properties too: each customer's lines must meet in one job, or
    # its state splits in two. (A reader that takes the id off the bytes fails this.)
    import json

    escaped = json.dumps("jürgen")[1:-1].encode()
    assert zlib.crc32("jürgen".encode()) % 2 != zlib.crc32(escaped) % 2
    lines: list[bytes] = []
    for n, event in enumerate(history()):
        if event["customer_id"] == "cust-1":
            event = {**event, "customer_id": "jürgen", "event_id": f"j-{n}"}
            # Alternately raw UTF-8 and \u-escaped with spaces (json's defaults).
            lines.append(orjson.dumps(event) if n % 2 else json.dumps(event).encode())
        elif event["customer_id"] == "cust-4" and n % 2:
            lines.append(orjson.dumps(event).replace(b'"customer_id"', b'"customer\\u005fid"'))
        else:
            lines.append(orjson.dumps(event))
    other_job = next(f"cust-{c}" for c in range(6) if zlib.crc32(f"cust-{c}".encode()) % 2 == 0)
    referral = _event(97, "cust-1", "referral_sent", T0 + hours(5), customer_id=other_job)
    # The nested id first: a reader that took the first one would send this elsewhere.
    nested_first = {"properties": referral["properties"], **referral, "customer_id": "jürgen"}
    lines.append(orjson.dumps(nested_first))
    nested_only = {k: v for k, v in referral.items() if k != "customer_id"}
    lines.append(orjson.dumps(nested_only))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(simulator, "PARALLEL_FROM_LINES", 0)

    one = _decisions(path, 1, UNTIL)
    two = _decisions(path, 2, UNTIL)
    assert one == two
    customers = [orjson.loads(line)["customer_id"] for line in two[1].splitlines()]
    assert sorted(customers) == sorted({*customers})  # one state per customer
    assert "jürgen" in customers
    assert [orjson.loads(r)["error_code"] for r in two[2].splitlines()] == ["missing_customer_id"]


def test_rejected_lines_are_listed_in_line_order_with_their_reason(tmp_path: Path) -> None:
    registered = _event(1, "kunde-ü", "registered", T0, email="k@example.org")
    ordered = _event(2, "kunde-ü", "order_placed", T0 + hours(2), order_id="o1", amount=20.0)
    text_amount = _event(3, "c-2", "order_placed", T0 + hours(1), order_id="o2", amount="19.90")
    lines = [
        # An export tool's byte order mark, and Windows line ends: the event still counts.
        b"\xef\xbb\xbf" + orjson.dumps(registered),
        orjson.dumps(ordered),
        orjson.dumps(text_amount),
        b"{not json",  # no time: met first, listed in its place
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    out, rejects = io.BytesIO(), io.BytesIO()
    summary = simulate(path, default_engine(), UNTIL, out, rejects=rejects)

    decided = {orjson.loads(line)["rule_id"] for line in out.getvalue().splitlines()}
    assert {"welcome", "order_thanks"} <= decided
    records = [orjson.loads(line) for line in rejects.getvalue().splitlines()]
    assert [(r["line"], r["error_code"]) for r in records] == [
        (3, "invalid_properties"),
        (4, "invalid_json"),
    ]
    assert records[0]["errors"] == [
        {
            "field": "properties.amount",
            "problem": "Input should be a valid number",
            "code": "float_type",
        }
    ]
    assert records[0]["value_text"] == orjson.dumps(text_amount).decode()
    assert summary.rejected == {"invalid_json": 1, "invalid_properties": 1}


def test_an_event_the_engine_fails_on_is_listed_and_the_run_goes_on(tmp_path: Path) -> None:
    class FailsOnSecondOrder(Engine):
        def on_event(self, state: CustomerState | None, event: Event) -> Step:
            if event.event_id == "c-1-e2":
                raise ZeroDivisionError("a bug")
            return super().on_event(state, event)

    engine = engine_as(FailsOnSecondOrder, DEFAULT_RULES.read_text(encoding="utf-8"))
    events = [
        _event(1, "c-1", "order_placed", T0, order_id="o1", amount=20.0),
        _event(2, "c-1", "order_placed", T0 + hours(1), order_id="o2", amount=30.0),
        _event(3, "c-1", "order_placed", T0 + hours(2), order_id="o3", amount=40.0),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    out, states, rejects = io.BytesIO(), io.BytesIO(), io.BytesIO()
    summary = simulate(path, engine, UNTIL, out, states, rejects=rejects)

    [record] = [orjson.loads(line) for line in rejects.getvalue().splitlines()]
    assert (record["line"], record["error_code"]) == (2, "processing_error")
    assert record["error_message"] == "ZeroDivisionError: a bug"
    assert orjson.loads(states.getvalue())["orders_count"] == 2
    assert summary.rejected == {"processing_error": 1}


def test_the_command_names_the_rejects_file_only_when_lines_were_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_events(tmp_path / "events.jsonl", history(), seed=3)
    assert main(["simulate", "--events", str(path)]) == 0
    assert "--rejects FILE lists each rejected line" in capsys.readouterr().err

    listing = tmp_path / "rejects.jsonl"
    assert main(["simulate", "--events", str(path), "--rejects", str(listing)]) == 0
    assert "--rejects FILE" not in capsys.readouterr().err
    [record] = [orjson.loads(line) for line in listing.read_bytes().splitlines()]
    assert record["error_code"] == "invalid_json"
    assert path.read_bytes().splitlines()[record["line"] - 1] == b"{not json"
