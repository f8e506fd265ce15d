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


class MetricsFolderInUse(RuntimeError):
    pass


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_DIR)
    return Path(value) if value else None


@contextmanager
def workers_metrics_dir() -> Iterator[Path]:
    """A folder for the workers' metrics, empty at the start: the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` emptied of an earlier run's files (which would be counted
    again), else a new temporary one, removed when the server stops. A folder another running
    server's workers write to is refused (:class:`MetricsFolderInUse`): emptying it would lose
    their counts, and each would then report the other's."""
    given = multiprocess_dir()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        stale = list(given.glob("*.db"))
        living = sorted(
            {pid for pid in map(_writer_of, stale) if pid is not None and pid != os.getpid() and _running(pid)}
        )
        if living:
            raise MetricsFolderInUse(
                f"{MULTIPROCESS_DIR} ({given}) holds the metrics of running processes ({', '.join(map(str, living))}):"
                " give each server a folder of its own"
            )
        for path in stale:
            path.unlink()
        yield given
        return
    made = Path(tempfile.mkdtemp(prefix="shop-metrics-"))
    os.environ[MULTIPROCESS_DIR] = str(made)
    try:
        yield made
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(made, ignore_errors=True)


def _writer_of(path: Path) -> int | None:
    """The process that wrote a value file: prometheus-client names them ``<kind>_<pid>.db``."""
    _, _, pid = path.stem.rpartition("_")
    return int(pid) if pid.isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's, and alive
    return True


def forget_worker(pid: int) -> None:
    """A worker has exited: its live gauges (pool connections, breaker states) stop counting;
    its counters stay, as Prometheus expects of a counter."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
