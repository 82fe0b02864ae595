"""Shared fixtures: one embedded broker (a real Kafka-compatible tansu process) per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.shell.embedded_broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running
