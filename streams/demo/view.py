"""A live terminal view of decisions and dead letters, and the demo's summary.

Reads the candidates topic (schemas/candidate.py), any decision topics (the
same shape plus an `outcome` field) and the dead-letter topic
(schemas/dead_letter.py) with a plain aiokafka consumer, and prints one line per
message. On a terminal, running totals stay at the bottom; when stdout is not a
terminal (CI, a pipe) it prints plain lines and a totals line now and then.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.settings import Settings
from streams.shell.kafka_connection import client_kwargs

CANDIDATE = "candidate"
PLAIN_TOTALS_EVERY_SECONDS = 10.0
OUTCOME_WIDTH = 19  # the longest dead-letter code, e.g. missing_customer_id

OUTCOME_STYLES: dict[str, str] = {
    CANDIDATE: "cyan",
    "sent": "green",
    "send": "green",
    "scheduled": "blue",
    "deferred": "blue",
    "delayed": "blue",
    "suppressed": "yellow",
    "skipped": "yellow",
    "dropped": "yellow",
    "expired": "magenta",
    "failed": "red",
}


@dataclass
class Tally:
    """Running totals of what the view has seen."""

    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    last_record_at: float = 0.0

    def rules_seen(self) -> set[str]:
        return {rule for rule, _ in self.decisions}

    @property
    def total_decisions(self) -> int:
        return sum(self.decisions.values())

    @property
    def total_dead_letters(self) -> int:
        return sum(self.dead_letters.values())


def _moment(value: object, fallback_ms: int | None) -> datetime | None:
    """The message's own time (RFC 3339 text), else the Kafka record's, local time."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone()
        except ValueError:
            pass
    if fallback_ms is not None:
        return datetime.fromtimestamp(fallback_ms / 1000).astimezone()
    return None


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment is not None else "--:--:--"


@dataclass(frozen=True, slots=True)
class Received:
    """One consumed record, parsed: `message` is None when it is not a JSON object."""

    topic: str
    message: dict[str, Any] | None
    moment: datetime | None

    @property
    def sort_key(self) -> float:
        return self.moment.timestamp() if self.moment is not None else 0.0


def _text(value: object, default: str = "-") -> str:
    if value is None or value == "":
        return default
    return str(value)


def _reason(value: object) -> str:
    if isinstance(value, dict):
        text, code = value.get("text"), value.get("code")
        if text and code:
            return f"{text} ({code})"
        return _text(text or code)
    return _text(value)


def _channel(message: dict[str, Any]) -> str:
    channels = message.get("channels")
    if isinstance(channels, list) and channels:
        return _text(channels[0])
    return _text(message.get("channel"))


def _key_text(key_base64: object) -> str:
    if not isinstance(key_base64, str):
        return "-"
    try:
        return base64.b64decode(key_base64, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return "?"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class DecisionView:
    """Consumes decisions and dead letters; prints lines; keeps a `Tally`."""

    def __init__(
        self,
        settings: Settings,
        console: Console | None = None,
        decision_topics: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.console = console or make_console()
        self.decision_topics = list(decision_topics or [settings.decisions_topic])
        self.tally = Tally()
        self.started = asyncio.Event()

    # -- one line per message ------------------------------------------------

    def decision_line(self, message: dict[str, Any], moment: datetime | None) -> Text:
        outcome = _text(message.get("outcome"), CANDIDATE)
        rule = _text(message.get("rule_id"), "?")
        self.tally.decisions[(rule, outcome)] += 1
        when = _clock(moment)
        line = Text()
        line.append(f"{when}  ", style="dim")
        line.append(f"{_shorten(_text(message.get('customer_id')), 12):<12} ", style="bold")
        line.append(f"{_shorten(rule, 16):<16} ")
        line.append(f"{_shorten(_channel(message), 8):<8} ")
        line.append(
            f"{_shorten(outcome, OUTCOME_WIDTH):<{OUTCOME_WIDTH}} ",
            style=OUTCOME_STYLES.get(outcome, "white"),
        )
        line.append(_reason(message.get("reason")), style="dim")
        return line

    def dead_letter_line(self, message: dict[str, Any], moment: datetime | None) -> Text:
        code = _text(message.get("error_code"), "unknown")
        self.tally.dead_letters[code] += 1
        when = _clock(moment)
        detail = _text(message.get("error_message"), "")
        errors = message.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            detail = f"{errors[0].get('field', '?')}: {errors[0].get('problem', '')}"
        line = Text(style="red")
        line.append(f"{when}  ", style="dim red")
        line.append(f"{_shorten(_key_text(message.get('key_base64')), 12):<12} ", style="bold red")
        line.append(f"{'DLQ':<16} {'-':<8} ")
        line.append(f"{_shorten(code, OUTCOME_WIDTH):<{OUTCOME_WIDTH}} ", style="bold red")
        line.append(_shorten(detail, 90))
        return line

    def receive(self, topic: str, value: bytes | None, timestamp_ms: int | None) -> Received:
        try:
            message = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            return Received(topic, None, _moment(None, timestamp_ms))
        if topic == self.settings.dlq_topic:
            own_time = message.get("rejected_at")
        else:
            own_time = message.get("decided_at") or message.get("triggered_at")
        return Received(topic, message, _moment(own_time, timestamp_ms))

    def line_for(self, received: Received) -> Text:
        if received.message is None:
            self.tally.unreadable += 1
            return Text(
                f"{_clock(received.moment)}  unreadable message on {received.topic}", "magenta"
            )
        if received.topic == self.settings.dlq_topic:
            return self.dead_letter_line(received.message, received.moment)
        return self.decision_line(received.message, received.moment)

    # -- running totals ------------------------------------------------------

    def totals_text(self) -> Text:
        parts = [
            f"{rule}/{outcome} {n}" for (rule, outcome), n in sorted(self.tally.decisions.items())
        ]
        parts += [f"dlq/{code} {n}" for code, n in sorted(self.tally.dead_letters.items())]
        return Text("totals: " + (", ".join(parts) if parts else "nothing yet"), style="bold")

    def header(self) -> Text:
        return Text(
            f"{'time':<10}{'customer':<13}{'rule':<17}{'channel':<9}"
            f"{'outcome':<{OUTCOME_WIDTH + 1}}reason",
            style="bold underline",
        )

    # -- the consumer loop ---------------------------------------------------

    async def run(self, stop: asyncio.Event) -> Tally:
        """Print messages until `stop` is set; return the totals."""
        topics = [*self.decision_topics, self.settings.dlq_topic]
        consumer: Any = AIOKafkaConsumer(
            *topics,
            **client_kwargs(self.settings),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        loop = asyncio.get_running_loop()
        self.tally.last_record_at = loop.time()
        live: Live | None = None
        try:
            self.console.print(self.header())
            if self.console.is_terminal:
                live = Live(
                    self.totals_text(),
                    console=self.console,
                    refresh_per_second=4,
                    transient=True,
                )
                live.start()
            self.started.set()
            next_totals = loop.time() + PLAIN_TOTALS_EVERY_SECONDS
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                records = [
                    self.receive(record.topic, record.value, record.timestamp)
                    for part in batch.values()
                    for record in part
                ]
                records.sort(key=lambda received: received.sort_key)
                for received in records:
                    self.console.print(self.line_for(received), soft_wrap=True)
                if records:
                    self.tally.last_record_at = loop.time()
                if live is not None:
                    live.update(self.totals_text())
                elif loop.time() >= next_totals:
                    self.console.print(self.totals_text(), soft_wrap=True)
                    next_totals = loop.time() + PLAIN_TOTALS_EVERY_SECONDS
        finally:
            if live is not None:
                live.stop()
            await consumer.stop()
        return self.tally

    # -- the end -------------------------------------------------------------

    def summary(self, produced: int | None = None, malformed: int | None = None) -> RenderableType:
        decisions = Table(title="Decisions by rule and outcome", title_justify="left")
        decisions.add_column("rule")
        decisions.add_column("outcome")
        decisions.add_column("count", justify="right")
        for (rule, outcome), count in sorted(self.tally.decisions.items()):
            decisions.add_row(rule, outcome, str(count))
        if not self.tally.decisions:
            decisions.add_row("-", "-", "0")
        decisions.add_section()
        decisions.add_row("total", "", str(self.tally.total_decisions), style="bold")

        dead = Table(title="Dead letters by reason", title_justify="left")
        dead.add_column("error_code")
        dead.add_column("count", justify="right")
        for code, count in self.tally.dead_letters.most_common():
            dead.add_row(code, str(count))
        if not self.tally.dead_letters:
            dead.add_row("-", "0")
        dead.add_section()
        dead.add_row("total", str(self.tally.total_dead_letters), style="bold")

        parts: list[RenderableType] = [decisions, dead]
        if produced is not None:
            line = f"events produced: {produced}"
            if malformed is not None:
                line += f" ({produced - malformed} valid, {malformed} malformed)"
            parts.append(Text(line, style="bold"))
        if self.tally.unreadable:
            parts.append(Text(f"unreadable messages: {self.tally.unreadable}", style="magenta"))
        return Group(*parts)


def make_console() -> Console:
    """A console that never wraps a decision line, on a terminal or not."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 120))
    return console
