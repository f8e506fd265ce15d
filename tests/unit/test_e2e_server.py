"""The end-to-end harness says which ``shop`` it could not find."""

from __future__ import annotations

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
