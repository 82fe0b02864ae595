"""The default playbook shipped with crm-triggers (`default.yaml`)."""

from pathlib import Path

DEFAULT_RULES = Path(__file__).with_name("default.yaml")
