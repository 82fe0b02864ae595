"""deploy/ and docker-compose.yml cannot run here (no Docker engine): check what can be.

Prometheus' own tool validates the scrape config and the alert rules and runs
the alert unit tests; every metric a dashboard panel or an alert queries must
be one the worker exports.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY

from streams.cli import build_parser
from streams.settings import Settings
from streams.shell import consumer_lag, metrics
from streams.shell.topics import engine_topics
from tests.unit.test_compose import compose
from tests.unit.test_compose import services as compose_services

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "crm-triggers.json"

# Series Prometheus makes itself, or the client library's default collectors.
NOT_OURS = {"up"}
PROCESS_PREFIXES = ("process_", "python_")
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "deriv", "histogram_quantile",
    "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "le", "max",
    "min", "avg", "count", "clamp_min", "absent", "offset", "bool", "topk", "humanize",
}  # fmt: skip


def exported_metric_names() -> set[str]:
    """Every series name the worker's registry can produce."""
    assert consumer_lag.COLLECTOR is not None and metrics.BUILD is not None
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that name series (not functions, labels, keywords)."""
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return {t for t in tokens if t not in PROMQL_WORDS and not t.startswith("$")}


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n not in NOT_OURS and not n.startswith(PROCESS_PREFIXES)}


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def alert_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [(rule["alert"], rule["expr"]) for group in doc["groups"] for rule in group["rules"]]


def test_dashboard_panels_query_only_exported_metrics() -> None:
    exported = exported_metric_names()
    exprs = dashboard_exprs()
    assert len(exprs) >= 30
    for title, expr in exprs:
        names = ours(metric_names(expr))
        assert names, f"panel {title!r} queries no crm-triggers metric: {expr}"
        assert names <= exported, f"panel {title!r} queries unknown metrics {names - exported}"


def test_dashboard_covers_every_metric_family_of_the_worker() -> None:
    queried = set().union(*(metric_names(expr) for _, expr in dashboard_exprs()))
    families = {f.name for f in REGISTRY.collect() if f.name.startswith("crm_")}
    missing = {
        family
        for family in families
        if not any(name == family or name.startswith(f"{family}_") for name in queried)
    }
    assert not missing, f"metrics without a dashboard panel: {sorted(missing)}"


def test_alerts_query_only_exported_metrics() -> None:
    exported = exported_metric_names()
    for alert, expr in alert_exprs():
        names = ours(metric_names(expr))
        assert names <= exported, f"alert {alert} queries unknown metrics {names - exported}"


def test_every_alert_has_a_runbook_section() -> None:
    runbooks = (DEPLOY / "README.md").read_text()
    for alert, _ in alert_exprs():
        assert f"### {alert}" in runbooks, f"deploy/README.md has no runbook for {alert}"


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {alert for alert, _ in alert_exprs()} <= tested


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; `make test` installs it)")
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ docker-compose.yml


def test_compose_validates_against_the_compose_specification() -> None:
    # The file only: importing check_jsonschema pulls in its CLI, which needs a
    # newer click than faust-streaming allows.
    schema_file = importlib.metadata.distribution("check-jsonschema").locate_file(
        "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
    )
    schema = json.loads(Path(str(schema_file)).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_image_build_stage_has_what_compiling_the_core_needs() -> None:
    # `docker build` cannot run here: a file the wheel build reads but the stage does not
    # copy, or a missing compiler, would only show on a user's machine.
    dockerfile = (ROOT / "Dockerfile").read_text()
    _, build_stage, runtime_stage = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)
    copied = {
        source.rstrip("/")
        for line in build_stage.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    }
    compiled = re.findall(r'"((?:streams|schemas)/[\w/]+\.py)"', (ROOT / "setup.py").read_text())
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", "setup.py", readme} <= copied
    assert compiled and {path.split("/")[0] for path in compiled} <= copied
    assert "gcc" in build_stage and "libc6-dev" in build_stage
    assert "--no-index" in runtime_stage  # the runtime image installs the built wheels


def test_compose_runs_kafka_workers_prometheus_and_grafana() -> None:
    services = compose_services()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["generator"]["profiles"] == ["demo"]
    prometheus_mounts = " ".join(services["prometheus"]["volumes"])
    assert "./deploy/prometheus:/etc/prometheus" in prometheus_mounts
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in grafana_mounts
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "crm-triggers")
    port = int(services["worker"]["environment"]["CRM_WEB_PORT"])
    assert job["dns_sd_configs"][0] == {
        "names": ["worker"],
        "type": "A",
        "port": port,
        "refresh_interval": "30s",
    }


def compose_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var, value in compose_services()[service]["environment"].items():
        monkeypatch.setenv(var, str(value))
    return Settings()


def test_compose_creates_every_topic_with_the_workers_partition_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = compose_settings("worker", monkeypatch)
    script = compose_services()["kafka-init"]["command"][0].replace("$$", "$")
    partitions = re.search(r"--partitions (\d+)", script)
    assert partitions is not None and int(partitions.group(1)) == settings.partitions
    created: set[str] = set()
    for line in script.splitlines():
        words = shlex.split(line.strip()) if line.strip().startswith(("create ", "for ")) else []
        if words[:1] == ["create"] and "$" not in words[1]:
            created.add(words[1])
        elif words[:1] == ["for"]:
            channels = words[words.index("in") + 1 : words.index("do")]
            channels[-1] = channels[-1].rstrip(";")
            created |= {f"{settings.actions_topic_prefix}{c}" for c in channels}
    expected = set(engine_topics(settings)) | {
        f"{settings.app_id}-customers-changelog",
        f"{settings.app_id}-contacts-changelog",
    }
    assert created == expected


def test_compose_generator_command_is_a_valid_cli_invocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command = compose_services()["generator"]["command"]
    args = build_parser().parse_args(command)
    assert args.command == "generate"
    assert compose_settings("generator", monkeypatch).partitions == 8
