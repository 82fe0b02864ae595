"""A real Prometheus scraping a real worker on the embedded broker.

After a short run with known traffic (registrations, orders, malformed
messages, a duplicate, timers that fire and timers that are cancelled), the
numbers Prometheus holds must be the ones a user can count by hand; the
alert rules must load and evaluate; every metric the dashboard and the alerts
query must exist; no label and no log line carries personal data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.compiled_core import core_is_compiled
from streams.shell.embedded_broker import EmbeddedBroker, free_port
from tests.integration.kafka_io import Deployment, WorkerProcess, as_message, event, produce, ts
from tests.unit.test_deploy import PROMETHEUS, alert_exprs, dashboard_exprs, metric_names, ours

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

RULES = """
version: 1
rules:
  - id: welcome
    kind: action
    on: registered
    channels: [email]
    template: welcome_v1
    category: service
  - id: first_order_nudge
    kind: inactivity
    after: registered
    unless: [order_placed]
    within: 3s
    channels: [email]
    template: nudge_v1
    category: service
policy:  # nothing withheld: every trigger is a countable send
  quiet_hours: null
  min_gap: 1s
  decision_window: 0s
  caps: []
"""

REGISTERED = 40
ORDERING = 15  # of the registered customers order within the window: nudge cancelled


class PrometheusServer:
    def __init__(self, work: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip(
                "prometheus not installed (Debian package `prometheus`; `make test` installs "
                "it when it can)"
            )
        self.port = free_port()
        config = work / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(PROMETHEUS / "alerts.yml")],
                    "scrape_configs": [
                        {
                            "job_name": "crm-triggers",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                        }
                    ],
                }
            )
        )
        self.log = (work / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = orjson.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/-/ready", timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


async def wait_until(
    prometheus: PrometheusServer, expr: str, expected: float, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = prometheus.value(expr)
        if value == expected:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{expr} = {value}, expected {expected}")


async def test_prometheus_scrapes_the_numbers_a_user_can_count(
    broker: EmbeddedBroker, work: Path
) -> None:
    rules = work / "rules.yaml"
    rules.write_text(RULES)
    deployment = Deployment(broker)
    worker = WorkerProcess(deployment, work, CRM_RULES_FILE=str(rules), CRM_LOG_FORMAT="json")
    prometheus = PrometheusServer(work, worker.web_port)
    try:
        worker.wait_ready()
        prometheus.wait_ready()

        t0 = datetime.now(UTC)
        valid: list[dict[str, Any]] = []
        for i in range(REGISTERED):
            valid.append(event(f"cust-{i}", "registered", f"r-{i}", ts(t0), email=f"p{i}@x.org"))
        for i in range(ORDERING):
            at = ts(t0 + timedelta(seconds=1))
            valid.append(
                event(f"cust-{i}", "order_placed", f"o-{i}", at, order_id=f"ord-{i}", amount=10.0)
            )
        messages = [as_message(e) for e in valid]
        messages.append(messages[0])  # a duplicate delivery
        bad: list[tuple[bytes | None, bytes | None]] = [
            (b"cust-1", b"not json"),
            (b"cust-1", b"[1, 2]"),
            (b"cust-2", orjson.dumps(valid[0])),  # key is not the customer id
        ]
        await produce(broker.bootstrap, deployment.events, [*messages, *bad])

        await wait_until(prometheus, "sum(crm_events_consumed_total)", REGISTERED + ORDERING)
        nudged = REGISTERED - ORDERING
        await wait_until(
            prometheus, 'crm_timers_fired_total{rule="first_order_nudge"}', nudged, timeout=60
        )
        await wait_until(prometheus, "sum(crm_consumer_lag)", 0)

        def v(expr: str) -> float | None:
            return prometheus.value(expr)

        assert v('crm_events_consumed_total{type="registered"}') == REGISTERED
        assert v('crm_events_consumed_total{type="order_placed"}') == ORDERING
        assert v('crm_events_consumed_total{type="visit"}') == 0  # pre-created at zero
        assert v("crm_events_duplicate_total") == 1
        assert v('crm_events_rejected_total{reason="invalid_json"}') == 1
        assert v('crm_events_rejected_total{reason="not_an_object"}') == 1
        assert v('crm_events_rejected_total{reason="key_mismatch"}') == 1
        assert v("sum(crm_events_rejected_total)") == 3
        assert v(f'crm_messages_processed_total{{topic="{deployment.events}"}}') == len(
            messages
        ) + len(bad)

        assert v('crm_triggers_fired_total{rule="welcome"}') == REGISTERED
        assert v('crm_triggers_fired_total{rule="first_order_nudge"}') == nudged
        assert v('crm_timers_scheduled_total{rule="first_order_nudge"}') == REGISTERED
        assert v('crm_timers_cancelled_total{rule="first_order_nudge"}') == ORDERING
        assert v("crm_timer_fire_lateness_seconds_count") == nudged
        lateness_p99 = v(
            "histogram_quantile(0.99, sum by (le) (crm_timer_fire_lateness_seconds_bucket))"
        )
        assert lateness_p99 is not None and lateness_p99 < 5.0

        await wait_until(
            prometheus, 'sum(crm_decisions_total{outcome="sent"})', REGISTERED + nudged
        )
        assert v('crm_actions_published_total{channel="email"}') == REGISTERED + nudged
        assert v('sum(crm_decisions_total{rule="welcome", reason="sent"})') == REGISTERED
        assert v("crm_decision_latency_seconds_count") == REGISTERED + nudged
        decision_p50 = v(
            "histogram_quantile(0.5, sum by (le) (crm_decision_latency_seconds_bucket))"
        )
        assert decision_p50 is not None and decision_p50 < 5.0

        # Timers fired or cancelled: lifecycle timers of the buyers may remain.
        pending = v("crm_timers_pending")
        assert pending is not None and pending == v(
            "sum(crm_timers_scheduled_total) - sum(crm_timers_fired_total)"
            " - sum(crm_timers_cancelled_total)"
        )
        assert v('crm_table_keys{table="customers"}') == REGISTERED
        assert v("crm_worker_ready") == 1
        assert v("crm_broker_reachable") == 1
        assert v("crm_assigned_partitions") == deployment.partitions
        assert v("crm_recovery_active") == 0
        assert (v("crm_recoveries_total") or 0) >= 1
        assert (v("crm_recovery_last_duration_seconds") or -1) >= 0
        lag_series = prometheus.query(f'crm_consumer_lag{{topic="{deployment.events}"}}')
        assert len(lag_series) == deployment.partitions

        build = prometheus.query("crm_build_info")
        assert len(build) == 1
        assert build[0]["metric"]["rules_sha256"] == hashlib.sha256(rules.read_bytes()).hexdigest()
        assert build[0]["metric"]["core"] == ("compiled" if core_is_compiled() else "python")

        # Every metric the dashboard and the alerts query exists in Prometheus.
        known = set(prometheus.api("label/__name__/values"))
        queried = set().union(
            *(ours(metric_names(expr)) for _, expr in [*dashboard_exprs(), *alert_exprs()])
        )
        assert queried <= known, f"queried but never scraped: {sorted(queried - known)}"

        # The alert rules load and evaluate without errors; none fires on a healthy run
        # (CrmNoEvents may be pending: the first scrapes saw no events yet).
        groups = prometheus.api("rules")["groups"]
        rules_loaded = [r for g in groups for r in g["rules"]]
        assert len(rules_loaded) == len(alert_exprs())
        assert all(r["health"] in ("ok", "unknown") for r in rules_loaded), rules_loaded
        firing = [a for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"]
        assert firing == []

        # No personal data in any label value.
        series = prometheus.api("series", **{"match[]": '{__name__=~"crm_.*"}'})
        label_values = {value for s in series for value in s.values()}
        assert not [v for v in label_values if "cust-" in v or "@" in v]
    finally:
        prometheus.stop()
        worker.stop()

    # JSON logs: one object per line, no customer ids or emails.
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]
    assert all({"ts", "level", "logger", "message"} <= record.keys() for record in records)
    rejected = [r for r in records if r["message"].startswith("rejected")]
    assert len(rejected) == 3
    assert all({"topic", "partition", "offset", "code"} <= r.keys() for r in rejected)
    text = worker.log_path.read_text()
    assert "cust-" not in text and "@x.org" not in text
