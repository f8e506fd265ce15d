"""How many events per second the dispatcher delivers on the embedded default (SQLite files).

Records N events of a bench-only type in the user context's outbox (one no-op subscriber, so
one delivery each), then times how long the running dispatcher takes until every delivery is
done. The baseline, measured in the same run, is what the durability costs compared with:
calling the same no-op subscriber directly for the same events (the old in-process publish).

    LOG_LEVEL=ERROR .venv/bin/python bench/dispatcher_throughput.py [--events 5000] [--workers 1 4 8]

``--profile`` profiles each of the dispatcher's threads while it delivers (cProfile on the
thread's own CPU clock, so time spent waiting for the GIL or a lock is not counted) and prints
the top functions of the loop thread and of the workers.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import literal, literal_column, select

from app.containers import ApplicationContainer, databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from contexts.user.adapters.orm import OUTBOX
from infrastructure.db.database import Database
from infrastructure.events.delivery import Delivery
from infrastructure.events.envelope import Envelope

# How often the bench looks whether the dispatcher is done: a few percent of a run at 10,000/s.
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class BenchPinged:
    TYPE: ClassVar[str] = "bench.Pinged"
    VERSION: ClassVar[int] = 1

    n: int


def noop(_event: BenchPinged, _delivery: Delivery) -> None:
    """The subscriber under test does nothing: what is measured is the delivery machinery."""


def record(container: ApplicationContainer, events: int, batch: int = 500) -> None:
    outbox = container.user.outbox()
    for start in range(0, events, batch):
        with container.user.uow() as uow:
            numbers = range(start, min(events, start + batch))
            outbox.record(uow.session, [(uuid.uuid4(), BenchPinged(n)) for n in numbers])
            uow.session.commit()


# Whether any delivery is not done yet: one row looked up in the partial index of incomplete
# deliveries (its condition repeated word for word), not a count of them all, because the bench
# asks every few milliseconds and on the same CPUs as the dispatcher it measures.
ANY_PENDING = select(literal(1)).where(OUTBOX.deliveries.c.status != literal_column("'done'")).limit(1)


def any_pending(database: Database) -> bool:
    with database.reading() as connection:
        return connection.execute(ANY_PENDING).first() is not None


@contextmanager
def thread_profiles() -> Iterator[dict[str, list[cProfile.Profile]]]:
    """cProfile in every thread started meanwhile, by thread name without its number."""
    profiles: dict[str, list[cProfile.Profile]] = {}

    def start(_frame: Any, _event: str, _arg: Any) -> None:
        # The first call in a new thread: a profiler of its own replaces this hook.
        profiler = cProfile.Profile(time.thread_time)
        profiles.setdefault(threading.current_thread().name.rstrip("0123456789_"), []).append(profiler)
        profiler.enable()

    threading.setprofile(start)
    try:
        yield profiles
    finally:
        threading.setprofile(None)


def report(profiles: dict[str, list[cProfile.Profile]], events: int, top: int = 12) -> None:
    for name, profilers in sorted(profiles.items()):
        stats = pstats.Stats(*profilers)  # their threads have ended: the profiles are complete
        total: float = stats.total_tt  # type: ignore[attr-defined]  # set by pstats, not in its stubs
        print(f"--- {name} ({len(profilers)} thread(s)): {total:.2f} s CPU, {total / events * 1e6:.0f} µs per event")
        stats.sort_stats("tottime").print_stats(top)


def durable(events: int, workers: int, profile: bool = False) -> float:
    with tempfile.TemporaryDirectory() as folder:
        container = container_of(create_app({"instance_path": Path(folder), "events_workers": workers}))
        upgrade_all(databases(container))
        try:
            container.event_bus().subscribe(BenchPinged, noop, name="bench.noop")
            record(container, events)
            dispatcher = container.dispatcher()
            user_database = databases(container)["user"]
            profiling: AbstractContextManager[dict[str, list[cProfile.Profile]]] = (
                thread_profiles() if profile else nullcontext({})
            )
            with profiling as profiles:
                started = time.perf_counter()
                dispatcher.start()
                while any_pending(user_database):
                    time.sleep(POLL_SECONDS)
                elapsed = time.perf_counter() - started
            dispatcher.stop()
            if profiles:
                report(profiles, events)
            return events / elapsed
        finally:
            for database in databases(container).values():
                database.dispose()


def direct(events: int) -> float:
    started = time.perf_counter()
    for n in range(events):
        envelope = Envelope.wrap(BenchPinged(n))
        noop(envelope.event, Delivery("bench.noop", envelope.id))
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--profile", action="store_true", help="profile the dispatcher's threads (slows them)")
    args = parser.parse_args()
    print(f"baseline, direct in-process call: {direct(args.events):,.0f} events/s")
    for workers in args.workers:
        print(f"dispatcher, {workers} worker(s): {durable(args.events, workers, args.profile):,.0f} events/s")


if __name__ == "__main__":
    main()
