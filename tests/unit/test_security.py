"""Rules and policy files are data, never code; broker security settings reach the clients.

A rules file comes from analysts and may be edited by many people: loading it
must not run code, read files or hang, whatever it contains.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from streams.core.engine import load_engine
from streams.core.rules_loader import RulesError
from streams.settings import Settings
from streams.shell.app import broker_credentials
from streams.shell.kafka_connection import client_kwargs
from tests.unit.engine_helpers import rule, rules


def load(field: str, value: str) -> None:
    """A rules file whose one rule, `welcome`, carries `field: value` as written."""
    welcome = rule("welcome", "action", on="registered", category="service", **{field: value})
    load_engine(rules(welcome), "rules.yaml")


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_yaml_tags_that_construct_python_objects_are_refused(tag: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(RulesError, match=r"rules\.yaml"):
        load("audience", tag.format(marker=marker))
    assert not marker.exists()


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "open('/etc/passwd')",
        "state.__class__",
        "(lambda: 1)()",
        "[x for x in state.orders]",
        "eval('1')",
        "getattr(state, 'x')",
        "state.orders_count; 1",
        "exec('import os')",
    ],
)
def test_expressions_outside_the_vocabulary_are_load_errors(expression: str) -> None:
    with pytest.raises(RulesError, match="rule welcome"):
        load("audience", f'"{expression}"')


def test_event_paths_read_declared_fields_and_data_never_python_attributes() -> None:
    # Event properties are open (custom events), so paths into them load; they resolve
    # through declared fields and the event's own data only.
    from schemas.event import event_model_for
    from streams.core.rule_scope import walk

    event = event_model_for("order_placed").model_validate(
        {
            "event_id": "e",
            "type": "order_placed",
            "customer_id": "c",
            "occurred_at": "2026-01-01T00:00:00Z",
            "properties": {"order_id": "o", "amount": 5.0},
        }
    )
    for attribute in ("__dict__", "__class__", "model_config", "model_dump", "__init__"):
        assert walk(event.properties, (attribute,)) is None
        assert walk(event, (attribute,)) is None
    assert walk(event.properties, ("amount",)) == 5.0
    load("audience", '"event.properties.__dict__ == null"')


@pytest.mark.timeout(10)
def test_a_yaml_alias_bomb_is_refused_without_expanding_it() -> None:
    levels = ['&a ["l","l","l","l","l","l","l","l","l"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    with pytest.raises(RulesError):
        load("cancel_on", "[" + ", ".join(levels) + "]")  # 9**9 strings if expanded


@pytest.mark.timeout(10)
def test_huge_and_deeply_nested_expressions_are_refused() -> None:
    with pytest.raises(RulesError):
        load("audience", '"' + "(" * 5_000 + "1" + ")" * 5_000 + '"')
    with pytest.raises(RulesError):
        load("audience", '"' + " or ".join(["state.orders_count > 1"] * 20_000) + '"')


def test_sasl_ssl_settings_reach_both_kafka_clients(tmp_path: Path) -> None:
    settings = Settings(
        broker="kafka://broker:9093",
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_sasl_username="crm",
        broker_sasl_password="s3cret",
    )
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("crm", "s3cret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED

    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "crm"
    assert credentials.ssl_context is not None
    assert str(credentials.mechanism.value) == "SCRAM-SHA-512"
    assert settings.redacted()["broker_sasl_password"] == "***"


def test_tls_without_sasl_and_plaintext() -> None:
    tls = Settings(broker_security_protocol="SSL")
    assert isinstance(broker_credentials(tls), faust.SSLCredentials)
    assert isinstance(client_kwargs(tls)["ssl_context"], ssl.SSLContext)
    plain = Settings()
    assert broker_credentials(plain) is None
    assert "ssl_context" not in client_kwargs(plain)
