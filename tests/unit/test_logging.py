"""Log lines for people in a terminal, JSON for everything else, and LOG_FORMAT to force either.

The stream is handed in, so a terminal is a stream that says it is one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from app.config import Settings
from infrastructure.logging import LogFormat, configure_logging

ESCAPE = "\x1b["


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """configure_logging changes the process's logging: put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def log_through(stream: io.StringIO, log_format: LogFormat | None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("NO_COLOR", raising=False)
    configure_logging(level="INFO", log_format=log_format, stream=stream)
    structlog.get_logger("shop.test").info("order.placed", order_id="o-1")
    logging.getLogger("sqlalchemy.test").warning("from the standard library")
    return stream.getvalue()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_terminal_gets_coloured_lines_for_people(monkeypatch: pytest.MonkeyPatch) -> None:
    text = log_through(Terminal(), None, monkeypatch)

    first, second = text.splitlines()
    assert ESCAPE in first and "order.placed" in first and "o-1" in first
    assert "from the standard library" in second
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)


def test_anything_but_a_terminal_gets_one_json_object_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = json_lines(log_through(io.StringIO(), None, monkeypatch))

    assert [(line["event"], line["level"]) for line in lines] == [
        ("order.placed", "info"),
        ("from the standard library", "warning"),
    ]
    assert lines[0]["order_id"] == "o-1"


def test_json_can_be_forced_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = json_lines(log_through(Terminal(), "json", monkeypatch))

    assert lines[0]["event"] == "order.placed"


def test_console_lines_can_be_forced_into_a_file_without_escape_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    text = log_through(io.StringIO(), "console", monkeypatch)

    assert "order.placed" in text and "order_id=o-1" in text
    assert ESCAPE not in text


def test_no_color_keeps_a_terminal_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Terminal()
    monkeypatch.setenv("NO_COLOR", "1")
    configure_logging(level="INFO", stream=stream)
    structlog.get_logger("shop.test").info("order.placed")

    assert "order.placed" in stream.getvalue()
    assert ESCAPE not in stream.getvalue()


@pytest.mark.parametrize(("value", "expected"), [("json", "json"), ("console", "console")])
def test_log_format_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: LogFormat
) -> None:
    monkeypatch.setenv("LOG_FORMAT", value)
    assert Settings().log_format == expected


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(log_format="yaml")
    assert [problem["loc"] for problem in refused.value.errors()] == [("log_format",)]


def test_log_format_is_unset_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert Settings().log_format is None
