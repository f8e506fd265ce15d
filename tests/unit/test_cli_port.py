"""`shop serve --port` defaults to $PORT: a bad one is a usage error (exit status 2), not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import main, serve


@pytest.mark.parametrize(("port", "expected"), [("", 8000), ("8123", 8123)])
def test_the_port_is_taken_from_port_or_else_8000(monkeypatch: pytest.MonkeyPatch, port: str, expected: int) -> None:
    monkeypatch.setenv("PORT", port)
    with serve.make_context("serve", []) as ctx:
        assert ctx.params["port"] == expected


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_a_bad_port_variable_is_a_usage_error(port: str) -> None:
    result = CliRunner().invoke(main, ["serve"], env={"PORT": port})

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--port'" in result.output
