"""aiokafka connection arguments derived from the settings (plaintext, SSL, SASL)."""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def client_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.broker_security_protocol,
    }
    if settings.broker_security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
        )
    if settings.broker_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.broker_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.broker_sasl_username
        kwargs["sasl_plain_password"] = settings.broker_sasl_password
    return kwargs
