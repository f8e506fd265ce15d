"""A task repeated on a fixed interval in a daemon thread, surviving its own failures."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

logger = structlog.get_logger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, task: Callable[[], None]) -> None:
        self.name = name
        self._interval = interval
        self._task = task
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        # First run at once: after a restart, overdue work should not wait a whole interval.
        while not self._stopping.is_set():
            try:
                self._task()
            except Exception:
                logger.exception("periodic.failed", task=self.name)
            self._stopping.wait(self._interval)
