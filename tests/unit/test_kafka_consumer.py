"""The worker's Kafka consumer waits at most CRM_FETCH_MAX_WAIT_MS per fetch (Faust
hard-codes 1500 ms, which on the embedded broker is paid on every hop of an event)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from streams.shell.app import create_app


@pytest.mark.asyncio
@pytest.mark.parametrize("wait_ms", [20, 500])
async def test_worker_consumer_gets_the_configured_fetch_wait(wait_ms: int, tmp_path: Path) -> None:
    settings = Settings(
        fetch_max_wait_ms=wait_ms,
        web_enabled=False,
        data_dir=tmp_path,
        broker_security_protocol="SASL_PLAINTEXT",
        broker_sasl_username="crm",
        broker_sasl_password="s3cret",
    )
    app = create_app(settings)
    client = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert client._fetch_max_wait_ms == wait_ms
        # Everything else still comes from Faust's settings, credentials included.
        assert client._group_id == settings.app_id
        assert client._client._sasl_plain_username == "crm"
    finally:
        await client.stop()


@pytest.mark.asyncio
async def test_worker_producer_gets_the_configured_request_timeout(tmp_path: Path) -> None:
    # How long a write is retried before the worker gives up on it and exits.
    settings = Settings(producer_request_timeout_seconds=90, web_enabled=False, data_dir=tmp_path)
    app = create_app(settings)
    producer = app.producer._new_producer()
    try:
        assert producer._request_timeout_ms == 90_000
    finally:
        await producer.stop()
