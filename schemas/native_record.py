"""The base of the native records (`TimerRecord`, `ContactEntry`): equality, `repr`,
pickling and building from the contract model, by the field names a record lists.

None of it is on the per-event path (that reads and sets the fields directly), so it
goes by name instead of being written out per class. A compiled class can be neither
pickled nor copied (`copy.deepcopy` of a state) unless it says how: `__reduce__`.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="NativeRecord")


class NativeRecord:
    FIELDS: ClassVar[tuple[str, ...]] = ()
    """The contract's field names, in its order."""

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def of(cls: type[R], model: Any) -> R:
        """The record of a contract model (or of anything with the same attributes)."""
        return _rebuild(cls, {name: getattr(model, name) for name in cls.FIELDS})

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, NativeRecord)
        return self.values() == other.values()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (type(self), self.values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.values().items())
        return f"{type(self).__name__}({fields})"


def _rebuild(cls: type[R], values: dict[str, Any]) -> R:
    built: R = cls(**values)
    return built
