"""``shop events ...``: what an operator needs to see and steer event delivery.

Imports what the commands need when they run, so that ``shop --help`` stays quick. ``status``,
``dead`` and ``retry`` build no app: they read the delivery records of the publishing contexts
this process serves (user, product, order) and the broker's queues of the subscribers it
consumes (their dead-letter queues for ``dead`` and ``retry``), with the settings those need
(SERVED_CONTEXTS, databases, broker).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from types import FrameType
from typing import TYPE_CHECKING

import click

from app.cli_app import settings_named_when_invalid, with_app

if TYPE_CHECKING:
    from app.config import Settings
    from infrastructure.events.broker.layout import QueueLayout
    from infrastructure.events.outbox import Outbox


def _delivery_settings() -> Settings:
    """The settings of the app a test runner handed in, else those the delivery commands need
    (:class:`DeliverySettings`: no app is built, no secret of the calls between services asked)."""
    from flask.cli import ScriptInfo

    info = click.get_current_context().find_object(ScriptInfo)
    if info is not None:
        from app.factory import container_of

        return container_of(info.load_app()).settings()
    from app.config import DeliverySettings, read_settings

    with settings_named_when_invalid():
        return read_settings(kind=DeliverySettings)


@contextmanager
def _outboxes(settings: Settings) -> Iterator[list[Outbox]]:
    """The delivery records of this process's publishing contexts (user, product, order); none
    in a process serving none of them."""
    from app.containers import delivery_records

    with delivery_records(settings) as outboxes, _database_errors_explained():
        yield outboxes


@dataclass(frozen=True)
class _ConsumedQueues:
    """The broker queues of the subscribers this process consumes."""

    url: str
    layout: QueueLayout
    subscribers: tuple[str, ...]


def _consumed_queues(settings: Settings) -> _ConsumedQueues | None:
    """None in a process whose subscribers all take events published in it (the monolith)."""
    from app.containers import broker_layout_for, placement_of

    placement = placement_of(settings)
    consumed = placement.consumed()
    if not consumed:
        return None
    url = settings.events_broker_url_value()
    assert url is not None, "the settings require EVENTS_BROKER_URL where subscribers consume from the broker"
    return _ConsumedQueues(url, broker_layout_for(settings, placement), tuple(consumed))


@contextmanager
def _broker_errors_explained(url: str) -> Iterator[None]:
    """The broker failing (away, the connection lost, a copy not confirmed, an operation
    refused) is the operator's to fix, and said in one line; any other error is a fault of
    the shop's, and keeps its traceback for the bug report."""
    from infrastructure.events.broker.publisher import PublishFailed, channel_errors, connection_errors

    failures: tuple[type[BaseException], ...] = (*connection_errors(url), *channel_errors(url), PublishFailed)
    try:
        yield
    except failures as error:
        raise click.ClickException(f"the broker does not answer ({type(error).__name__}: {error})") from error


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
def status() -> None:
    """Pending, retrying and dead deliveries per subscriber, and the age of the oldest one
    (subscribers that have finished every delivery are not listed); and the broker queues of
    the subscribers this process consumes: messages ready (not those a consumer holds
    unacknowledged), consumers, messages held for a retry, dead-lettered."""
    from app.containers import delivery_records

    settings = _delivery_settings()
    with delivery_records(settings) as outboxes, _database_errors_explained():
        rows = [row for outbox in outboxes for row in outbox.ledger.status()]
    if outboxes:
        click.echo(f"{'SOURCE':<10} {'SUBSCRIBER':<52} {'PENDING':>8} {'RETRYING':>9} {'DEAD':>6}  OLDEST")
        for row in rows:
            click.echo(
                f"{row.context:<10} {row.subscriber:<52} {row.pending:>8} {row.retrying:>9} {row.dead:>6}"
                f"  {_age(row.oldest_incomplete)}"
            )
        if not rows:
            click.echo("no deliveries waiting")
    queues = _consumed_queues(settings)
    if queues is not None:
        _broker_queues(queues)


def _broker_queues(queues: _ConsumedQueues) -> None:
    """The broker's counts for the queues of the subscribers consumed here; a broker that does
    not answer fails the command, after the delivery records were shown."""
    from infrastructure.events.broker.layout import queue_status

    with _broker_errors_explained(queues.url):
        rows = queue_status(queues.url, queues.layout, queues.subscribers)
    click.echo(f"{'BROKER QUEUE':<63} {'READY':>8} {'CONSUMERS':>9} {'RETRYING':>8} {'DEAD-LETTERED':>13}")
    for queue in rows:
        if queue.ready is None:
            click.echo(f"{queue.queue:<63} {'(missing: no process declared it yet)':>32}")
            continue
        retrying = "-" if queue.retrying is None else str(queue.retrying)
        dead = "-" if queue.dead_lettered is None else str(queue.dead_lettered)
        click.echo(f"{queue.queue:<63} {queue.ready:>8} {queue.consumers:>9} {retrying:>8} {dead:>13}")
    for queue in rows:
        if queue.dead_consumers:
            _warn_consumed(queue.dead_queue, queue.dead_consumers, "counted")


@events.command("dead")
@click.option(
    "--full",
    is_flag=True,
    help="print each delivery's whole traceback, not its last line (a broker dead letter keeps only its error's repr)",
)
def dead(full: bool) -> None:
    """Deliveries that used up their attempts, with the error of the last one: those of the
    events this process's contexts publish, and the messages in the broker's dead-letter queues
    of the subscribers it consumes (listed, left where they are). The deliveries' total is
    printed before the broker is asked, so that it is there even if the broker fails."""
    settings = _delivery_settings()
    with _outboxes(settings) as outboxes:
        letters = [letter for outbox in outboxes for letter in outbox.ledger.dead_letters()]
    queues = _consumed_queues(settings)
    for letter in letters:
        click.echo(
            f"{letter.id}  {letter.context}  {letter.subscriber}  {letter.event_type}  event {letter.event_id}"
            f"  attempts {letter.attempts}  recorded {letter.recorded_at.isoformat()}"
        )
        _echo_error(letter.last_error, full)
    if queues is None:
        click.echo(f"{len(letters)} dead letter(s)")
        return
    if outboxes:
        click.echo(f"{len(letters)} dead delivery(ies)")
    from infrastructure.events.broker.dead_letters import dead_letters

    with _broker_errors_explained(queues.url), _dead_letters_busy_explained():
        found = dead_letters(queues.url, queues.layout, queues.subscribers)
    for broker_letter in found.letters:
        click.echo(
            f"broker  {broker_letter.subscriber}  {broker_letter.event_type or '-'}"
            f"  event {broker_letter.event_id or '-'}"
            f"  attempts {'-' if broker_letter.attempts is None else broker_letter.attempts}"
        )
        _echo_error(broker_letter.error, full)
    click.echo(f"{len(found.letters)} broker dead letter(s)")
    for queue, consumers in found.consumed:
        _warn_consumed(queue, consumers, "listed")


def _echo_error(error: str | None, full: bool) -> None:
    error = (error or "").strip()
    click.echo(f"    {error if full else error.splitlines()[-1] if error else '(no error kept)'}")


def _warn_consumed(queue: str, consumers: int, what: str) -> None:
    """The broker counts only the messages of a queue that no consumer holds: a dead-letter
    queue is for an operator to look at, and something consuming it hides its letters."""
    click.echo(f"warning: {queue} has {consumers} consumer(s): their messages are not {what}", err=True)


@contextmanager
def _dead_letters_busy_explained() -> Iterator[None]:
    from infrastructure.events.broker.dead_letters import Busy

    try:
        yield
    except Busy as busy:
        raise click.ClickException(
            f"another `shop events dead|retry` is running on {busy.queue}; try again once it is done"
        ) from busy


@events.command("retry")
@click.argument("ids", nargs=-1, type=click.UUID)
@click.option(
    "--event",
    "event_ids",
    multiple=True,
    type=click.UUID,
    metavar="EVENT_ID",
    help="a broker dead letter to send back, by its event ID (repeatable)",
)
@click.option("--all-dead", is_flag=True, help="retry every dead letter, deliveries and broker dead letters")
def retry(ids: tuple[uuid.UUID, ...], event_ids: tuple[uuid.UUID, ...], all_dead: bool) -> None:
    """Make dead deliveries (by ID, as `shop events dead` lists them) due again, attempts reset;
    a broker dead letter (by its event ID, with --event) goes back to its subscriber's queue,
    attempts reset. Running it twice is harmless: the inbox makes a repeated event's second run
    do nothing. The deliveries made due are reported before the broker is asked."""
    if bool(ids or event_ids) == all_dead:
        raise click.UsageError(
            "give delivery IDs and/or --event EVENT_ID (broker dead letters), or --all-dead; not both and not neither"
        )
    deliveries = set(ids)
    events_wanted = {str(each) for each in event_ids}
    settings = _delivery_settings()
    count = 0
    if all_dead or deliveries:
        with _outboxes(settings) as outboxes:
            count = sum(outbox.ledger.retry(None if all_dead else deliveries) for outbox in outboxes)
        if outboxes:
            click.echo(f"{count} delivery(ies) due again")
    queues = _consumed_queues(settings)
    moved = 0
    if queues is not None and (all_dead or events_wanted):
        from infrastructure.events.broker.dead_letters import retry_dead_letters

        with _broker_errors_explained(queues.url), _dead_letters_busy_explained():
            back = retry_dead_letters(
                queues.url, queues.layout, queues.subscribers, None if all_dead else events_wanted
            )
        moved = len(back.letters)
        click.echo(f"{moved} broker dead letter(s) back in their subscribers' queues")
        for queue, consumers in back.consumed:
            _warn_consumed(queue, consumers, "retried")
        events_wanted -= {letter.event_id for letter in back.letters if letter.event_id is not None}
    missing = 0 if all_dead else len(deliveries) - count + len(events_wanted)
    if missing:
        raise click.ClickException(f"{missing} of the IDs are not dead letters; retried {count + moved}")


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
