"""A ``shop`` process imports and builds its app with the garbage collector paused, and freezes
what it built (``app/collector.py``).

``gc.freeze`` itself is replaced by a recorder here: frozen, the test process's garbage of the
moment would never be collected, nor its finalizers (and their ResourceWarnings) run.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from gunicorn.app.base import BaseApplication

import app.factory
from app import cli_app, collector
from app.cli import main
from app.collector import paused_while_starting
from app.config import Settings
from app.production import ProductionServer


@pytest.fixture(autouse=True)
def freezes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Each ``gc.freeze()`` call, as whether the collector was on at the time; the collector on
    again after the test, whatever it did."""
    calls: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(gc.isenabled()))
    yield calls
    gc.enable()


def test_nothing_is_collected_while_starting_and_what_was_built_is_frozen_after(freezes: list[bool]) -> None:
    with paused_while_starting():
        assert not gc.isenabled()
        assert freezes == []
    assert freezes == [False], "frozen once, before the collector is back"
    assert gc.isenabled()


def test_a_pause_inside_another_leaves_the_collector_paused_for_the_outer_one() -> None:
    with paused_while_starting():
        with paused_while_starting():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_back_when_building_fails() -> None:
    with pytest.raises(RuntimeError), paused_while_starting():
        raise RuntimeError("bad settings")
    assert gc.isenabled()


def app_recording_the_collector(seen: list[bool]) -> Any:
    def create_app() -> Flask:
        seen.append(gc.isenabled())
        return Flask("recorded")

    return create_app


def test_a_commands_app_and_a_gunicorn_workers_app_are_built_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, freezes: list[bool]
) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(app.factory, "create_app", app_recording_the_collector(seen))
    monkeypatch.setattr("app.production.create_app", app_recording_the_collector(seen))

    cli_app._create_app()
    ProductionServer(Settings(instance_path=tmp_path), host="127.0.0.1", port=8000).load()

    assert seen == [False, False]
    assert freezes == [False, False]
    assert gc.isenabled()


def test_serve_prod_imports_what_its_workers_inherit_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, freezes: list[bool]
) -> None:
    """The gunicorn master imports the shop (``app.production``) before it forks: paused, then
    frozen, so the workers start from frozen pages."""
    seen: list[object] = []

    @contextmanager
    def watched() -> Iterator[None]:
        with paused_while_starting():
            yield
            seen.append(("imported" if "app.production" in sys.modules else "not imported", gc.isenabled()))

    monkeypatch.setattr(collector, "paused_while_starting", watched)
    monkeypatch.delitem(sys.modules, "app.production")  # imported again by the command, as in a new process
    monkeypatch.setattr(BaseApplication, "run", lambda self: seen.append("gunicorn runs"))

    result = CliRunner().invoke(main, ["serve", "--prod"], env={"INSTANCE_PATH": str(tmp_path)})

    assert result.exit_code == 0, result.output
    assert seen == [("imported", False), "gunicorn runs"]
    assert freezes == [False]
