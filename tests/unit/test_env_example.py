"""``.env.example`` lists every setting with its default, and stays so: it is compared with
what :mod:`app.env_example` writes from the Settings class."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import Settings, read_settings
from app.env_example import env_example

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
ASSIGNMENT = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(.*)$")


def assignments(text: str) -> dict[str, str]:
    return {match[1]: match[2] for line in text.splitlines() if (match := ASSIGNMENT.match(line))}


def test_the_file_is_what_the_settings_class_generates() -> None:
    assert EXAMPLE.read_text() == env_example(), (
        "a setting changed without .env.example: run `.venv/bin/python -m app.env_example > .env.example`"
    )


def test_every_setting_is_listed_once() -> None:
    names = [match[1] for line in EXAMPLE.read_text().splitlines() if (match := ASSIGNMENT.match(line))]

    assert sorted(names) == sorted(name.upper() for name in Settings.model_fields)


def test_the_file_uncommented_as_a_dotenv_gives_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value shown is the default as the environment spells it (empty: unset), so
    copying the file to .env and uncommenting all of it changes nothing."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    dotenv = "\n".join(f"{name}={value}" for name, value in assignments(EXAMPLE.read_text()).items())
    (tmp_path / ".env").write_text(dotenv + "\n")

    from_file = read_settings()
    (tmp_path / ".env").unlink()

    assert from_file == read_settings()
