"""The README's configuration reference must list every setting the code reads."""

from __future__ import annotations

from pathlib import Path

from streams.settings import env_var_names

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = sorted(name for name in env_var_names() if f"`{name}`" not in text)
    assert not missing, f"undocumented settings: {missing}"
