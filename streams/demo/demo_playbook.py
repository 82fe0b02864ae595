"""The default playbook on a demo clock: timer durations of hours and days become seconds,
so a one-minute demo shows inactivity, delay and policy decisions, not only welcomes.

Caps, quiet hours and the rest of the policy stay real. Every replacement must
apply, so a change to the default playbook cannot silently flatten the demo.
"""

from __future__ import annotations

from pathlib import Path

from streams.playbook import DEFAULT_RULES

DEMO_DURATIONS = {
    "    within: 2d\n": "    within: 40s\n",  # doi_reminder
    "    delay: 7d\n": "    delay: 30s\n",  # review_request
    "    delay: 3d\n": "    delay: 20s\n",  # second_order
    "    within: 30d\n": "    within: 50s\n",  # first_order_nudge
    "    within: 1h\n": "    within: 15s\n",  # abandoned_cart
    "    within: 180d\n": "    within: 55s\n",  # winback
    "      motor_oil: 270d\n": "      motor_oil: 35s\n",
    "      filters: 180d\n": "      filters: 40s\n",
    "      wiper_blades: 365d\n": "      wiper_blades: 45s\n",
}


def demo_rules_text() -> str:
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    for old, new in DEMO_DURATIONS.items():
        if old not in text:
            raise ValueError(f"the default playbook no longer contains {old.strip()!r}")
        text = text.replace(old, new)
    return text


def write_demo_rules(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(demo_rules_text(), encoding="utf-8")
    return path
