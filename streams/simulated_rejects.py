"""A history line the simulator rejected, as `simulate --rejects` writes it.

The worker sends a bad message to the dead-letter topic with its reason; the
simulator writes the same reason for each bad line of a history, so an analyst can
find and fix the lines before trusting the run's figures. The reason fields are the
dead-letter record's (`error_code`, `error_message`, `errors`: `schemas/dead_letter.py`);
the line number (1-based) takes the place of the Kafka position, and the line itself
is given as text only (`value_text`, cut at 16 KB, `value_truncated` then true).
"""

from __future__ import annotations

import codecs

import orjson

from streams.core.dead_letters import TEXT_COPY_LIMIT
from streams.core.decoding import Rejection


def reject_record(line_number: int, rejection: Rejection, line: bytes) -> bytes:
    """One JSON line (without its newline) for the rejected history line `line_number`."""
    kept = line[:TEXT_COPY_LIMIT]
    # Undecodable bytes show as U+FFFD: the text is for people, the line number finds the
    # original. A character cut in two by the limit is left out rather than shown so.
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(
        kept, final=len(kept) == len(line)
    )
    return orjson.dumps(
        {
            "line": line_number,
            "error_code": rejection.code.value,
            "error_message": rejection.message,
            "errors": [error.model_dump() for error in rejection.errors],
            "value_text": text,
            "value_size_bytes": len(line),
            "value_truncated": len(kept) < len(line),
        }
    )


def line_of(record: bytes) -> int:
    """The line number of a record written by `reject_record` (to merge jobs' files)."""
    number: int = orjson.loads(record)["line"]
    return number
