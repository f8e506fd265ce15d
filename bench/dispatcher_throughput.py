"""How many events per second the dispatcher delivers on the embedded default (SQLite files).

Records N events of a bench-only type in the user context's outbox (one no-op subscriber, so
one delivery each), then times how long the running dispatcher takes until every delivery is
done. The baseline, measured in the same run, is what the durability costs compared with:
calling the same no-op subscriber directly for the same events (the old in-process publish).

    LOG_LEVEL=ERROR .venv/bin/python bench/dispatcher_throughput.py [--events 5000] [--workers 1 4 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sqlalchemy import func, select

from app.containers import ApplicationContainer, databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from contexts.user.adapters.orm import OUTBOX
from infrastructure.events.envelope import Envelope


@dataclass(frozen=True)
class BenchPinged:
    TYPE: ClassVar[str] = "bench.Pinged"
    VERSION: ClassVar[int] = 1

    n: int


def noop(_event: BenchPinged) -> None:
    """The subscriber under test does nothing: what is measured is the delivery machinery."""


def record(container: ApplicationContainer, events: int, batch: int = 500) -> None:
    outbox = container.user.outbox()
    for start in range(0, events, batch):
        with container.user.uow() as uow:
            numbers = range(start, min(events, start + batch))
            outbox.record(uow.session, [(uuid.uuid4(), BenchPinged(n)) for n in numbers])
            uow.session.commit()


def pending(container: ApplicationContainer) -> int:
    database = databases(container)["user"]
    with database.session(write=False) as session:
        return int(session.scalar(select(func.count()).where(OUTBOX.deliveries.c.status != "done")) or 0)


def durable(events: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        container = container_of(create_app({"instance_path": Path(folder), "events_workers": workers}))
        upgrade_all(databases(container))
        try:
            container.event_bus().subscribe(BenchPinged, noop, name="bench.noop")
            record(container, events)
            dispatcher = container.dispatcher()
            started = time.perf_counter()
            dispatcher.start()
            while pending(container):
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            dispatcher.stop()
            return events / elapsed
        finally:
            for database in databases(container).values():
                database.dispose()


def direct(events: int) -> float:
    started = time.perf_counter()
    for n in range(events):
        noop(Envelope.wrap(BenchPinged(n)).event)
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    print(f"baseline, direct in-process call: {direct(args.events):,.0f} events/s")
    for workers in args.workers:
        print(f"dispatcher, {workers} worker(s): {durable(args.events, workers):,.0f} events/s")


if __name__ == "__main__":
    main()
