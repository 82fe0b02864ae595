"""docker-compose.yml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.settings import Settings, env_var_names

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def services() -> dict[str, Any]:
    result: dict[str, Any] = compose()["services"]
    return result


def test_every_crm_variable_in_compose_is_a_setting() -> None:
    known = env_var_names()
    for name, service in services().items():
        for var in service.get("environment", {}):
            if var.startswith("CRM_"):
                assert var in known, f"{name}: {var} is not read by streams/settings.py"


def test_compose_worker_environment_parses_into_settings(monkeypatch: Any) -> None:
    env = services()["worker"]["environment"]
    for var, value in env.items():
        monkeypatch.setenv(var, str(value))
    settings = Settings()
    assert settings.bootstrap_servers == ["kafka:9092"]
    assert settings.store == "rocksdb://"
    assert settings.session_timeout_seconds <= 10


def test_kafka_does_not_auto_create_topics_with_a_wrong_partition_count() -> None:
    kafka_env = services()["kafka"]["environment"]
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_demo_playbook_keeps_every_rule_with_short_timers() -> None:
    from streams.core.engine import load_engine
    from streams.demo.demo_playbook import demo_rules_text
    from streams.playbook import DEFAULT_RULES

    demo = load_engine(demo_rules_text())
    default = load_engine(DEFAULT_RULES.read_text())
    assert set(demo.rules) == set(default.rules)
    assert demo.rules["abandoned_cart"].rule.within == "15s"  # type: ignore[union-attr]
