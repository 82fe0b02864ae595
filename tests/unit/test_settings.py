"""Settings: defaults < CRM_* environment < flags, as an operator would configure it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError

from streams.cli import main
from streams.core.customer_state import StateLimits
from streams.core.decoding import DecodeLimits
from streams.settings import Settings, env_var_names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No CRM_* variable from the surrounding shell leaks into these tests."""
    for name in env_var_names():
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def test_defaults() -> None:
    settings = Settings()
    assert settings.broker == "kafka://127.0.0.1:9092"
    assert settings.bootstrap_servers == ["127.0.0.1:9092"]
    assert settings.store == "memory://"
    assert settings.events_topic == "crm.events"
    assert settings.dlq_topic == "crm.events.dlq"
    assert settings.broker_sasl_password is None
    # The defaults agree with the functional core's own defaults.
    assert settings.decode_limits == DecodeLimits()
    assert settings.state_limits == StateLimits()


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BROKER", "kafka://b1:9092;b2:9092")
    monkeypatch.setenv("CRM_PARTITIONS", "12")
    monkeypatch.setenv("CRM_STORE", "rocksdb://")
    monkeypatch.setenv("CRM_WEB_ENABLED", "false")
    monkeypatch.setenv("CRM_MAX_MESSAGE_BYTES", "4096")
    monkeypatch.setenv("CRM_MAX_FUTURE_SKEW_SECONDS", "60")
    monkeypatch.setenv("CRM_DEDUPE_WINDOW", "5")

    settings = Settings()

    assert settings.bootstrap_servers == ["b1:9092", "b2:9092"]
    assert settings.partitions == 12
    assert settings.store == "rocksdb://"
    assert settings.web_enabled is False
    assert settings.decode_limits == DecodeLimits(
        max_message_bytes=4096, max_future_skew=timedelta(seconds=60)
    )
    assert settings.state_limits.dedupe_window == 5


def test_init_kwarg_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BROKER", "kafka://from-env:9092")
    monkeypatch.setenv("CRM_PARTITIONS", "12")
    settings = Settings(broker="kafka://from-flag:9092")
    assert settings.broker == "kafka://from-flag:9092"
    assert settings.partitions == 12  # untouched settings still come from the env


@pytest.mark.parametrize("source", ["init", "env"])
def test_broker_without_scheme_is_normalised(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if source == "env":
        monkeypatch.setenv("CRM_BROKER", "h:1")
        settings = Settings()
    else:
        settings = Settings(broker="h:1")
    assert settings.broker == "kafka://h:1"
    assert settings.bootstrap_servers == ["h:1"]


def test_broker_with_foreign_scheme_is_rejected() -> None:
    with pytest.raises(ValidationError, match="broker"):
        Settings(broker="http://h:1")


@pytest.mark.parametrize("store", ["redis://", "rocksdb", "memory", ""])
def test_invalid_store_is_rejected(store: str) -> None:
    with pytest.raises(ValidationError, match="store"):
        Settings(store=store)


def test_invalid_store_from_env_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_STORE", "sqlite://")
    with pytest.raises(ValidationError, match="store"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("CRM_PARTITIONS", "0"), ("CRM_WEB_PORT", "70000"), ("CRM_LOG_LEVEL", "loud")],
)
def test_out_of_range_env_values_are_rejected(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_cli_config_flag_beats_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_BROKER", "kafka://from-env:9092")
    monkeypatch.setenv("CRM_APP_ID", "from-env-app")

    assert main(["config", "--json", "--broker", "h:1"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert data["broker"] == "kafka://h:1"
    assert data["app_id"] == "from-env-app"


def test_cli_config_rejects_invalid_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--store", "redis://"]) != 0
    captured = capsys.readouterr()
    assert "store" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_password_is_redacted_in_config_output(
    as_json: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_BROKER_SASL_USERNAME", "crm-svc")
    monkeypatch.setenv("CRM_BROKER_SASL_PASSWORD", "s3cr3t-Pa55")

    assert main(["config", "--json"] if as_json else ["config"]) == 0

    out = capsys.readouterr().out
    assert "s3cr3t-Pa55" not in out
    assert "crm-svc" in out
    if as_json:
        assert json.loads(out)["broker_sasl_password"] == "***"
    else:
        line = next(ln for ln in out.splitlines() if ln.startswith("CRM_BROKER_SASL_PASSWORD"))
        assert line.split()[-1] == "***"


def test_exactly_once_is_refused_with_a_rocksdb_store() -> None:
    # The files would keep state of transactions a crash aborts.
    with pytest.raises(ValidationError, match="exactly_once needs store memory"):
        Settings(store="rocksdb://", processing_guarantee="exactly_once")
    assert Settings(store="memory://", processing_guarantee="exactly_once").store == "memory://"
