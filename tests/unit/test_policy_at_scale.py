"""10,000 customers over 90 days through the simulator: no cap is ever exceeded."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.core.engine import load_engine
from streams.demo.history import generate_history
from streams.playbook import DEFAULT_RULES
from streams.simulator import simulate
from tests.cap_check import violations

END = datetime(2026, 11, 1, tzinfo=UTC)


def test_ten_thousand_customers_over_ninety_days_never_exceed_a_cap(tmp_path: Path) -> None:
    history = generate_history(10_000, 90, END, seed=11)
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in history))
    timezones = {
        e["customer_id"]: e["properties"].get("timezone")
        for e in history
        if e["type"] == "registered"
    }
    out = io.BytesIO()
    summary = simulate(path, load_engine(DEFAULT_RULES.read_text()), END, out)
    decisions: list[dict[str, Any]] = [orjson.loads(line) for line in out.getvalue().splitlines()]
    sent = [d for d in decisions if d["outcome"] == "sent"]
    assert summary.customers > 9_000
    # The check is not vacuous: marketing is sent, and so is capped or deferred.
    assert sum(d["category"] == "marketing" for d in sent) > 1_000
    reasons = {d["reason"]["code"] for d in decisions}
    assert {"frequency_cap", "min_gap", "quiet_hours", "no_consent"} <= reasons
    assert violations(sent, timezones) == []
    # Transactional messages are never held back by caps or quiet hours.
    thanks = [d for d in decisions if d["rule_id"] == "order_thanks"]
    assert thanks and all(d["outcome"] == "sent" for d in thanks)
