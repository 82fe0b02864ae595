"""aiokafka connection arguments derived from the settings (plaintext, SSL, SASL)."""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL, trusting `broker_ssl_cafile` when set."""
    if settings.broker_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.broker_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.broker_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.broker_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.broker_sasl_username
        kwargs["sasl_plain_password"] = settings.broker_sasl_password
    return kwargs
