"""What a bench run found: figures, the runs behind each median, and stage errors.

A stage that raises records its error under its figure names and the run goes
on: one broken stage must not cost the other figures of a 10-minute run.
"""

from __future__ import annotations

import statistics
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Results:
    def __init__(self, workdir: Path) -> None:
        self.figures: dict[str, Any] = {}
        self.runs: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        """Figures of stages left out on purpose (BENCH_STAGES): not errors."""
        self.errors_log = workdir / "errors.log"
        self.started = time.monotonic()
        self.stage_seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def progress(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f}s] {text}", file=sys.stderr, flush=True)

    @contextmanager
    def guard(self, *names: str) -> Iterator[None]:
        """Record an exception as the error of `names` (the figures this step makes)."""
        try:
            yield
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            for name in names:
                self.errors.setdefault(name, message)
            with self.errors_log.open("a") as log:
                log.write(f"--- {', '.join(names)}\n{traceback.format_exc()}\n")
            self.progress(f"FAILED {', '.join(names)}: {message}")

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Wall time of a stage, so a full run shows where its minutes go."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.stage_seconds[stage] = round(time.monotonic() - started, 1)

    def add_run(self, name: str, value: float) -> None:
        self.runs.setdefault(name, []).append(value)

    def settle_medians(self, names: list[str], expected_runs: int) -> None:
        """Median of the runs that succeeded; a figure with no run keeps its error."""
        for name in names:
            values = self.runs.get(name, [])
            if values:
                self.figures[name] = statistics.median(values)
                if len(values) < expected_runs:
                    # Partly failed: the figure stands on fewer runs; say so and why.
                    why = self.errors.pop(name, "")
                    self.notes[name] = f"{len(values)}/{expected_runs} runs ok; {why}"

    def skip(self, names: list[str], reason: str) -> None:
        for name in names:
            self.skipped[name] = reason

    def mark_not_run(self, names: list[str], reason: str) -> None:
        for name in names:
            if name not in self.figures and name not in self.errors:
                self.errors[name] = f"not run: {reason}"

    def ratio(self, name: str, numerator: str, denominator: str) -> None:
        top, bottom = self.figures.get(numerator), self.figures.get(denominator)
        if top is not None and bottom:
            self.figures[name] = top / bottom
        else:
            missing = numerator if top is None else denominator
            self.errors.setdefault(name, f"not computed: {missing} missing")
