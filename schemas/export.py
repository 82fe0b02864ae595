"""Export every contract's JSON Schema to `schemas/json/` for producers in other languages.

`python -m schemas.export` writes the files; `--check` fails when they are
stale (CI runs it through the test suite).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from schemas.candidate import Candidate
from schemas.dead_letter import DeadLetter
from schemas.decision import Action, Decision
from schemas.event import EVENT_MODELS, CustomEvent
from schemas.rules import RuleSet
from schemas.state import CustomerState
from schemas.step import StepMessage

OUT_DIR = Path(__file__).parent / "json"


def exported_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {
        f"event.{event_type}.json": model for event_type, model in sorted(EVENT_MODELS.items())
    }
    models["event.custom.json"] = CustomEvent
    models["dead-letter.json"] = DeadLetter
    models["candidate.json"] = Candidate
    models["decision.json"] = Decision
    models["action.json"] = Action
    models["step.json"] = StepMessage
    models["rules.json"] = RuleSet
    models["customer-state.json"] = CustomerState
    return models


class ContractJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, with a native record's field titled as its contract's.

    A record (`schemas.record_schema`) validates JSON as its contract model, so its JSON
    Schema is the model's; pydantic gives a model's field no title of its own, but
    titles a field whose schema it cannot see into (a record's JSON-or-Python schema)
    after the field's name. Looking through to the JSON side keeps each contract's
    schema as it was when the field was the model itself."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        if isinstance(schema, dict) and schema.get("type") == "json-or-python":
            return self.field_title_should_be_set(schema["json_schema"])
        return super().field_title_should_be_set(schema)


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation", schema_generator=ContractJsonSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    expected = {name: render(model) for name, model in exported_models().items()}
    if args.check:
        stale = [
            name
            for name, text in expected.items()
            if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text() != text
        ]
        extra = sorted(p.name for p in OUT_DIR.glob("*.json") if p.name not in expected)
        if stale or extra:
            print(
                f"stale: {stale}; unexpected: {extra}; run `python -m schemas.export`",
                file=sys.stderr,
            )
            return 1
        print(f"{len(expected)} schemas up to date")
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for stale_file in OUT_DIR.glob("*.json"):
        if stale_file.name not in expected:
            stale_file.unlink()
    for name, text in expected.items():
        (OUT_DIR / name).write_text(text)
    print(f"wrote {len(expected)} schemas to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
