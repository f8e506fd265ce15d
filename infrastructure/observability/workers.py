"""The folder where gunicorn's workers keep their metrics, managed by ``shop serve --prod``.

prometheus-client picks file-backed values when it is first imported with
``PROMETHEUS_MULTIPROC_DIR`` set, so the master sets it before it imports anything that imports
prometheus-client, and its workers inherit both. This module imports prometheus-client only to
forget a worker that has exited.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_DIR)
    return Path(value) if value else None


@contextmanager
def workers_metrics_dir() -> Iterator[Path]:
    """A folder for the workers' metrics, empty at the start: the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` emptied of an earlier run's files (which would be counted
    again), else a new temporary one, removed when the server stops."""
    given = multiprocess_dir()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):
            stale.unlink()
        yield given
        return
    made = Path(tempfile.mkdtemp(prefix="shop-metrics-"))
    os.environ[MULTIPROCESS_DIR] = str(made)
    try:
        yield made
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(made, ignore_errors=True)


def forget_worker(pid: int) -> None:
    """A worker has exited: its live gauges (pool connections, breaker states) stop counting;
    its counters stay, as Prometheus expects of a counter."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
