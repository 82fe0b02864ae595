"""Building contract models on the per-event path without `BaseModel.__init__`.

`Model(**fields)` runs pydantic's interpreted `__init__`, which hands the fields to the
model's validator to fill the new instance in place. Calling the validator on the
fields directly builds the same instance (same validation, same `model_fields_set`,
same errors) ~0.4 µs sooner: 1.28 against 1.01 µs for a `PendingTimer`, measured when
a fifth of an order-heavy history's time went to building models. The parts of a state
built most (timers, sends) have since become native records (`schemas.native_record`),
which skip validation altogether; the per-decision models still come from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from pydantic import BaseModel

P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)


def builder(model: Callable[P, M]) -> Callable[P, M]:
    """A function with `model`'s keyword signature (checked by mypy through pydantic's
    plugin) that validates its arguments into a new `model`."""
    cls = cast("type[BaseModel]", model)

    def build(*args: P.args, **fields: P.kwargs) -> M:
        if args:
            raise TypeError(f"{cls.__name__} takes keyword arguments only")
        # Looked up per call: a model rebuilt later (`model_rebuild`) gets a new validator.
        built: M = cls.__pydantic_validator__.validate_python(fields)
        return built

    build.__name__ = build.__qualname__ = f"build_{cls.__name__}"
    build.__doc__ = f"`{cls.__name__}(**fields)`, without `BaseModel.__init__`."
    return build
