"""Is the Kafka cluster answering? One metadata round trip every few seconds.

Faust's own clients retry silently for a long time when the brokers stall, so
readiness needs a signal of its own: a separate, idle aiokafka client asks
for cluster metadata with a deadline. A stalled broker (SIGSTOP, network
partition) keeps its TCP connections open but stops answering; the deadline
turns that into "unreachable" within `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.client import AIOKafkaClient

from streams.settings import Settings
from streams.shell.kafka_connection import client_kwargs

log = logging.getLogger(__name__)


class BrokerProbe:
    def __init__(self, settings: Settings, interval: float = 5.0, timeout: float = 5.0) -> None:
        self.settings = settings
        self.interval = interval
        self.timeout = timeout
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._client: AIOKafkaClient | None = None

    def reachable(self, now: float | None = None) -> bool:
        """Answered within the last two intervals plus a deadline."""
        if self.last_ok is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self.last_ok <= 2 * self.interval + self.timeout

    def seconds_since_ok(self) -> float | None:
        return None if self.last_ok is None else round(time.monotonic() - self.last_ok, 3)

    async def check(self) -> bool:
        try:
            if self._client is None:
                client = AIOKafkaClient(
                    **client_kwargs(self.settings),
                    client_id=f"{self.settings.app_id}-health",
                    request_timeout_ms=int(self.timeout * 1000),
                )
                await asyncio.wait_for(client.bootstrap(), self.timeout)
                self._client = client
            await asyncio.wait_for(self._client.fetch_all_metadata(), self.timeout)
        except Exception as exc:  # any failure means "not reachable now"; never raise
            if self.last_error is None:
                log.warning("broker metadata request failed: %s", type(exc).__name__)
            self.last_error = type(exc).__name__
            return False
        if self.last_error is not None:
            log.info("broker reachable again")
        self.last_ok = time.monotonic()
        self.last_error = None
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
