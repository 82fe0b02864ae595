"""Load a rules file: YAML -> validated `RuleSet` -> compiled expressions.

Every problem is reported as `file:line: rule <id>: <field>: <message>`, found
by walking the YAML node tree along pydantic's error location. YAML is parsed
with the safe loader: no tags, no Python objects, no file includes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.rules import RuleSet


@dataclass(frozen=True, slots=True)
class RuleProblem:
    line: int | None
    rule_id: str | None
    field: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        rule = f" rule {self.rule_id}:" if self.rule_id else ""
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{rule}{field} {self.message}"


class RulesError(ValueError):
    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


MAX_RULES_BYTES = 1 << 20


class RulesYamlLoader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 booleans: only true/false.

    YAML 1.1 reads `on`, `off`, `yes`, `no` as booleans, and `on:` is a rule
    field here; an analyst must never meet that trap.
    """


_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
RulesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2 core schema: no yes/no/on/off booleans, no base-60 numbers (`9:30` is text).
RulesYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
RulesYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
RulesYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


KINDS = frozenset(
    {"action", "inactivity", "delay", "before", "lifecycle", "threshold", "recurring"}
)


def _strip_tag(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic puts the discriminator (the rule's kind) after the rule index."""
    if len(loc) >= 3 and loc[0] == "rules" and isinstance(loc[1], int) and loc[2] in KINDS:
        return loc[:2] + loc[3:]
    return loc


def _node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    node = root
    best = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                None,
            )
            if child is None:
                # Not a key: a discriminator tag such as "inactivity" in the location.
                continue
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
        else:
            break
        best = node
    return best


def _rule_id_at(data: Any, loc: tuple[int | str, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules") if isinstance(data, dict) else None
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = rules[loc[1]].get("id")
            return str(rule_id) if rule_id is not None else f"#{loc[1] + 1}"
    return None


def _field_of(loc: tuple[int | str, ...]) -> str:
    loc = _strip_tag(loc)
    tail = loc[2:] if len(loc) >= 2 and loc[0] == "rules" else loc
    return ".".join(str(p) for p in tail)


def parse_ruleset(text: str, source: str = "<rules>") -> tuple[RuleSet, yaml.Node | None]:
    """Validate the structure of a rules file (expressions are compiled by the engine)."""
    if len(text.encode()) > MAX_RULES_BYTES:
        raise RulesError(source, [RuleProblem(None, None, "", "file larger than 1 MiB")])
    try:
        root = yaml.compose(text, Loader=RulesYamlLoader)
        data = yaml.load(text, Loader=RulesYamlLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise RulesError(source, [RuleProblem(line, None, "", f"invalid YAML: {exc}")]) from exc
    if data is None:
        data = {}
    duplicates = _duplicate_ids(data, root)
    if duplicates:
        raise RulesError(source, duplicates)
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            node = _node_at(root, _strip_tag(loc))
            line = node.start_mark.line + 1 if node is not None else None
            problems.append(RuleProblem(line, _rule_id_at(data, loc), _field_of(loc), err["msg"]))
        raise RulesError(source, problems) from exc
    return ruleset, root


def _duplicate_ids(data: Any, root: yaml.Node | None) -> list[RuleProblem]:
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return []
    seen: dict[str, int] = {}
    problems = []
    for index, rule in enumerate(rules):
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        if not isinstance(rule_id, str):
            continue
        if rule_id in seen:
            problems.append(
                RuleProblem(
                    line_of(root, ("rules", index, "id")),
                    rule_id,
                    "id",
                    f"duplicate rule id {rule_id!r} (first defined as rule #{seen[rule_id] + 1})",
                )
            )
        else:
            seen[rule_id] = index
    return problems


def line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    node = _node_at(root, loc)
    return node.start_mark.line + 1 if node is not None else None


def read_rules_file(path: Path) -> str:
    return path.read_text(encoding="utf-8")
