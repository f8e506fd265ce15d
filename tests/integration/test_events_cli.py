"""``shop events status|dead|retry`` as an operator uses them, on the app's own databases.

The commands run in process through Flask's CLI runner (which hands them this test's app);
each test makes dead letters by publishing a test event to a subscriber that fails, with
EVENTS_MAX_ATTEMPTS=1 so that one failed attempt is enough.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select, update

from app.cli import main
from app.containers import ApplicationContainer, databases
from app.factory import container_of, create_app
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from infrastructure.events.delivery import Delivery
from infrastructure.events.tables import DEAD, DONE, PENDING
from tests.conftest import Backend, settings_for, start_app, stop_app


@dataclass(frozen=True)
class Audited:
    TYPE: ClassVar[str] = "test.Audited"
    VERSION: ClassVar[int] = 1

    n: int


class AuditStoreDown(Exception):
    """What the failing test subscriber raises."""


class Subscribers:
    """Two failing-or-not test subscribers of ``test.Audited`` and one that always works."""

    def __init__(self) -> None:
        self.broken = {"test.archive": True, "test.index": True}
        self.handled: list[tuple[str, int]] = []

    def handler(self, name: str) -> Any:
        def handle(event: Audited, delivery: Delivery) -> None:
            if self.broken.get(name):
                raise AuditStoreDown(f"{name} cannot store event {event.n}")
            self.handled.append((name, event.n))

        return handle


@pytest.fixture
def app(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
    app = start_app(tmp_path / "instance", events_max_attempts=1)
    yield app
    stop_app(app)


@pytest.fixture
def container(app: Flask) -> ApplicationContainer:
    return container_of(app)


@pytest.fixture
def subscribers(container: ApplicationContainer) -> Subscribers:
    subscribers = Subscribers()
    for name in ("test.archive", "test.index", "test.mirror"):
        container.event_bus().subscribe(Audited, subscribers.handler(name), name=name)
    return subscribers


def shop_events(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(main, ["events", *args])


def publish(container: ApplicationContainer, *numbers: int) -> None:
    with container.order.uow() as uow:
        container.order.outbox().record(uow.session, [(f"audit-{n}", Audited(n)) for n in numbers])
        uow.commit()


def rows(container: ApplicationContainer, subscriber: str) -> list[Any]:
    d = ORDER_OUTBOX.deliveries
    with databases(container)["order"].session(write=False) as session:
        return list(session.execute(select(d).where(d.c.subscriber == subscriber).order_by(d.c.event_position)))


def status_table(output: str) -> dict[str, tuple[str, int, int, int]]:
    """``SOURCE SUBSCRIBER PENDING RETRYING DEAD OLDEST`` rows by subscriber."""
    header, *lines = output.strip().splitlines()
    assert header.split() == ["SOURCE", "SUBSCRIBER", "PENDING", "RETRYING", "DEAD", "OLDEST"]
    table = {}
    for line in lines:
        source, subscriber, pending, retrying, dead, _oldest = line.split()
        table[subscriber] = (source, int(pending), int(retrying), int(dead))
    return table


def dead_ids(output: str) -> list[str]:
    """The delivery ids that ``shop events dead`` lists, in its order."""
    ids = []
    for line in output.splitlines():
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        try:
            ids.append(str(uuid.UUID(first)))
        except ValueError:
            continue
    return ids


def test_status_counts_pending_retrying_and_dead_per_subscriber(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    assert shop_events(app, "status").output.strip().splitlines()[-1] == "no deliveries waiting"
    publish(container, 1, 2)
    container.dispatcher().run_until_idle()  # archive and index: two dead each; mirror: done
    subscribers.broken["test.index"] = False
    publish(container, 3)
    d = ORDER_OUTBOX.deliveries
    with databases(container)["order"].session(write=True) as session:  # one failed attempt, retry due later
        session.execute(
            update(d)
            .where(d.c.subscriber == "test.index", d.c.status == DEAD)
            .values(status=PENDING, available_at=datetime.now(timezone.utc) + timedelta(hours=1))
        )
        session.commit()

    result = shop_events(app, "status")

    assert result.exit_code == 0, result.output
    table = status_table(result.output)
    assert table["test.archive"] == ("order", 1, 0, 2)
    assert table["test.index"] == ("order", 1, 2, 0)
    assert table["test.mirror"] == ("order", 1, 0, 0)


def test_status_lists_only_subscribers_with_deliveries_waiting(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    subscribers.broken.update({"test.archive": False, "test.index": False})
    publish(container, 1)
    container.dispatcher().run_until_idle()

    assert shop_events(app, "status").output.strip().splitlines()[-1] == "no deliveries waiting"

    subscribers.broken["test.index"] = True
    publish(container, 2)
    container.dispatcher().run_until_idle()  # index: dead; the others: done

    assert status_table(shop_events(app, "status").output) == {"test.index": ("order", 0, 0, 1)}


def test_dead_lists_each_dead_letter_with_the_last_line_of_its_error(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    subscribers.broken["test.index"] = False
    publish(container, 7)
    container.dispatcher().run_until_idle()
    (letter,) = rows(container, "test.archive")

    short = shop_events(app, "dead")
    full = shop_events(app, "dead", "--full")

    assert short.exit_code == full.exit_code == 0
    assert dead_ids(short.output) == dead_ids(full.output) == [str(letter.id)]
    listing, error, count = short.output.strip().splitlines()
    assert "test.archive" in listing and "test.Audited" in listing and "attempts 1" in listing
    assert error.strip() == f"{__name__}.AuditStoreDown: test.archive cannot store event 7"
    assert count == "1 dead letter(s)"
    assert "Traceback (most recent call last):" in full.output
    assert "in handle" in full.output
    assert full.output.count("cannot store event 7") == 1
    assert "Traceback" not in short.output


def test_retry_makes_a_dead_letter_due_again_and_it_completes_once_fixed(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    publish(container, 1, 2)
    container.dispatcher().run_until_idle()
    first, second = rows(container, "test.archive")
    assert (first.status, second.status) == (DEAD, DEAD)

    result = shop_events(app, "retry", str(first.id))

    assert result.exit_code == 0, result.output
    assert "1 delivery(ies) due again" in result.output
    again, still_dead = rows(container, "test.archive")
    assert (again.status, again.attempts, still_dead.status) == (PENDING, 0, DEAD)
    assert again.available_at <= datetime.now(timezone.utc)
    subscribers.broken["test.archive"] = False
    container.dispatcher().run_until_idle()
    done, still_dead = rows(container, "test.archive")
    assert (done.status, done.attempts, done.last_error, still_dead.status) == (DONE, 1, None, DEAD)
    assert ("test.archive", 1) in subscribers.handled and ("test.archive", 2) not in subscribers.handled


def test_retry_all_dead_makes_every_dead_letter_due_again(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    publish(container, 1, 2)
    container.dispatcher().run_until_idle()
    assert len(dead_ids(shop_events(app, "dead").output)) == 4

    result = shop_events(app, "retry", "--all-dead")

    assert result.exit_code == 0, result.output
    assert "4 delivery(ies) due again" in result.output
    for name in ("test.archive", "test.index"):
        assert [(row.status, row.attempts) for row in rows(container, name)] == [(PENDING, 0)] * 2
    assert [row.status for row in rows(container, "test.mirror")] == [DONE] * 2
    subscribers.broken.clear()
    container.dispatcher().run_until_idle()
    assert shop_events(app, "dead").output.strip() == "0 dead letter(s)"


def test_retry_of_an_id_that_is_no_dead_letter_fails_with_a_message(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    publish(container, 1)
    container.dispatcher().run_until_idle()
    (done,) = rows(container, "test.mirror")
    (dead,) = rows(container, "test.archive")

    unknown = shop_events(app, "retry", str(uuid.uuid4()))
    completed = shop_events(app, "retry", str(done.id))
    mixed = shop_events(app, "retry", str(dead.id), str(uuid.uuid4()))

    assert (unknown.exit_code, completed.exit_code, mixed.exit_code) == (1, 1, 1)
    assert "1 of the IDs are not dead letters; retried 0" in unknown.output
    assert "1 of the IDs are not dead letters; retried 0" in completed.output
    assert "1 of the IDs are not dead letters; retried 1" in mixed.output
    assert rows(container, "test.mirror")[0].status == DONE


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--all-dead", "00000000-0000-0000-0000-000000000001"],
        ["--all-dead", "--event", "00000000-0000-0000-0000-000000000001"],
    ],
)
def test_retry_wants_ids_or_all_dead_not_both_nor_neither(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers, args: list[str]
) -> None:
    publish(container, 1)
    container.dispatcher().run_until_idle()

    result = shop_events(app, "retry", *args)

    assert result.exit_code == 2
    assert (
        "give delivery IDs and/or --event EVENT_ID (broker dead letters), or --all-dead; not both and not neither"
        in " ".join(result.output.split())
    )
    assert {row.status for row in rows(container, "test.archive")} == {DEAD}


def test_retry_refuses_what_is_not_an_id(app: Flask) -> None:
    result = shop_events(app, "retry", "not-a-uuid")

    assert result.exit_code == 2
    assert "not-a-uuid" in result.output


def test_retry_counts_an_id_given_twice_once(
    app: Flask, container: ApplicationContainer, subscribers: Subscribers
) -> None:
    publish(container, 1)
    container.dispatcher().run_until_idle()
    (dead,) = rows(container, "test.archive")

    result = shop_events(app, "retry", str(dead.id), str(dead.id))

    assert result.exit_code == 0, result.output
    assert "1 delivery(ies) due again" in result.output


@pytest.mark.parametrize("command", [["status"], ["dead"], ["retry", "--all-dead"]])
def test_a_database_that_was_never_migrated_is_explained_not_a_traceback(tmp_path: Path, command: list[str]) -> None:
    app = create_app(settings_for(tmp_path / "unmigrated"))
    try:
        result = app.test_cli_runner().invoke(main, ["events", *command])
    finally:
        stop_app(app)

    assert result.exit_code == 1
    assert "shop db upgrade" in result.output
    assert "Traceback" not in result.output
