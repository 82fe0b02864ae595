"""The worker's labelled counters count exactly as prometheus_client's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from streams.shell.metrics import LabelledCounter


def test_cached_children_count_into_the_same_series() -> None:
    registry = CollectorRegistry()
    counter = LabelledCounter("t_total", "test", ["rule", "channel"], registry=registry)
    counter.labels("welcome", "email").inc()  # new values: the checked path
    counter.labels("welcome", "email").inc(2)  # the cached child
    counter.labels(rule="welcome", channel="email").inc()
    counter.labels("winback", 7).inc()  # not a string: converted as prometheus does
    counter.labels("winback", "7").inc()
    text = generate_latest(registry).decode()
    assert 't_total{channel="email",rule="welcome"} 4.0' in text
    assert 't_total{channel="7",rule="winback"} 2.0' in text
