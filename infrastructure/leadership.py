"""One process among several on a host runs something, and another takes over when it dies.

An exclusive ``flock`` on a file: the process holding it is the leader; the others wait for it
in a thread, blocked in the kernel, not polling. The kernel lets go of the lock when its holder
ends however it ends (exit, crash, SIGKILL), so the next waiter becomes the leader at once,
with no lease to lapse and no stale-lock cleanup. Only processes on one host share it, which is
what SQLite files already require of the processes writing them.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

logger = structlog.get_logger(__name__)


class Leadership:
    """Runs ``lead`` once this process holds the lock on ``path``, and ``resign`` at :meth:`stop`
    if it did. ``lead`` runs in the campaign's thread; it must start its work and return."""

    def __init__(self, path: Path, *, lead: Callable[[], None], resign: Callable[[], None]) -> None:
        self._path = path
        self._lead = lead
        self._resign = resign
        self._lock = threading.Lock()
        self._stopped = False
        self._held: int | None = None  # the lock file's descriptor while this process leads
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        with self._lock:
            return self._held is not None

    def start(self) -> None:
        """Stand for election: lead now if no other process does, else as soon as it ends."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._campaign, name=f"leadership:{self._path.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Resign (``resign`` runs, then the lock goes to the next waiter), or stop waiting.

        A campaign still blocked on the lock stays blocked in its daemon thread: it takes the
        lock only after this, sees the stop, and lets go of it at once, so a stopping process
        never starts leading."""
        with self._lock:
            self._stopped = True
            held, self._held = self._held, None
        if held is None:
            return
        try:
            self._resign()
        finally:
            os.close(held)  # closing the only descriptor releases the lock
            logger.info("leadership.resigned", lock=str(self._path), pid=os.getpid())

    def _campaign(self) -> None:
        descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # blocks while another process leads
        except OSError:
            os.close(descriptor)
            logger.exception("leadership.lock_failed", lock=str(self._path))
            return
        with self._lock:
            if self._stopped:
                os.close(descriptor)
                return
            self._held = descriptor
            # Under the lock, so that a stop() meanwhile waits for ``lead`` to have started
            # what it then stops.
            logger.info("leadership.elected", lock=str(self._path), pid=os.getpid())
            try:
                self._lead()
            except Exception:
                # Leading without doing the work would keep every other process from it.
                self._held = None
                os.close(descriptor)
                logger.exception("leadership.lead_failed", lock=str(self._path))
