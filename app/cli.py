"""The ``shop`` command: Flask's CLI over :func:`create_app`, plus the shop's own commands."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import FrameType
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, ScriptInfo, pass_script_info, with_appcontext
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from werkzeug.serving import WSGIRequestHandler, run_simple

from app.api_docs import openapi_document
from app.background import BackgroundWork
from app.config import Settings, read_settings, settings_problems
from app.containers import databases, elsewhere
from app.events_cli import events
from app.factory import container_of, create_app
from app.migrations import downgrade_all, upgrade_all
from app.production import ProductionServer
from contexts.product.application.handlers import CreateProduct
from contexts.product.domain.exceptions import SkuAlreadyExists
from contexts.user import http as user_http
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.exceptions import EmailAlreadyRegistered
from contexts.user.domain.model import Role
from infrastructure.database_failures import operator_message

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_PRODUCTS = (
    ("MUG-001", "Enamel camping mug", "Holds 350 ml; survives the campfire.", "12.50", 40),
    ("TEE-BLK-M", "Black T-shirt, M", "Organic cotton.", "19.90", 25),
    ("BOOK-DDD", "Domain-Driven Design", "The blue book.", "54.00", 5),
    ("STICKER-01", "Laptop sticker", None, "2.00", 500),
)


@contextmanager
def _settings_named_when_invalid() -> Iterator[None]:
    """A bad setting stops the command with a message naming each one (never its value,
    which may be a secret) instead of a traceback."""
    try:
        yield
    except ValidationError as error:
        raise click.ClickException(f"invalid settings:\n{settings_problems(error)}") from None


def load_settings() -> Settings:
    with _settings_named_when_invalid():
        return read_settings()


@contextmanager
def _unusable_files_named() -> Iterator[None]:
    """The instance folder (generated secret, SQLite files) that cannot be made or written is
    one line naming it, not a traceback."""
    try:
        yield
    except OSError as error:
        raise click.ClickException(f"cannot use {error.filename}: {error.strerror}") from None


def _create_app() -> Flask:
    with _settings_named_when_invalid(), _unusable_files_named():
        return create_app()


class ShopGroup(FlaskGroup):
    """Flask's CLI group, answering what an operator can fix (a database that does not answer,
    tables not made yet) in one line, as settings errors are, instead of a traceback through
    SQLAlchemy's stack."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as error:
            message = operator_message(error)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=ShopGroup, create_app=_create_app, load_dotenv=False)
def main() -> None:
    """modular-shop: an online-shop backend (users, products, orders)."""


@main.command("serve", with_appcontext=False)  # the app is built below, after --contexts
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=lambda: int(os.environ.get("PORT", "8000")),
    show_default="$PORT or 8000",
)
@click.option(
    "--prod",
    is_flag=True,
    help="Serve with gunicorn: WEB_WORKERS processes of WEB_THREADS threads, each delivering events.",
)
@click.option(
    "--contexts",
    metavar="NAMES",
    help="Serve only these contexts (comma-separated, e.g. product); the same as SERVED_CONTEXTS.",
)
@pass_script_info
def serve(info: ScriptInfo, host: str, port: int, prod: bool, contexts: str | None) -> None:
    """Serve the API and deliver events in the background (unless EVENTS_DISPATCH_IN_WEB is
    false): one threaded process by default, gunicorn's worker processes with --prod."""
    if contexts is not None:
        # Through the environment, so that gunicorn's workers read the same settings.
        os.environ["SERVED_CONTEXTS"] = contexts
    if prod:
        # The master forks before any app exists; each worker builds its own. What a worker
        # could only fail on, and gunicorn would answer with a traceback per worker, is made
        # here once: the signing secret in the instance folder.
        settings = load_settings()
        with _unusable_files_named():
            settings.signing_secret()
        ProductionServer(settings, host=host, port=port).run()
        return
    app = info.load_app()
    container = container_of(app)
    background = BackgroundWork(container) if container.settings().events_dispatch_in_web else None
    # SIGTERM unwinds like Ctrl-C, so the dispatcher hands back what it has not started.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    if background:
        background.start()
    click.echo(f"modular-shop listening on http://{host}:{port}")
    try:
        # Flask's app.run refuses to start under its own CLI; Werkzeug's server is what it would run.
        run_simple(
            host,
            port,
            app,
            threaded=True,
            use_reloader=False,
            use_debugger=False,
            request_handler=_UnversionedRequestHandler,
        )
    finally:
        if background:
            # A second SIGTERM must not cut the hand-back of queued deliveries short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            background.stop()


class _UnversionedRequestHandler(WSGIRequestHandler):
    """Names the server in the ``Server`` header without its or Python's version, which would
    tell an attacker which published flaws to try (gunicorn, under --prod, sends no version)."""

    def version_string(self) -> str:
        return "Werkzeug"


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


main.add_command(events)


@main.command("openapi")
@with_appcontext
def openapi() -> None:
    """Print the OpenAPI 3.1 document of the API (the same as GET /openapi.json)."""
    click.echo(json.dumps(openapi_document(current_app), indent=2))


@main.group("db")
def db() -> None:
    """Database migrations of every context."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply every context's migrations up to REVISION (default: head)."""
    upgrade_all(databases(container_of(current_app)), revision)
    click.echo("databases are up to date")


@db.command("downgrade")
@click.argument("revision", default="base")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert every context's migrations down to REVISION (default: base, i.e. empty)."""
    downgrade_all(databases(container_of(current_app)), revision)
    click.echo(f"databases downgraded to {revision}")


def _served_here(*contexts: str) -> None:
    """Stop a command that changes ``contexts`` in a process that does not serve them: the
    change would miss its events' subscribers (and perhaps the context's real database)."""
    hosted = container_of(current_app).settings().hosted_contexts()
    for context in contexts:
        if context not in hosted:
            raise click.ClickException(elsewhere(context))


@main.group("users")
def users() -> None:
    """User administration."""


@users.command("create-admin")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", default="Administrator", show_default=True)
@with_appcontext
def create_admin(email: str, password: str, name: str) -> None:
    """Create an administrator account that can log in with EMAIL and the password."""
    try:
        # The same rules as registration over HTTP.
        valid = user_http.RegistrationBody.model_validate({"email": email, "password": password, "name": name})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.ClickException(problems) from error
    _served_here("user")
    register = container_of(current_app).user.register_user()
    try:
        user = register(RegisterUser(email=valid.email, password=valid.password, name=valid.name, role=Role.ADMIN))
    except EmailAlreadyRegistered as error:
        # The operator may know what the public API does not say.
        raise click.ClickException(f"an account with email {error.email!r} already exists") from error
    click.echo(f"created admin {user.email} ({user.id})")


@main.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Add a few products and a demo customer; running it again adds nothing twice.

    Each half is seeded where its context is served (products with product, the customer with
    user), so that its events reach their subscribers: with contexts served apart, run it in
    each of those processes."""
    container = container_of(current_app)
    hosted = container.settings().hosted_contexts()
    if "product" not in hosted and "user" not in hosted:
        raise click.ClickException(
            "this process serves neither the product nor the user context (SERVED_CONTEXTS): run seed-demo with"
            " the settings of the process serving product (demo products) and of the one serving user (demo customer)"
        )
    if "product" in hosted:
        _seed_products(container.product.create_product())
    else:
        click.echo("demo products: not here; run seed-demo with the settings of the process serving product")
    if "user" in hosted:
        _seed_customer(container.user.register_user())
    else:
        click.echo("demo customer: not here; run seed-demo with the settings of the process serving user")


def _seed_products(create: Callable[[CreateProduct], object]) -> None:
    for sku, name, description, price, stock in DEMO_PRODUCTS:
        try:
            create(
                CreateProduct(
                    sku=sku,
                    name=name,
                    description=description,
                    price=Decimal(price),
                    currency="USD",
                    initial_stock=stock,
                )
            )
            click.echo(f"product {sku} created")
        except SkuAlreadyExists:
            click.echo(f"product {sku} exists already")


def _seed_customer(register: Callable[[RegisterUser], object]) -> None:
    try:
        register(RegisterUser(email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo Customer"))
        click.echo("demo customer created")
    except EmailAlreadyRegistered:
        click.echo("demo customer exists already")
    click.echo(f"log in as the demo customer with email {DEMO_EMAIL} and password {DEMO_PASSWORD}")
