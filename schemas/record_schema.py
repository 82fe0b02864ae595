"""How pydantic converts between a native record (mypyc class) and its contract model.

A record is what the compiled core holds in memory: fields read straight off the
object, built without a validation. Everywhere else the contract model stands:
- JSON (the changelog) and the JSON Schema go through the contract, then `of` makes
  the record, so what is accepted and what errors say are the contract's;
- Python input may be a record as it is, or anything the contract takes (a dict, a
  model), converted the same way;
- a record is written as the contract's fields (`fields`, in the contract's order;
  pydantic writes the values, times as `...Z`, enums as their values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler, ValidatorFunctionWrapHandler
from pydantic_core import core_schema
from pydantic_core.core_schema import SerializationInfo


def record_schema(
    record: type,
    contract: type[BaseModel],
    of: Callable[[Any], Any],
    fields: Callable[[Any, SerializationInfo], dict[str, Any]],
    handler: GetCoreSchemaHandler,
) -> core_schema.CoreSchema:
    validated = handler.generate_schema(contract)

    def from_python(value: Any, validate: ValidatorFunctionWrapHandler) -> Any:
        # Not a union of "a record" and "the contract": a union's errors name its
        # branches in their paths (`timers.1.function-after[...].due_at`).
        return value if isinstance(value, record) else of(validate(value))

    return core_schema.json_or_python_schema(
        json_schema=core_schema.no_info_after_validator_function(of, validated),
        python_schema=core_schema.no_info_wrap_validator_function(from_python, validated),
        serialization=core_schema.plain_serializer_function_ser_schema(
            fields, info_arg=True, return_schema=core_schema.dict_schema()
        ),
    )
