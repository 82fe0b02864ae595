"""Consumer lag per topic and partition, computed when Prometheus scrapes.

Lag is the number of messages on the broker that the worker has not yet
handed to its agents: highwater - (last offset read + 1), falling back on the
committed offset before the first message of a newly assigned partition.
Labels are topic names from the configuration and partition numbers: bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector


class ConsumerLagCollector(Collector):
    def __init__(self) -> None:
        self.app: Any = None
        self.topics: frozenset[str] = frozenset()
        """Agent input topics; changelogs are read by recovery and not tracked here."""

    def bind(self, app: Any, topics: set[str]) -> None:
        self.app = app
        self.topics = frozenset(topics)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "crm_consumer_lag",
            "Messages on the broker not yet read by this worker",
            labels=["topic", "partition"],
        )
        consumer = getattr(self.app, "_consumer", None) if self.app is not None else None
        if consumer is not None:
            # Faust keeps these offsets in private maps; getattr keeps a Faust
            # upgrade from breaking the scrape (the series would just be absent).
            read = getattr(consumer, "_read_offset", {})
            committed = getattr(consumer, "_committed_offset", {})
            try:
                assigned = sorted(consumer.assignment())
            except Exception:  # not started or rebalancing: report nothing
                assigned = []
            for tp in assigned:
                if tp.topic not in self.topics:
                    continue
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                last = read.get(tp)
                position = last + 1 if last is not None else committed.get(tp)
                if position is None:
                    continue
                lag.add_metric([tp.topic, str(tp.partition)], max(0, highwater - position))
        yield lag


COLLECTOR = ConsumerLagCollector()
REGISTRY.register(COLLECTOR)
