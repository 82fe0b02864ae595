"""Faust codec for `CustomerState` values: JSON on the changelog, objects in memory.

With a codec (rather than raw bytes) the memory store holds live objects, so the
hot path does not decode the state on every event, and the changelog stays
readable JSON for any Kafka client.
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

from schemas.state import CustomerState

CODEC_NAME = "crm_state"


class CustomerStateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, CustomerState):
            return obj.model_dump_json(exclude_defaults=True).encode()
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return CustomerState.model_validate_json(s)


def register() -> None:
    if CODEC_NAME not in codecs.codecs:
        codecs.register(CODEC_NAME, CustomerStateCodec())


class CustomerStateValue:
    """Table `value_type` that tells Faust which codec to use.

    Faust reads a table's value codec from `value_type._options.serializer` and
    finishes decoding with `value_type.from_data`; the codec already returns a
    `CustomerState`, so `from_data` passes it through.
    """

    class _options:
        serializer = CODEC_NAME

    @classmethod
    def from_data(cls, data: Any, preferred_type: Any = None) -> Any:
        return data
