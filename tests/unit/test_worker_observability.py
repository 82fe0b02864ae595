"""JSON logs, the consumer-lag collector and the broker probe's verdict."""

from __future__ import annotations

import io
import logging
import logging.config

import orjson
import pytest
from faust.types import TP

from streams.settings import Settings
from streams.shell.broker_probe import BrokerProbe
from streams.shell.consumer_lag import ConsumerLagCollector
from streams.shell.log_format import logging_config


def test_json_logs_are_one_object_per_line_with_context() -> None:
    stream = io.StringIO()
    config = logging_config("json", "info")
    config["handlers"]["crm"]["stream"] = stream
    logging.config.dictConfig(config)
    log = logging.getLogger("crm.test")
    log.info("rejected %s", "x", extra={"topic": "crm.events", "partition": 3, "offset": 7})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"rule_id": "welcome", "unknown_extra": "dropped"})
    log.debug("not at info level")
    logging.config.dictConfig(logging_config("text", "info"))

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["message"] == "rejected x"
    assert first["level"] == "info"
    assert (first["topic"], first["partition"], first["offset"]) == ("crm.events", 3, 7)
    assert first["ts"].endswith("+00:00")
    assert second["rule_id"] == "welcome"
    assert "unknown_extra" not in second
    assert "ValueError: boom" in second["exception"]


class FakeConsumer:
    """The few read-only attributes of Faust's consumer the collector uses."""

    def __init__(self) -> None:
        self._read_offset: dict[TP, int | None] = {}
        self._committed_offset: dict[TP, int | None] = {}
        self.highwaters: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int:
        return self.highwaters[tp]


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self._consumer = consumer


def lag_samples(collector: ConsumerLagCollector) -> dict[tuple[str, str], float]:
    (family,) = collector.collect()
    return {(s.labels["topic"], s.labels["partition"]): s.value for s in family.samples}


def test_lag_is_highwater_minus_next_offset_to_read_on_input_topics_only() -> None:
    consumer = FakeConsumer()
    read, fresh, changelog = TP("crm.events", 0), TP("crm.events", 1), TP("app-changelog", 0)
    consumer.highwaters = {read: 100, fresh: 50, changelog: 1_000}
    consumer._read_offset[read] = 89  # 90 messages read: offsets 0..89
    consumer._committed_offset[fresh] = 20  # nothing read yet since assignment
    collector = ConsumerLagCollector()
    collector.bind(FakeApp(consumer), {"crm.events"})
    assert lag_samples(collector) == {("crm.events", "0"): 10, ("crm.events", "1"): 30}


def test_lag_collector_reports_nothing_before_the_worker_starts() -> None:
    assert lag_samples(ConsumerLagCollector()) == {}


@pytest.mark.asyncio
async def test_broker_probe_is_unreachable_when_nothing_listens() -> None:
    probe = BrokerProbe(Settings(broker="kafka://127.0.0.1:9"), interval=1.0, timeout=1.0)
    assert not probe.reachable()
    assert await probe.check() is False
    assert probe.last_error is not None
    await probe.close()


def test_broker_probe_verdict_expires() -> None:
    probe = BrokerProbe(Settings(), interval=5.0, timeout=5.0)
    probe.last_ok = 1_000.0
    assert probe.reachable(now=1_014.0)
    assert not probe.reachable(now=1_016.0)
