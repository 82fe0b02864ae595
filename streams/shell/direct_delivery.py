"""Hand each message of an input topic straight to its handler, past Faust's agent machinery.

Faust takes a fetched message through the conductor (flow control, an `Event`
with decoded key and value, a queue per agent), wakes the agent's task, and
walks its stream iterator (sensors, a weak reference as the current event,
acking the previous event) before our handler sees it. On this machine that is
~85 µs of Python per message, the ceiling of a bare Faust agent (~12k messages/s,
bench/RESULTS.md), while our handlers only need the raw message: they decode it
themselves and ack through the changelog flush.

A route sends a topic's messages from the consumer's drain loop to a handler,
called there in fetch order. Everything Faust's path did that still matters is
kept: the message is tracked as un-acked (a stop or revoke waits for it), no
delivery starts once a rebalance suspended the flow, and a current event is set
so that a RocksDB store finds the message's partition. Unlike a put in an agent's
queue, a started delivery is never cancelled: the handler may have changed the
state and not yet sent its outputs. The agents stay subscribed, so assignment, co-partitioning
and recovery are Faust's as before; their queues just stay empty.

Faust's livelock check (every ~7 s, per assigned partition) reads when the partition's
stream last took an event in from the monitor, which only its stream path records.
Without that, a worker with lag logged "Stream has not started processing" as an
ERROR five minutes after start, however fast it worked; a delivery records it, so
the check keeps its meaning: it fires when a handler stops taking messages.

Changelog records have routes too (`recover`), to table recovery (`lean_recovery`).
They are not input: nothing acks them and no stream takes them, so the consumer does
not track them, and the handler gets the bare message.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterable
from time import monotonic
from typing import Any

from faust.streams import _current_event

Handler = Callable[[Any], Awaitable[None]]


class CurrentMessage:
    """What Faust's stores read of "the current event": its message (for the partition)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Any) -> None:
        self.message = message


class DirectDelivery:
    """Routes from input topics to the handlers that process them in the drain loop."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.changelogs: set[str] = set()

    def route(self, topics: Iterable[str], handler: Handler) -> None:
        for topic in topics:
            if topic in self.routes:
                raise ValueError(f"topic {topic!r} already has a direct route")
            self.routes[topic] = handler

    def recover(self, changelogs: Iterable[str], take: Handler) -> None:
        """Route changelog topics' records to recovery's `take`."""
        changelogs = list(changelogs)
        self.route(changelogs, take)
        self.changelogs.update(changelogs)

    async def deliver(self, consumer: Any, handler: Handler, message: Any) -> None:
        """Process `message` with `handler` as Faust's agent path would have. The
        caller checked flow control (a rebalance stops deliveries before they start)."""
        if message.topic in self.changelogs:
            await handler(message)
            return
        if not message.tracked:
            message.tracked = True
            consumer.track_message(message)
        consumer.app.monitor.stream_inbound_time[message.tp] = monotonic()
        current = CurrentMessage(message)
        # A weak reference, as Faust sets it; reset to None (not with a token) because a
        # delivery that has to wait finishes in another task, hence another context.
        _current_event.set(weakref.ref(current))  # type: ignore[arg-type]
        try:
            await handler(message)
        finally:
            _current_event.set(None)


class ConsumerAcks:
    """Acks a directly delivered message: the consumer's own ack (no stream involved)."""

    def __init__(self, consumer: Callable[[], Any]) -> None:
        self._consumer = consumer

    async def ack(self, message: Any) -> None:
        self._consumer().ack(message)
