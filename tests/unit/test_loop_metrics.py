"""The worker's counters and histograms expose exactly what prometheus_client's own do."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values

from streams.shell.loop_metrics import LoopCounter, LoopHistogram, UnlockedValue
from streams.shell.metrics import LATENCY_BUCKETS


def exposed(registry: CollectorRegistry) -> list[str]:
    """The exposition without `_created` lines (a timestamp per registry)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_labelled_counts_match_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    for registry, cls in ((ours, LoopCounter), (theirs, Counter)):
        counter = cls("t_total", "test", ["rule", "channel"], registry=registry)
        counter.labels("welcome", "email").inc()  # new values: the checked path
        counter.labels("welcome", "email").inc(2)  # the cached child
        counter.labels(rule="welcome", channel="email").inc()
        counter.labels("winback", 7).inc()  # not a string: converted as prometheus does
        counter.labels("winback", "7").inc(0.5)
    assert exposed(ours) == exposed(theirs)
    assert 't_total{channel="email",rule="welcome"} 4.0' in exposed(ours)
    assert 't_total{channel="7",rule="winback"} 1.5' in exposed(ours)


def test_children_count_without_a_lock() -> None:
    counter = LoopCounter("u_total", "test", ["rule"], registry=CollectorRegistry())
    assert isinstance(counter.labels("welcome")._value, UnlockedValue)


def test_invalid_calls_fail_as_upstream() -> None:
    counter = LoopCounter("v_total", "test", ["rule"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("welcome").inc(-1)
    with pytest.raises(ValueError, match="missing label values"):
        counter.inc()  # a labelled parent is not a series
    histogram = LoopHistogram("w_seconds", "test", ["rule"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values"):
        histogram.observe(1.0)


def test_histogram_buckets_match_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    amounts = [0.0, 0.001, 0.0011, 0.3, 1, 2.5, 59.9, 3600, 3600.5, 1e9, -2.0, math.nan]
    # Every bound itself, and just either side of it.
    amounts += [b * f for b in LATENCY_BUCKETS for f in (0.999, 1.0, 1.001)]
    for registry, cls in ((ours, LoopHistogram), (theirs, Histogram)):
        histogram = cls("h_seconds", "test", buckets=LATENCY_BUCKETS, registry=registry)
        for amount in amounts:
            histogram.observe(amount)
        histogram.observe(0.2, {"trace_id": "abc"})  # with an exemplar: upstream's path
    assert exposed(ours) == exposed(theirs)


def test_labelled_histograms_match_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    for registry, cls in ((ours, LoopHistogram), (theirs, Histogram)):
        histogram = cls("l_seconds", "test", ["rule"], buckets=LATENCY_BUCKETS, registry=registry)
        for amount in (0.003, 0.5, 7.0):
            histogram.labels("welcome").observe(amount)
        histogram.labels("winback").observe(4000.0)
    assert exposed(ours) == exposed(theirs)
    assert 'l_seconds_count{rule="welcome"} 3.0' in exposed(ours)


def test_multiprocess_mode_keeps_upstream_values(monkeypatch: pytest.MonkeyPatch) -> None:
    class SharedFileValue(values.MutexValue):
        """Stands for the multiprocess value class (backed by files)."""

    monkeypatch.setattr(values, "ValueClass", SharedFileValue)
    counter = LoopCounter("m_total", "test", registry=CollectorRegistry())
    histogram = LoopHistogram("m_seconds", "test", registry=CollectorRegistry())
    counter.inc(3)
    histogram.observe(0.02)
    assert type(counter._value) is SharedFileValue
    assert counter._value.get() == 3
    assert type(histogram._sum) is SharedFileValue
    assert histogram._sum.get() == 0.02
