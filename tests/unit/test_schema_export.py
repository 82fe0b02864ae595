"""The JSON Schemas in `schemas/json/` are what producers in other languages build on:
they must be the contracts' current ones."""

from __future__ import annotations

import pytest

from schemas.export import main


def test_the_committed_schemas_are_the_contracts_current_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A contract changed without `make schemas` (or a change in how a record's field
    # is written into its schema) shows here as a stale file.
    assert main(["--check"]) == 0, capsys.readouterr().err
