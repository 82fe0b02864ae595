"""Build the dead-letter record for a rejected message (pure)."""

from __future__ import annotations

import base64
from datetime import datetime

from schemas.dead_letter import DeadLetter, SourcePosition
from streams.core.decoding import Rejection

TEXT_COPY_LIMIT = 16 * 1024
"""Above this size the readable text copy is left out; the base64 copy is enough."""


def build_dead_letter(
    rejection: Rejection,
    key: bytes | None,
    value: bytes | None,
    source: SourcePosition,
    now: datetime,
    max_value_bytes: int,
) -> DeadLetter:
    size = len(value) if value is not None else 0
    kept = value[:max_value_bytes] if value is not None else None
    text: str | None = None
    if kept is not None and len(kept) <= TEXT_COPY_LIMIT:
        try:
            text = kept.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return DeadLetter(
        error_code=rejection.code,
        error_message=rejection.message,
        errors=list(rejection.errors),
        source=source,
        rejected_at=now,
        key_base64=base64.b64encode(key).decode("ascii") if key is not None else None,
        value_base64=base64.b64encode(kept).decode("ascii") if kept is not None else None,
        value_text=text,
        value_size_bytes=size,
        value_truncated=kept is not None and len(kept) < size,
    )
