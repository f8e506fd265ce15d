"""The end-to-end harness says which ``shop`` it could not find."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import EXECUTABLE_VARIABLE, shop_executable


def test_a_missing_executable_named_by_the_variable_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "elsewhere" / "shop"
    monkeypatch.setenv(EXECUTABLE_VARIABLE, str(missing))
    with pytest.raises(FileNotFoundError, match=f"at {missing}, which \\${EXECUTABLE_VARIABLE} names"):
        shop_executable()


def test_the_buyers_client_processes_import_no_part_of_the_shop() -> None:
    """Client processes started with "spawn" import ``tests.e2e.buyers``: kept free of the shop,
    each starts in a fraction of a second instead of the shop's import time."""
    shown = subprocess.run(
        [sys.executable, "-c", "import sys, tests.e2e.buyers; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    imported = {name.split(".")[0] for name in shown.stdout.split()}
    assert not imported & {"app", "contexts", "infrastructure", "flask", "sqlalchemy", "pydantic"}
