"""How a ``shop`` command gets the app, without importing it until a command needs it.

``shop --help`` and ``shop --version`` answer from click alone; the app (settings, every
context, Flask, SQLAlchemy) is imported and built only by the commands that use it. Flask's
``ScriptInfo`` still carries it, so Flask's own commands (``routes``) and its test runner
(``app.test_cli_runner()``, which hands in the test's app) work as under Flask's CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from flask import Flask
    from flask.cli import ScriptInfo

    from app.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def settings_named_when_invalid() -> Iterator[None]:
    """A bad setting stops the command with a message naming each one (never its value,
    which may be a secret) instead of a traceback."""
    from pydantic import ValidationError

    from app.config import settings_problems

    try:
        yield
    except ValidationError as error:
        raise click.ClickException(f"invalid settings:\n{settings_problems(error)}") from None


@contextmanager
def unusable_files_named() -> Iterator[None]:
    """The instance folder (generated secret, SQLite files) that cannot be made or written is
    one line naming it, not a traceback."""
    try:
        yield
    except OSError as error:
        raise click.ClickException(f"cannot use {error.filename}: {error.strerror}") from None


def refusal(command: str, served: Sequence[str], where: str) -> click.ClickException:
    """The one-line error of a command this process is not the one to run: what it serves, and
    with whose settings to run ``command`` (``where``) instead."""
    return click.ClickException(
        f"this process serves {', '.join(served)} (SERVED_CONTEXTS): run `shop {command}` with the settings of {where}"
    )


def load_settings() -> Settings:
    from app.config import read_settings

    with settings_named_when_invalid():
        return read_settings()


def _create_app() -> Flask:
    from app.collector import paused_while_starting

    with paused_while_starting():
        from app.factory import create_app

        with settings_named_when_invalid(), unusable_files_named():
            return create_app()


def script_info(ctx: click.Context) -> ScriptInfo:
    """The ``ScriptInfo`` of this invocation: the one a test runner passed in, else one that
    builds the shop's app, kept on the root context for Flask's commands to find."""
    from flask.cli import ScriptInfo

    info = ctx.find_object(ScriptInfo)
    if info is None:
        info = ScriptInfo(create_app=_create_app, set_debug_flag=False)
        ctx.find_root().obj = info
    return info


def with_app(command: F) -> F:
    """Run ``command`` inside the app's context, as Flask's ``with_appcontext`` does, building
    the app only now that the command runs."""

    @click.pass_context
    def run_in_app(ctx: click.Context, /, *args: Any, **kwargs: Any) -> Any:
        from flask import current_app

        if not current_app:
            ctx.with_resource(script_info(ctx).load_app().app_context())
        return ctx.invoke(command, *args, **kwargs)

    return functools.update_wrapper(run_in_app, command)  # type: ignore[return-value]
