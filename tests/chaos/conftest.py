"""Collects each chaos scenario's result and prints the summary table at the end.

`CHAOS_RESULTS=path.md` (set by `make chaos`) also writes the table as Markdown.
Each scenario runs on an embedded broker of its own (see `broker` below).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.shell.embedded_broker import EmbeddedBroker
from tests.chaos.harness import FULL, Result

RESULTS: list[Result] = []


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker per scenario, not per session: the embedded broker keeps every record in
    memory, so a full run's scenarios on one broker would add up (the soak alone grows
    it by ~14 GB, tests/chaos/RESULTS.md), and each scenario starts from a clean one."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


@pytest.fixture
def results() -> Iterator[list[Result]]:
    yield RESULTS


def table(results: list[Result]) -> str:
    rows = [r.row() for r in results]
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    notes = [f"- {r.scenario}: {r.notes}" for r in results if r.notes]
    dlq = [
        f"- {r.scenario}: " + ", ".join(f"{code} {n}" for code, n in sorted(r.dead_letters.items()))
        for r in results
        if r.dead_letters
    ]
    text = "\n".join(lines)
    if dlq:
        text += "\n\nDead letters by reason code:\n" + "\n".join(dlq)
    if notes:
        text += "\n\nNotes:\n" + "\n".join(notes)
    return text


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    text = table(RESULTS)
    terminalreporter.write_sep("=", f"chaos summary ({'full' if FULL else 'short'} scale)")
    terminalreporter.write_line(text)
    target = os.environ.get("CHAOS_RESULTS")
    if target:
        header = (
            f"# Chaos results\n\nLatest `make chaos` run: "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, embedded broker "
            "(tansu, memory storage).\n\n"
        )
        Path(target).write_text(header + text + "\n")
