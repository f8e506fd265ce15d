"""Event dispatchers in several processes over one outbox, as in every worker under gunicorn.

Each child process (``spawn``) runs a :class:`Dispatcher` on the same outbox tables, with no
inbox: the claims alone must keep two processes from running one (event, subscriber) at the
same time, and a SIGKILLed process's claims must be taken over once their lease lapses. The
subscribers append a line when they start and when they finish a delivery to one file shared
by every process (``O_APPEND``, one ``write`` per line); the tests compare those runs with the
delivery rows. Children get plain strings (URL, schema, paths): the fixtures live in pytest.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from sqlalchemy import MetaData, select

from infrastructure.db.database import Database, create_schema
from infrastructure.events.bus import EventBus
from infrastructure.events.delivery import Delivery
from infrastructure.events.dispatcher import Dispatcher
from infrastructure.events.outbox import Outbox
from infrastructure.events.tables import DONE, PENDING, outbox_tables
from infrastructure.logging import configure_logging

if TYPE_CHECKING:
    from tests.conftest import Backend

pytestmark = pytest.mark.slow

# The order context's database (the backend fixture drops its schema afterwards), holding an
# outbox of the test's own: only the test's dispatchers and subscribers ever touch it.
CONTEXT = "order"
METADATA = MetaData()
TABLES = outbox_tables(METADATA, "proof")
SUBSCRIBERS = ("proof.first", "proof.second")
EVENTS = 200
AGGREGATES = 25  # each subscriber takes one aggregate's events in order: 25 run side by side
LEASE = timedelta(seconds=2)
POLL_SECONDS = 0.05
RUN_SECONDS = 0.03  # long enough for deliveries in different processes to run at the same time
DEADLINE_SECONDS = 60.0

Pair = tuple[str, str]  # (event id, subscriber): what must never run twice at once


@dataclass(frozen=True)
class Pinged:
    TYPE: ClassVar[str] = "proof.Pinged"
    VERSION: ClassVar[int] = 1

    n: int


# -- the child processes -------------------------------------------------------------------


@dataclass(frozen=True)
class ChildPlan:
    """What a child process needs, as plain picklable values."""

    url: str
    schema: str | None
    runs_path: str
    log_path: str
    workers: int
    stuck: bool  # its subscribers never return: a worker hung in its deliveries


class RunLog:
    """Start and finish lines of deliveries, appended by every process to one file: with
    ``O_APPEND`` each short ``write`` lands whole, after the others."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, **fields: Any) -> None:
        os.write(self._fd, (json.dumps(fields) + "\n").encode())


def recording_subscriber(runs: RunLog, *, stuck: bool) -> Callable[[Pinged, Delivery], None]:
    def deliver(_event: Pinged, delivery: Delivery) -> None:
        run = uuid.uuid4().hex
        runs.append(
            phase="start", run=run, event=str(delivery.event_id), subscriber=delivery.subscriber,
            attempt=delivery.attempt, pid=os.getpid(), at=time.time_ns(),
        )  # fmt: skip
        if stuck:
            threading.Event().wait()
        time.sleep(RUN_SECONDS)
        runs.append(phase="finish", run=run, at=time.time_ns())

    return deliver


def run_dispatcher(plan: ChildPlan, ready: ProcessEvent) -> None:
    """A child process's whole life: dispatch from the shared outbox until SIGTERM, then stop
    as a worker does. The signal, not a shared object, says stop: a process killed while
    waiting on a ``multiprocessing.Event`` would leave the next ``set()`` waiting for it for ever."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before any thread: theirs too
    log = os.open(plan.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    configure_logging(level="INFO", log_format="console")
    database = Database(CONTEXT, plan.url, schema=plan.schema)
    bus = EventBus()
    runs = RunLog(plan.runs_path)
    for name in SUBSCRIBERS:
        bus.subscribe(Pinged, recording_subscriber(runs, stuck=plan.stuck), name=name)
    dispatcher = Dispatcher(
        [Outbox("proof", database, TABLES, bus)],
        bus,
        workers=plan.workers,
        lease=LEASE,
        poll_interval=POLL_SECONDS,
    )
    dispatcher.start()
    ready.set()
    signal.sigwait({signal.SIGTERM})
    dispatcher.stop()
    database.dispose()


@dataclass(frozen=True)
class Child:
    name: str
    process: BaseProcess
    ready: ProcessEvent
    log_path: Path

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


class Children:
    """Dispatcher processes on one database; on leaving, every one is reaped and its output
    printed (pytest shows it when the test fails)."""

    def __init__(self, folder: Path, database: Database) -> None:
        self._folder = folder
        self._url = database.url.render_as_string(hide_password=False)
        self._schema = database.schema
        self._spawn = multiprocessing.get_context("spawn")
        self.started: list[Child] = []
        self.runs_path = folder / "runs.jsonl"

    def start(self, name: str, *, workers: int, stuck: bool = False) -> Child:
        log_path = self._folder / f"child-{name}.log"
        plan = ChildPlan(self._url, self._schema, str(self.runs_path), str(log_path), workers, stuck)
        ready = self._spawn.Event()
        process = self._spawn.Process(target=run_dispatcher, args=(plan, ready), name=f"dispatcher-{name}")
        process.start()
        child = Child(name, process, ready, log_path)
        self.started.append(child)
        return child

    def wait_until_dispatching(self) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        for child in self.started:
            while not child.ready.wait(0.05):
                assert child.process.is_alive(), f"{child.name} died starting (exit code {child.process.exitcode})"
                assert time.monotonic() < deadline, f"{child.name} did not start its dispatcher"

    def stop(self) -> None:
        """Stop them as gunicorn stops a worker (SIGTERM): running deliveries finish first."""
        for child in self.started:
            child.process.terminate()
        for child in self.started:
            child.process.join(DEADLINE_SECONDS)

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for child in self.started:
            child.process.terminate()
        for child in self.started:
            child.process.join(10)
            if child.process.is_alive():  # stuck in its deliveries
                child.process.kill()
                child.process.join()
        for child in self.started:
            output = child.log_path.read_text() if child.log_path.exists() else "(nothing)"
            print(f"--- {child.name} (pid {child.process.pid}, exit code {child.process.exitcode}) ---\n{output}")


# -- what the processes did ----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One subscriber call; ``finished`` is None for a call its process never returned from."""

    event: str
    subscriber: str
    attempt: int  # as the dispatcher handed it to the subscriber
    pid: int
    started: int
    finished: int | None

    @property
    def pair(self) -> Pair:
        return (self.event, self.subscriber)


def read_runs(path: Path) -> list[Run]:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    finished = {line["run"]: line["at"] for line in lines if line["phase"] == "finish"}
    return [
        Run(line["event"], line["subscriber"], line["attempt"], line["pid"], line["at"], finished.get(line["run"]))
        for line in lines
        if line["phase"] == "start"
    ]


def overlapping(runs: list[Run], *, unfinished_end: int | None = None) -> list[tuple[Run, Run]]:
    """Runs of one (event, subscriber) that were under way at the same time. A run that never
    finished lasted until ``unfinished_end`` (its process was killed then), or for ever."""
    by_pair: defaultdict[Pair, list[Run]] = defaultdict(list)
    for run in runs:
        by_pair[run.pair].append(run)
    found = []
    for pair_runs in by_pair.values():
        ordered = sorted(pair_runs, key=lambda run: run.started)
        for earlier, later in itertools.pairwise(ordered):
            end = earlier.finished if earlier.finished is not None else unfinished_end
            if end is None or later.started < end:
                found.append((earlier, later))
    return found


def assert_none_at_once(overlaps: list[tuple[Run, Run]]) -> None:
    assert not overlaps, f"{len(overlaps)} times one (event, subscriber) ran twice at once, first: {overlaps[0]}"


def deliveries(database: Database) -> list[Any]:
    d, o = TABLES.deliveries, TABLES.outbox
    query = select(d.c.subscriber, d.c.status, d.c.attempts, d.c.claimed_by, d.c.claimed_until, o.c.event_id).join(
        o, o.c.position == d.c.event_position
    )
    with database.session(write=False) as session:
        return list(session.execute(query))


def pair_of(row: Any) -> Pair:
    return (str(row.event_id), row.subscriber)


def process_of(owner: str | None) -> int | None:
    """The process id in a dispatcher's owner id, ``<host>:<pid>:<hex>``."""
    return int(owner.rsplit(":", 2)[1]) if owner is not None else None


def claimed_by_process(database: Database, pid: int) -> dict[Pair, Any]:
    """The pending deliveries claimed by process ``pid``."""
    return {
        pair_of(row): row for row in deliveries(database) if row.status == PENDING and process_of(row.claimed_by) == pid
    }


def all_done(database: Database) -> bool:
    return {row.status for row in deliveries(database)} == {DONE}


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


# -- setup ---------------------------------------------------------------------------------


class EverySubscriber:
    """The publisher's view of who listens: both test subscribers take every event."""

    def subscribers(self, event_type: str) -> list[str]:
        return list(SUBSCRIBERS)


@pytest.fixture
def database(backend: Backend, tmp_path: Path) -> Iterator[Database]:
    """The outbox's database on the current backend, with just the outbox tables."""
    database = backend.database(CONTEXT, tmp_path)
    with database.connect(write=True) as connection:
        create_schema(connection, database.schema)
        METADATA.create_all(connection)
        connection.commit()
    yield database
    database.dispose()


def publish(database: Database) -> None:
    """Record every event in one transaction, once all dispatchers poll: they share from the start."""
    outbox = Outbox("proof", database, TABLES, EverySubscriber())
    with database.session(write=True) as session:
        outbox.record(session, [(f"aggregate-{n % AGGREGATES}", Pinged(n)) for n in range(EVENTS)])
        session.commit()


# -- the proofs ----------------------------------------------------------------------------


def test_dispatchers_in_three_processes_share_the_deliveries_and_never_run_one_twice_at_once(
    database: Database, tmp_path: Path
) -> None:
    with Children(tmp_path, database) as children:
        for name in ("a", "b", "c"):
            children.start(name, workers=3)
        children.wait_until_dispatching()
        publish(database)
        eventually(lambda: all_done(database), f"all {EVENTS * len(SUBSCRIBERS)} deliveries to be done")
        children.stop()

    assert [child.process.exitcode for child in children.started] == [0, 0, 0], "each stopped cleanly"
    runs = read_runs(children.runs_path)
    assert_none_at_once(overlapping(runs))
    rows = deliveries(database)
    assert len(rows) == EVENTS * len(SUBSCRIBERS)
    assert {(row.status, row.attempts) for row in rows} == {(DONE, 1)}
    assert {run.attempt for run in runs} == {1}, "each subscriber was told it ran its delivery's first attempt"
    assert Counter(run.pair for run in runs) == Counter(pair_of(row) for row in rows), "each ran exactly once"
    assert {run.pair: run.pid for run in runs} == {pair_of(row): process_of(row.claimed_by) for row in rows}, (
        "a done delivery names the process that delivered it"
    )
    assert all(run.finished is not None for run in runs)
    per_process = Counter(run.pid for run in runs)
    print(f"deliveries per process: {dict(per_process)}")
    assert set(per_process) <= {child.pid for child in children.started}
    assert len(per_process) > 1, "the work was shared between processes"


def test_the_claims_of_a_sigkilled_process_are_taken_over_by_the_others_once_their_lease_lapses(
    database: Database, tmp_path: Path
) -> None:
    """The victim's subscribers hang, so at the kill it holds claims both running and queued.

    While it lives it renews them: they stay its own past their first lease. Once it is
    killed, they lapse and the survivors deliver them, none started before the kill.
    """
    with Children(tmp_path, database) as children:
        victim = children.start("victim", workers=2, stuck=True)
        survivors = [children.start(name, workers=3) for name in ("a", "b")]
        children.wait_until_dispatching()
        publish(database)

        def victim_runs() -> list[Run]:
            return [run for run in read_runs(children.runs_path) if run.pid == victim.pid]

        eventually(lambda: bool(victim_runs()), "the victim to start delivering")
        held = claimed_by_process(database, victim.pid)
        assert {run.pair for run in victim_runs()} <= set(held), "a process holds the claims of what it runs"
        first_lease_ends = max(row.claimed_until for row in held.values())

        def renewed_past_first_lease() -> bool:
            now_held = claimed_by_process(database, victim.pid)
            assert set(held) <= set(now_held), "claims of a live process were taken while it renewed them"
            return bool(min(now_held[pair].claimed_until for pair in held) >= first_lease_ends + LEASE)

        eventually(renewed_past_first_lease, "the victim's claims to outlive their first lease")
        # Read before the kill, not after: once dead, its leases may lapse before a later read.
        # Stuck, it gives up none of them in between.
        orphaned = claimed_by_process(database, victim.pid)
        killed_at = time.time_ns()
        os.kill(victim.pid, signal.SIGKILL)
        victim.process.join(DEADLINE_SECONDS)
        eventually(lambda: all_done(database), "every delivery to be done, the victim's claims included")
        children.stop()

    assert victim.process.exitcode == -signal.SIGKILL
    assert [survivor.process.exitcode for survivor in survivors] == [0, 0], "the survivors stopped cleanly"
    runs = read_runs(children.runs_path)
    killed_runs = [run for run in runs if run.pid == victim.pid]
    assert killed_runs and all(run.finished is None for run in killed_runs), "it died inside its deliveries"
    assert {run.pair for run in killed_runs} <= set(orphaned)
    assert_none_at_once(overlapping(runs, unfinished_end=killed_at))
    rows = deliveries(database)
    assert {row.status for row in rows} == {DONE}
    survivor_pids = {survivor.pid for survivor in survivors}
    assert {process_of(row.claimed_by) for row in rows if pair_of(row) in orphaned} <= survivor_pids
    taken_over = [run for run in runs if run.pair in orphaned and run.pid != victim.pid]
    assert {run.pair for run in taken_over if run.finished is not None} == set(orphaned), "all were delivered"
    assert {run.pid for run in taken_over} <= survivor_pids
    assert min(run.started for run in taken_over) > killed_at, "none was started while the victim lived"
    print(
        f"victim held {len(orphaned)} claims ({len(killed_runs)} running) when killed; "
        f"deliveries per survivor: {dict(Counter(run.pid for run in runs if run.pid in survivor_pids))}"
    )
