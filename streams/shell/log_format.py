"""Worker logging: one JSON object per line (`CRM_LOG_FORMAT=json`) or plain text.

JSON lines carry the record's time, level, logger and message, and the
context our own log calls pass as `extra` (topic, partition, offset, rule id,
reason code...). Log calls never pass customer ids or event contents: a dead
letter's payload goes to the dead-letter topic, not to the log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

CONTEXT_FIELDS = (
    "topic",
    "partition",
    "offset",
    "rule_id",
    "code",
    "channel",
    "table",
    "partitions",
    "customers",
    "duration_seconds",
)
"""`extra` keys copied into JSON lines; anything else passed as extra is ignored."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def position(message: Any) -> dict[str, Any]:
    """Log context of a Kafka message: where it is, never what it says."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


def log_processing_failure(log: logging.Logger, message: Any) -> None:
    """A bug met while handling `message`: the traceback, and where the message is."""
    log.exception(
        "processing failed at %s[%s]@%s",
        message.topic,
        message.partition,
        message.offset,
        extra=position(message),
    )


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the worker (also handed to Faust's Worker)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"crm": formatter},
        "handlers": {
            "crm": {
                "class": "logging.StreamHandler",
                "formatter": "crm",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["crm"]},
    }
