"""Validating a rules file: every problem names the rule, the field and the line, so an
analyst can fix a typo before it goes live; `crm-triggers rules check` and the playbook."""

from __future__ import annotations

import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest
from engine_helpers import T0, Journey, default_engine, ids

from schemas.rules import ActionRule, RecurringRule
from streams.cli import main
from streams.core.engine import load_engine
from streams.core.rules_loader import RuleProblem, RulesError
from streams.playbook import DEFAULT_RULES

CONTRACT_RULE_IDS = {
    "welcome",
    "doi_reminder",
    "order_thanks",
    "review_request",
    "second_order",
    "first_order_nudge",
    "abandoned_cart",
    "replenishment",
    "overdue_repeat",
    "winback",
    "birthday",
    "appointment_reminder",
    "vip_threshold",
}

GOOD_RULE = """\
version: 1
rules:
  - id: welcome
    kind: action
    on: registered
    channels: [email]
    template: welcome_v1
    category: service
"""


def line_with(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the `occurrence`-th `snippet` of `text`."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if snippet in line]
    return found[occurrence - 1]


def problems_of(text: str, source: str = "rules.yaml") -> list[RuleProblem]:
    with pytest.raises(RulesError) as caught:
        load_engine(text, source)
    assert caught.value.source == source
    return caught.value.problems


def only_problem(text: str) -> RuleProblem:
    (problem,) = problems_of(text)
    return problem


def test_unknown_kind_names_the_rule_and_the_kinds_that_exist() -> None:
    text = (
        GOOD_RULE
        + """\
  - id: cart_nudge
    kind: sometimes
    on: cart_updated
    channels: [email]
    template: t
    category: marketing
"""
    )
    problem = only_problem(text)
    assert problem.rule_id == "cart_nudge"
    assert "'kind'" in problem.message and "'sometimes'" in problem.message
    assert "'inactivity'" in problem.message
    assert problem.line in (line_with(text, "id: cart_nudge"), line_with(text, "kind: sometimes"))


def test_missing_required_field_points_at_the_rule() -> None:
    text = (
        GOOD_RULE
        + """\
  - id: doi_reminder
    kind: inactivity
    after: registered
    within: 2d
    channels: [email]
    template: t
    category: service
"""
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("doi_reminder", "unless")
    assert "required" in problem.message.lower()
    assert problem.line == line_with(text, "id: doi_reminder")


@pytest.mark.parametrize(
    ("field", "bad"),
    [("delay", "2 days"), ("delay", "2x"), ("ttl", "30days"), ("delay", "30d +")],
)
def test_bad_duration_names_rule_field_and_line(field: str, bad: str) -> None:
    values = {"delay": "7d", "ttl": "5d", field: f"'{bad}'"}
    text = GOOD_RULE + (
        "  - id: review_request\n    kind: delay\n    after: order_placed\n"
        f"    delay: {values['delay']}\n    ttl: {values['ttl']}\n"
        "    channels: [email]\n    template: t\n    category: marketing\n"
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("review_request", field)
    assert problem.line == line_with(text, f"{field}: '{bad}'")


def test_duration_without_a_unit_is_rejected() -> None:
    text = GOOD_RULE + (
        "  - id: first_order_nudge\n    kind: inactivity\n    after: registered\n"
        "    unless: [order_placed]\n    within: '30'\n"
        "    channels: [email]\n    template: t\n    category: marketing\n"
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("first_order_nudge", "within")
    assert problem.line == line_with(text, "within: '30'")


def test_out_of_range_field_of_an_inactivity_rule_points_at_its_line() -> None:
    text = (
        GOOD_RULE
        + """\
  - id: abandoned_cart
    kind: inactivity
    after: cart_updated
    unless: [order_placed]
    within: 1h
    channels: [push]
    template: t
    category: marketing
    priority: 5000
"""
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("abandoned_cart", "priority")
    assert problem.line == line_with(text, "priority: 5000")


@pytest.mark.parametrize(
    "kind_fields",
    [
        "    after: order_placed\n    delay: 7d\n",
        "    on: appointment_scheduled\n    date: starts_at\n    before: 24h\n",
    ],
    ids=["delay", "before"],
)
def test_out_of_range_field_of_delay_and_before_rules_points_at_its_line(
    kind_fields: str,
) -> None:
    kind = "delay" if "delay:" in kind_fields else "before"
    text = (
        GOOD_RULE
        + f"  - id: reminder\n    kind: {kind}\n{kind_fields}"
        + "    channels: [email]\n    template: t\n    category: marketing\n    priority: 5000\n"
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("reminder", "priority")
    assert problem.line == line_with(text, "priority: 5000")


def test_rendered_error_reads_file_line_rule_field_message() -> None:
    text = GOOD_RULE.replace("template: welcome_v1", "template: welcome_v1\n    ttl: 2 days")
    with pytest.raises(RulesError) as caught:
        load_engine(text, "playbook.yaml")
    line = line_with(text, "ttl: 2 days")
    assert str(caught.value).startswith(f"playbook.yaml:{line}: rule welcome: ttl: ")


def test_unknown_root_and_function_in_an_expression_are_reported() -> None:
    text = GOOD_RULE.replace(
        "    on: registered\n",
        "    on: registered\n"
        "    when: stat.orders_count == 0\n"
        "    audience: agee(state.registered_at) > 1d\n",
    )
    problems = problems_of(text)
    assert {(p.rule_id, p.field, p.line) for p in problems} == {
        ("welcome", "when", line_with(text, "when: stat.")),
        ("welcome", "audience", line_with(text, "audience: agee")),
    }


def test_unknown_state_field_in_an_expression_is_reported() -> None:
    text = GOOD_RULE.replace(
        "    on: registered\n", "    on: registered\n    when: state.ordrs_count == 0\n"
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("welcome", "when")
    assert problem.line == line_with(text, "state.ordrs_count")
    assert "ordrs_count" in problem.message


def test_unknown_nested_state_field_is_reported_but_event_properties_are_free() -> None:
    text = GOOD_RULE.replace(
        "    on: registered\n",
        "    on: registered\n    when: state.profile.tierr == 'gold' and event.anything == 1\n",
    )
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("welcome", "when")
    assert "tierr" in problem.message


def test_duplicate_rule_ids_are_rejected_naming_the_id() -> None:
    text = GOOD_RULE + GOOD_RULE.split("rules:\n", 1)[1].replace("on: registered", "on: visit")
    with pytest.raises(RulesError) as caught:
        load_engine(text, "rules.yaml")
    assert "duplicate" in str(caught.value)
    assert "'welcome'" in str(caught.value)


def test_duplicate_rule_id_points_at_the_second_rule() -> None:
    text = GOOD_RULE + GOOD_RULE.split("rules:\n", 1)[1].replace("on: registered", "on: visit")
    problem = only_problem(text)
    assert problem.rule_id == "welcome"
    assert problem.line == line_with(text, "id: welcome", occurrence=2)


def test_bad_yaml_reports_the_line() -> None:
    text = GOOD_RULE.replace("template: welcome_v1", "template: welcome: v1")
    problem = only_problem(text)
    assert "invalid YAML" in problem.message
    assert problem.line == line_with(text, "template: welcome: v1")


def test_several_problems_are_reported_together_each_with_its_line() -> None:
    text = (
        GOOD_RULE
        + """\
  - id: first_bad
    kind: delay
    after: order_placed
    delay: 7 days
    channels: [email]
    template: t
    category: marketing
  - id: second_bad
    kind: action
    on: order_placed
    when: event.amount >
    channels: [email]
    template: t
    category: marketing
"""
    )
    problems = problems_of(text)
    assert [(p.rule_id, p.field, p.line) for p in problems] == [
        ("first_bad", "delay", line_with(text, "delay: 7 days")),
        ("second_bad", "when", line_with(text, "when: event.amount >")),
    ]


def test_bad_setting_is_reported_with_its_line() -> None:
    text = "version: 1\nsettings:\n  lifecycle:\n    dormant_after: 120 days\n" + GOOD_RULE.replace(
        "version: 1\n", ""
    )
    problem = only_problem(text)
    assert problem.rule_id is None
    assert problem.field == "dormant_after"
    assert problem.line == line_with(text, "dormant_after")


def test_unknown_rule_field_is_rejected() -> None:
    text = GOOD_RULE.replace("    on: registered\n", "    on: registered\n    unles: [visit]\n")
    problem = only_problem(text)
    assert (problem.rule_id, problem.field) == ("welcome", "unles")
    assert problem.line == line_with(text, "unles:")


def test_on_key_is_not_read_as_a_boolean() -> None:
    engine = load_engine(GOOD_RULE)
    rule = engine.rules["welcome"].rule
    assert isinstance(rule, ActionRule)
    assert rule.on == "registered"
    assert ids(Journey(engine)("registered", T0)) == ["welcome"]


def test_yes_and_no_are_plain_strings_in_rules() -> None:
    text = GOOD_RULE.replace("template: welcome_v1", "template: welcome_v1\n    description: no")
    rule = load_engine(text).rules["welcome"].rule
    assert rule.description == "no"


def test_unquoted_time_of_day_is_not_read_as_a_number() -> None:
    text = """\
version: 1
rules:
  - id: birthday
    kind: recurring
    date: birthday
    at: 9:30
    channels: [email]
    template: birthday_v1
    category: marketing
"""
    try:
        engine = load_engine(text)
    except RulesError:
        return  # rejecting it is fine too
    rule = engine.rules["birthday"].rule
    assert isinstance(rule, RecurringRule)
    assert (rule.at.hour, rule.at.minute) == (9, 30)


def test_quoted_and_zero_padded_times_of_day() -> None:
    for value in ('"09:30"', "09:30"):
        text = (
            "version: 1\nrules:\n  - id: birthday\n    kind: recurring\n    date: birthday\n"
            f"    at: {value}\n    channels: [email]\n    template: b\n    category: marketing\n"
        )
        rule = load_engine(text).rules["birthday"].rule
        assert isinstance(rule, RecurringRule)
        assert rule.at.replace(tzinfo=None) == time(9, 30)


# -------------------------------------------------------------- playbook and CLI


def test_default_playbook_has_exactly_the_contract_rule_ids() -> None:
    engine = default_engine()
    assert set(engine.rules) == CONTRACT_RULE_IDS
    assert len(engine.ruleset.rules) == len(CONTRACT_RULE_IDS)


def test_rules_check_on_the_default_playbook_lists_every_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "check", str(DEFAULT_RULES)]) == 0
    out = capsys.readouterr().out
    listed = {line.split(" ", 1)[0] for line in out.splitlines() if not line.startswith(" ")}
    assert listed >= CONTRACT_RULE_IDS
    assert f"{len(CONTRACT_RULE_IDS)} rules OK" in out


def test_rules_check_says_how_rfm_is_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", str(DEFAULT_RULES)]) == 0
    assert "rfm: cut points recency days 30/90/180/365," in capsys.readouterr().out
    learned = tmp_path / "learned.yaml"
    learned.write_text(
        DEFAULT_RULES.read_text(encoding="utf-8").replace(
            "  rfm:\n", "  rfm:\n    learn: true\n    learn_min_customers: 500\n", 1
        ),
        encoding="utf-8",
    )
    assert main(["rules", "check", str(learned)]) == 0
    out = capsys.readouterr().out
    assert "rfm: quintiles learned from the customers with an order" in out
    assert "until 500 have ordered" in out


def test_rules_check_piped_into_a_reader_that_stops_early_is_quiet(tmp_path: Path) -> None:
    # `crm-triggers rules check FILE | head`: the closed pipe is not a crash. Enough
    # rules that the listing outgrows the pipe's buffer, so the write surely fails.
    many = tmp_path / "many.yaml"
    many.write_text(
        "version: 1\nrules:\n"
        + "".join(
            f"  - {{id: r{n}, kind: action, on: visit, channels: [email], "
            f"template: t, category: service}}\n"
            for n in range(2000)
        ),
        encoding="utf-8",
    )
    shell = f"{sys.executable} -m streams rules check {many} | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, check=False
    )
    assert done.stdout == "r0 [action] on visit\n"
    assert done.stderr == ""
    assert done.returncode == 141  # 128 + SIGPIPE, as for any command cut off by head


def test_rules_check_fails_with_the_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    text = GOOD_RULE.replace("template: welcome_v1", "template: welcome_v1\n    ttl: 2 days")
    path.write_text(text, encoding="utf-8")
    assert main(["rules", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line_with(text, 'ttl: 2 days')}: rule welcome: ttl:" in err
