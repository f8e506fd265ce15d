"""The README's configuration table is the operator's reference: it must name every setting."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_settings() -> set[str]:
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("## Security")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}


def test_the_readme_lists_every_setting_and_nothing_else() -> None:
    settings = {name.upper() for name in Settings.model_fields}

    assert documented_settings() == settings
