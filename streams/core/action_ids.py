"""Deterministic idempotency keys for trigger occurrences."""

from __future__ import annotations

import hashlib


def action_id(rule_id: str, customer_id: str, occurrence: str) -> str:
    """Same rule, customer and occurrence (e.g. the triggering event id) -> same id.

    Downstream channel services dedupe by this id, so it must not depend on the
    wall clock, the worker or the partition: only on what identifies the occurrence.
    """
    digest = hashlib.blake2b(
        f"{rule_id}\x1f{customer_id}\x1f{occurrence}".encode(), digest_size=16
    ).hexdigest()
    return f"{rule_id}-{digest}"
