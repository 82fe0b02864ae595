"""An independent check of sent actions against the default playbook's contact policy.

It reads only the published actions (channel, category, decided_at per customer)
and re-counts every rolling window itself: it shares no code with the policy.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)


def violations(
    actions: Iterable[Mapping[str, Any]], timezones: Mapping[str, str] | None = None
) -> list[str]:
    """Every breach of: marketing <= 1 per 24 h and <= 3 per 7 d; sms <= 2 per 30 d;
    >= 2 h between two non-transactional messages; no marketing/service message in
    quiet hours (21:00-08:00 local); transactional messages are never counted."""
    sent: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for action in actions:
        at = datetime.fromisoformat(action["decided_at"])
        sent[action["customer_id"]].append((at, action["channel"], action["category"]))
    found: list[str] = []
    for customer, items in sent.items():
        items.sort()
        marketing = [at for at, _, category in items if category == "marketing"]
        sms = [at for at, channel, _ in items if channel == "sms"]
        paced = [at for at, _, category in items if category != "transactional"]
        found += _window(customer, "marketing 1/24h", marketing, 1, DAY)
        found += _window(customer, "marketing 3/7d", marketing, 3, 7 * DAY)
        found += _window(customer, "sms 2/30d", sms, 2, 30 * DAY)
        for earlier, later in itertools.pairwise(paced):
            if later - earlier < timedelta(hours=2):
                found.append(f"{customer}: min gap 2h broken at {later}")
        zone = ZoneInfo((timezones or {}).get(customer) or "Europe/Berlin")
        for at, _, category in items:
            local = at.astimezone(zone).time()
            if category != "transactional" and (local.hour >= 21 or local.hour < 8):
                found.append(f"{customer}: {category} at {local} local, in quiet hours")
    return found


def _window(
    customer: str, name: str, times: list[datetime], limit: int, span: timedelta
) -> list[str]:
    breaches = []
    for i, at in enumerate(times):
        inside = [t for t in times[: i + 1] if at - t < span]
        if len(inside) > limit:
            breaches.append(f"{customer}: {name} exceeded at {at} ({len(inside)} sent)")
    return breaches
