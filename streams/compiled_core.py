"""Whether this process runs the core as compiled by mypyc (setup.py) or as Python source.

Both behave the same; compiled, the simulator runs 1.26x faster and a worker ~1.07x.
Said at start-up and in `crm_build_info{core=...}`, so a slow worker is not a mystery.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES


def core_is_compiled() -> bool:
    from streams.core import engine

    return (engine.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))


def core_kind() -> str:
    return "compiled (mypyc)" if core_is_compiled() else "pure Python"
