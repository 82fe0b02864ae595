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
    what it compiled), and compiled modules it did not record (left by another commit or
    build): Python would import the old .so and test the old code."""
    built = ROOT / "build" / "compiled-sources.json"
    compiled = [
        str(so.relative_to(ROOT).with_name(so.name.split(".", 1)[0] + ".py"))
        for so in (*ROOT.glob("streams/**/*.so"), *ROOT.glob("schemas/*.so"))
    ]
    if not compiled:
        return []  # pure Python: the sources are what runs
    recorded: dict[str, str] = json.loads(built.read_text()) if built.exists() else {}
    return [
        path
        for path in sorted(set(compiled) | set(recorded))
        if path not in recorded
        or hashlib.sha256((ROOT / path).read_bytes()).hexdigest() != recorded[path]
    ]


def pytest_configure(config: pytest.Config) -> None:
    stale = _stale_compiled_modules()
    if stale:
        pytest.exit(
            f"compiled modules do not match their sources ({', '.join(stale)}): run "
            "`make clean-compiled install` to recompile them, or `make clean-compiled` to "
            "run the sources",
            returncode=4,
        )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running
