"""A history line the simulator rejected, as `simulate --rejects` writes it.

The worker sends a bad message to the dead-letter topic with its reason; the
simulator writes the same reason for each bad line of a history, so an analyst can
find and fix the lines before trusting the run's figures. The fields are the
dead-letter record's (`schemas/dead_letter.py`), with the line number (1-based) in
place of the Kafka position, and the line itself as text.
"""

from __future__ import annotations

import orjson

from streams.core.dead_letters import TEXT_COPY_LIMIT
from streams.core.decoding import Rejection


def reject_record(line_number: int, rejection: Rejection, line: bytes) -> bytes:
    """One JSON line (without its newline) for the rejected history line `line_number`."""
    kept = line[:TEXT_COPY_LIMIT]
    return orjson.dumps(
        {
            "line": line_number,
            "error_code": rejection.code.value,
            "error_message": rejection.message,
            "errors": [error.model_dump() for error in rejection.errors],
            # Undecodable bytes show as U+FFFD: the text is for people, the line number
            # finds the original.
            "value_text": kept.decode("utf-8", errors="replace"),
            "value_size_bytes": len(line),
            "value_truncated": len(kept) < len(line),
        }
    )


def line_of(record: bytes) -> int:
    """The line number of a record written by `reject_record` (to merge jobs' files)."""
    number: int = orjson.loads(record)["line"]
    return number
