"""Compiles the functional core to C with mypyc; everything else is in pyproject.toml.

The core (rules, timers, contact policy) is plain Python with strict type hints. mypyc
turns exactly that source into C extensions: same code, same behaviour; the simulator
runs 1.26x faster, a worker ~1.07x (bench/RESULTS.md). Nothing is hand-written in C and
nothing needs a second implementation; without a compiler, `CRM_COMPILE=0` installs the
same modules as pure Python (slower, otherwise identical: `make test` runs the unit
suite on both).

The Faust shell is not compiled: it spends its time in Faust and aiokafka.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "streams/core/action_ids.py",
    "streams/core/attribution.py",
    "streams/core/contact_policy.py",
    "streams/core/customer_state.py",
    "streams/core/dead_letters.py",
    "streams/core/decoding.py",
    "streams/core/engine.py",
    "streams/core/expressions.py",
    "streams/core/intervals.py",
    "streams/core/lifecycle.py",
    "streams/core/orchestrator.py",
    "streams/core/quiet_hours.py",
    "streams/core/recovered_state.py",
    "streams/core/replay_clock.py",
    "streams/core/rfm.py",
    "streams/core/rfm_population.py",
    "streams/core/rule_scope.py",
    "streams/core/timer_changes.py",
    "streams/simulator.py",
    "schemas/builders.py",
    "schemas/candidate_record.py",
    "schemas/contact_entry.py",
    "schemas/journey_step.py",
    "schemas/native_record.py",
    "schemas/profile_record.py",
    "schemas/timer_record.py",
    "schemas/timestamps.py",
]
"""Every module on the per-event path. Not `rules_loader` (runs once at start-up)."""

SOURCES_BUILT = Path(__file__).parent / "build" / "compiled-sources.json"
"""What an in-place build compiled (path -> sha256): tests/conftest.py refuses to run
a compiled module whose source has changed since, as Python would import the .so."""


_METADATA_ONLY = {"egg_info", "dist_info"}
"""What pip asks of setup.py before it builds (requirements, metadata): no extension is
built then, and mypyc's type check and C generation cost ~7 s a call."""
_BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}

_compiled_from: dict[str, str] = {}
"""The digests of the sources as mypyc read them (see SOURCES_BUILT)."""


def _digests() -> dict[str, str]:
    root = Path(__file__).parent
    return {path: hashlib.sha256((root / path).read_bytes()).hexdigest() for path in COMPILED}


def _extensions() -> list[object]:
    if os.environ.get("CRM_COMPILE", "1") == "0":
        return []
    args = set(sys.argv[1:])
    if args & _METADATA_ONLY and not args & _BUILDS:
        return []
    _compiled_from.update(_digests())  # before mypyc reads them: an edit during the build shows
    from mypyc.build import mypycify

    return list(mypycify(COMPILED, opt_level="3"))


class _BuildCore(build_ext):
    """Says what to do when there is no C compiler or no Python headers."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            raise SystemExit(
                f"compiling the core failed ({exc}). It needs a C compiler (gcc) and the "
                "Python headers (python3-dev); without them install with CRM_COMPILE=0 (pure "
                "Python, same behaviour, the simulator ~1.26x slower, a worker ~7%)."
            ) from exc
        if self.inplace and self.extensions:
            SOURCES_BUILT.parent.mkdir(exist_ok=True)
            SOURCES_BUILT.write_text(json.dumps(_compiled_from, indent=1) + "\n")


setup(ext_modules=_extensions(), cmdclass={"build_ext": _BuildCore})
