"""Shared fixtures: one embedded broker (a real Kafka-compatible tansu process) per session."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.shell.embedded_broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent


def _stale_compiled_modules() -> list[str]:
    """Sources edited since `make install` compiled them in place (setup.py records
    what it compiled): Python would import the old .so and test the old code."""
    built = ROOT / "build" / "compiled-sources.json"
    compiled = list(ROOT.glob("streams/**/*.so")) + list(ROOT.glob("schemas/*.so"))
    if not compiled:
        return []  # pure Python: the sources are what runs
    if not built.exists():
        return ["(no record of what was compiled)"]
    recorded: dict[str, str] = json.loads(built.read_text())
    return [
        path
        for path, digest in recorded.items()
        if hashlib.sha256((ROOT / path).read_bytes()).hexdigest() != digest
    ]


def pytest_configure(config: pytest.Config) -> None:
    stale = _stale_compiled_modules()
    if stale:
        pytest.exit(
            f"the compiled core is older than its source ({', '.join(stale)}): run "
            "`make install` to recompile it, or `make clean-compiled` to run the source",
            returncode=4,
        )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running
