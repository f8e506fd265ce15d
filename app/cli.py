"""The ``shop`` command: the shop's operator commands over :func:`create_app`.

A click group, not Flask's: Flask's adds ``run`` (which serves but never delivers events),
``shell``, its extensions' commands and ``--app``/``--debug`` options that mean nothing to a
shop operator, and loads the app even to list its commands. Every heavy import (Flask,
SQLAlchemy, the contexts) happens in the command that needs it, so ``shop --help`` and
``shop --version`` answer at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from app.cli_app import load_settings, refusal, script_info, unusable_files_named, with_app
from app.events_cli import events

if TYPE_CHECKING:
    from app.containers import ApplicationContainer
    from contexts.product.application.handlers import CreateProduct
    from contexts.user.application.handlers import RegisterUser

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_PRODUCTS = (
    ("MUG-001", "Enamel camping mug", "Holds 350 ml; survives the campfire.", "12.50", 40),
    ("TEE-BLK-M", "Black T-shirt, M", "Organic cotton.", "19.90", 25),
    ("BOOK-DDD", "Domain-Driven Design", "The blue book.", "54.00", 5),
    ("STICKER-01", "Laptop sticker", None, "2.00", 500),
)


class ShopGroup(click.Group):
    """Answers what an operator can fix (a database that does not answer, tables not made yet)
    in one line, as settings errors are, instead of a traceback through SQLAlchemy's stack."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            # Without SQLAlchemy imported no database was touched (a usage error, say): nothing
            # to explain, and nothing worth importing it for.
            if "sqlalchemy.exc" not in sys.modules:
                raise
            from infrastructure.db.failures import operator_message

            message = operator_message(error)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=ShopGroup)
@click.version_option(package_name="modular-shop", prog_name="modular-shop", message="%(prog)s %(version)s")
def main() -> None:
    """modular-shop: an online-shop backend (users, products, orders)."""


def _tracing_settings_or_usage_error() -> None:
    """The OTEL_* variables, checked once before serving (under --prod, before the workers fork,
    each of which would otherwise fail on them with a traceback)."""
    from infrastructure.observability.tracing import TracingMisconfigured, traces_exporters

    try:
        traces_exporters()
    except TracingMisconfigured as error:
        raise click.UsageError(str(error)) from error


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=lambda: os.environ.get("PORT") or "8000",  # a bad PORT is a usage error, as a bad --port is
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
@click.option(
    "--migrate",
    is_flag=True,
    help="First apply the served contexts' migrations, as `shop db upgrade` does (what `make run` uses).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, prod: bool, contexts: str | None, migrate: bool) -> None:
    """Serve the API and deliver events in the background (unless EVENTS_DISPATCH_IN_WEB is
    false): one threaded process by default, gunicorn's worker processes with --prod. SIGTERM
    or Ctrl-C stop it cleanly (exit status 0); a second Ctrl-C ends it at once (130)."""
    if contexts is not None:
        # Through the environment, so that gunicorn's workers read the same settings.
        os.environ["SERVED_CONTEXTS"] = contexts
    if prod and migrate:
        # Each worker builds its own app after the fork; the master has none to migrate with.
        raise click.UsageError("--migrate serves without --prod; with it, run `shop db upgrade` first")
    _tracing_settings_or_usage_error()
    if prod:
        from app.collector import paused_while_starting
        from infrastructure.observability.workers import MetricsFolderInUse, workers_metrics_dir

        try:
            with workers_metrics_dir():
                with paused_while_starting():  # what the master imports, its workers inherit
                    from app.production import ProductionServer

                # The master forks before any app exists; each worker builds its own. What a worker
                # could only fail on, and gunicorn would answer with a traceback per worker, is made
                # here once: the signing secret in the instance folder.
                settings = load_settings()
                with unusable_files_named():
                    settings.signing_secret()
                ProductionServer(settings, host=host, port=port).run()
        except MetricsFolderInUse as error:
            raise click.UsageError(str(error)) from error
        return
    # The app is built only now, after --contexts.
    app = script_info(ctx).load_app()
    from app.background import BackgroundWork
    from app.factory import container_of
    from app.serving import serve_threaded

    container = container_of(app)
    if migrate:
        # In this process rather than a `shop db upgrade` before it: one start-up instead of
        # two, which is most of the time `make run` takes to answer.
        _upgrade(container, "head")
    background = BackgroundWork(container) if container.settings().events_dispatch_in_web else None
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    if background:
        background.start()
    click.echo(f"modular-shop listening on http://{host}:{port}")
    try:
        serve_threaded(app, host, port)
    finally:
        if background:
            background.stop()


def _stop_on_signal(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM or Ctrl-C: a stop that was asked for, so the exit status is 0 (``make run``
    reports no error), after the dispatcher hands back what it has not started.

    A later SIGTERM is ignored: make sends its child one of its own after the one to the
    process group, and that must not cut the hand-back short. A second Ctrl-C is someone who
    will not wait for it: the process ends at once, as an interrupted one (status 130)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, _exit_now)
    raise SystemExit(0)


def _exit_now(_signum: int, _frame: FrameType | None) -> None:
    """The second Ctrl-C: ``os._exit``, as the threads still stopping would hold up a SystemExit."""
    os._exit(128 + signal.SIGINT)


main.add_command(events)


@main.command(
    "routes", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def routes(ctx: click.Context, arguments: tuple[str, ...]) -> None:
    """List the endpoints (Flask's `routes` command: --sort, --all-methods, --help)."""
    from flask.cli import routes_command

    script_info(ctx)  # where Flask's command finds the app
    with routes_command.make_context("routes", list(arguments), parent=ctx.parent) as flask_ctx:
        routes_command.invoke(flask_ctx)


@main.command("openapi")
def openapi() -> None:
    """Print the OpenAPI 3.1 document of the whole API (the same as GET /openapi.json), whichever
    contexts this process serves."""
    from app.api_docs import openapi_document

    # The document depends on no setting, but a bad one stops every command: no app is built,
    # no database touched.
    load_settings()
    click.echo(json.dumps(openapi_document(), indent=2))


@main.command("docs")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs") / "architecture",
    show_default=True,
    help="Where to write them.",
)
def docs(folder: Path) -> None:
    """Write the architecture documentation generated from the code: the context map (Mermaid), a
    page per context, and the AsyncAPI 3.0 catalogue of the events. A test fails when the
    committed files differ from what this writes."""
    from app.docs import write_docs

    for path in write_docs(folder):
        click.echo(f"wrote {path}")


@main.group("gateway")
def gateway() -> None:
    """A reverse proxy in front of the shop's processes, for a placement of the contexts."""


@gateway.command("nginx")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    required=True,
    metavar="[CONTEXTS=]URL",
    help="A process and the contexts it serves, as its SERVED_CONTEXTS says (e.g. product=http://10.0.0.2:8000;"
    " a URL alone: every context). Repeat for each process; the same contexts again add a server. The first"
    " also answers the documentation, /healthz and /readyz.",
)
@click.option("--listen", default="80", show_default=True, help="nginx's listen address: PORT or HOST:PORT.")
def gateway_nginx(upstreams: tuple[str, ...], listen: str) -> None:
    """Print an nginx configuration (for its http block) that routes each public path to the process
    serving its context and refuses /internal/, with the timeouts, keep-alive, body limit and
    TRUSTED_PROXY_HOPS of these settings (those of the processes behind it)."""
    from app.gateway import PlacementError, nginx_config, placement

    settings = load_settings()
    try:
        click.echo(nginx_config(placement(upstreams), settings, listen=listen), nl=False)
    except PlacementError as error:
        raise click.UsageError(str(error)) from None


@main.group("db")
def db() -> None:
    """Database migrations of every context."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_app
def db_upgrade(revision: str) -> None:
    """Apply every context's migrations up to REVISION (default: head)."""
    from flask import current_app

    from app.factory import container_of

    _upgrade(container_of(current_app), revision)


def _upgrade(container: ApplicationContainer, revision: str) -> None:
    """Migrate the databases of the contexts this process serves; `db upgrade` and `serve
    --migrate` both."""
    from app.containers import databases
    from app.migrations import upgrade_all

    upgrade_all(databases(container), revision)
    click.echo("databases are up to date")


@db.command("downgrade")
@click.argument("revision", default="base")
@with_app
def db_downgrade(revision: str) -> None:
    """Revert every context's migrations down to REVISION (default: base, i.e. empty)."""
    from flask import current_app

    from app.containers import databases
    from app.factory import container_of
    from app.migrations import downgrade_all

    downgrade_all(databases(container_of(current_app)), revision)
    click.echo(f"databases downgraded to {revision}")


def _served_here(command: str, context: str) -> None:
    """Stop ``command``, which changes ``context``, in a process that does not serve it: the
    change would miss its events' subscribers (and perhaps the context's real database)."""
    from flask import current_app

    from app.factory import container_of

    hosted = container_of(current_app).settings().hosted_contexts()
    if context not in hosted:
        raise refusal(command, hosted, f"the process serving {context}")


@main.group("users")
def users() -> None:
    """User administration."""


@users.command("create-admin")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", default="Administrator", show_default=True)
@with_app
def create_admin(email: str, password: str, name: str) -> None:
    """Create an administrator account that can log in with EMAIL and the password."""
    from flask import current_app
    from pydantic import ValidationError

    from app.containers import context_container
    from app.factory import container_of
    from contexts.user import http as user_http
    from contexts.user.application.handlers import RegisterUser
    from contexts.user.domain.exceptions import EmailAlreadyRegistered
    from contexts.user.domain.model import Role

    try:
        # The same rules as registration over HTTP.
        valid = user_http.RegistrationBody.model_validate({"email": email, "password": password, "name": name})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.ClickException(problems) from error
    _served_here("users create-admin", "user")
    register = context_container(container_of(current_app), "user").register_user()
    try:
        user = register(RegisterUser(email=valid.email, password=valid.password, name=valid.name, role=Role.ADMIN))
    except EmailAlreadyRegistered as error:
        # The operator may know what the public API does not say.
        raise click.ClickException(f"an account with email {error.email!r} already exists") from error
    click.echo(f"created admin {user.email} ({user.id})")


@main.command("seed-demo")
@with_app
def seed_demo() -> None:
    """Add a few products and a demo customer; running it again adds nothing twice.

    Each half is seeded where its context is served (products with product, the customer with
    user), so that its events reach their subscribers: with contexts served apart, run it in
    each of those processes."""
    from flask import current_app

    from app.containers import context_container
    from app.factory import container_of

    container = container_of(current_app)
    hosted = container.settings().hosted_contexts()
    if "product" not in hosted and "user" not in hosted:
        raise refusal(
            "seed-demo",
            hosted,
            "the process serving product (demo products) and of the one serving user (demo customer)",
        )
    if "product" in hosted:
        _seed_products(context_container(container, "product").create_product())
    else:
        click.echo("demo products: not here; run seed-demo with the settings of the process serving product")
    if "user" in hosted:
        _seed_customer(context_container(container, "user").register_user())
    else:
        click.echo("demo customer: not here; run seed-demo with the settings of the process serving user")


def _seed_products(create: Callable[[CreateProduct], object]) -> None:
    from contexts.product.application.handlers import CreateProduct
    from contexts.product.domain.exceptions import SkuAlreadyExists

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
    from contexts.user.application.handlers import RegisterUser
    from contexts.user.domain.exceptions import EmailAlreadyRegistered

    try:
        register(RegisterUser(email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo Customer"))
        click.echo("demo customer created")
    except EmailAlreadyRegistered:
        click.echo("demo customer exists already")
    click.echo(f"log in as the demo customer with email {DEMO_EMAIL} and password {DEMO_PASSWORD}")
