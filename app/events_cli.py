"""``shop events ...``: what an operator needs to see and steer event delivery.

Imports what the commands need when they run, so that ``shop --help`` stays quick.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from types import FrameType
from typing import TYPE_CHECKING

import click

from app.cli_app import with_app

if TYPE_CHECKING:
    from infrastructure.events.outbox import Outbox


def _outboxes() -> tuple[Outbox, ...]:
    from flask import current_app

    from app.factory import container_of

    return container_of(current_app).dispatcher().outboxes


@contextmanager
def _database_errors_explained() -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as error:
        raise click.ClickException(
            f"the delivery records cannot be read ({type(error).__name__}); is the database up and "
            "migrated (`shop db upgrade`)?"
        ) from error


def _age(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = int((datetime.now(timezone.utc) - moment).total_seconds())
    return f"{seconds}s"


@click.group("events")
def events() -> None:
    """Event delivery: status, dead letters, retries, and the dispatcher as a process."""


@events.command("status")
@with_app
def status() -> None:
    """Pending, retrying and dead deliveries per subscriber, and the age of the oldest one;
    subscribers that have finished every delivery are not listed."""
    with _database_errors_explained():
        rows = [row for outbox in _outboxes() for row in outbox.status()]
    click.echo(f"{'SOURCE':<10} {'SUBSCRIBER':<52} {'PENDING':>8} {'RETRYING':>9} {'DEAD':>6}  OLDEST")
    for row in rows:
        click.echo(
            f"{row.context:<10} {row.subscriber:<52} {row.pending:>8} {row.retrying:>9} {row.dead:>6}"
            f"  {_age(row.oldest_incomplete)}"
        )
    if not rows:
        click.echo("no deliveries waiting")


@events.command("dead")
@click.option("--full", is_flag=True, help="print each error's whole traceback, not its last line")
@with_app
def dead(full: bool) -> None:
    """Deliveries that used up their attempts, with the error of the last one."""
    with _database_errors_explained():
        letters = [letter for outbox in _outboxes() for letter in outbox.dead_letters()]
    for letter in letters:
        error = (letter.last_error or "").strip()
        click.echo(
            f"{letter.id}  {letter.context}  {letter.subscriber}  {letter.event_type}  event {letter.event_id}"
            f"  attempts {letter.attempts}  recorded {letter.recorded_at.isoformat()}"
        )
        click.echo(f"    {error if full else error.splitlines()[-1] if error else '(no error kept)'}")
    click.echo(f"{len(letters)} dead letter(s)")


@events.command("retry")
@click.argument("ids", nargs=-1, type=click.UUID)
@click.option("--all-dead", is_flag=True, help="retry every dead letter")
@with_app
def retry(ids: tuple[uuid.UUID, ...], all_dead: bool) -> None:
    """Make dead deliveries (by ID, as `shop events dead` lists them) due again, attempts reset."""
    if bool(ids) == all_dead:
        raise click.UsageError("give delivery IDs or --all-dead, not both and not neither")
    wanted = set(ids)
    with _database_errors_explained():
        count = sum(outbox.retry(None if all_dead else wanted) for outbox in _outboxes())
    if wanted and count < len(wanted):
        raise click.ClickException(f"{len(wanted) - count} of the IDs are not dead letters; retried {count}")
    click.echo(f"{count} delivery(ies) due again")


@events.command("relay")
@with_app
def relay() -> None:
    """Run the dispatcher (and housekeeping) in this process until SIGTERM or Ctrl-C.

    For deployments that keep delivery out of the web workers (``EVENTS_DISPATCH_IN_WEB=false``).
    """
    from flask import current_app

    from app.background import BackgroundWork
    from app.factory import container_of

    work = BackgroundWork(container_of(current_app))
    stopping = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    work.start()
    click.echo("relaying events; stop with SIGTERM or Ctrl-C")
    stopping.wait()
    work.stop()
    click.echo("stopped; unfinished deliveries handed back")
