"""A wake-up from other processes on the host: one listens, any number ring.

The one delivering worker (see ``app/production.py``) is woken by its own commits; the other
workers' orders would otherwise wait for its next poll (a second by default). A ring is one
datagram on a Unix socket in Linux's abstract namespace (no file to clean up after a crash;
gone with its process), sent without blocking and without an answer: a ring nobody hears, or
one lost while the listener's queue is full, costs nothing, since the listener still polls and
one ring already wakes it for everything committed before it. Elsewhere than on Linux there is
no abstract namespace, and ringing does nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import sys
import threading
from collections.abc import Callable

import structlog

logger = structlog.get_logger(__name__)

SUPPORTED = sys.platform.startswith("linux")


class Doorbell:
    """The doorbell named after ``key`` (any string the processes agree on, e.g. a path)."""

    def __init__(self, key: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        self._address = b"\0modular-shop-doorbell-" + digest.encode()
        self._sender: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        if SUPPORTED:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sender.setblocking(False)

    def ring(self) -> None:
        """Wake the listener, if there is one; never blocks, never fails."""
        if self._sender is None:
            return
        # No listener (none elected yet) or its queue full: it polls anyway.
        with contextlib.suppress(OSError):
            self._sender.sendto(b"!", self._address)

    def listen(self, on_ring: Callable[[], None]) -> None:
        """Call ``on_ring`` for each ring, from a thread of its own, until :meth:`close`."""
        if not SUPPORTED:
            return
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        listener.bind(self._address)
        self._listener = listener
        self._thread = threading.Thread(target=self._answer, args=(listener, on_ring), name="doorbell", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening (the address is free again for the next listener) and ringing."""
        if self._sender is not None:
            self._sender.close()  # a ring after this fails, and is ignored as any other
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.shutdown(socket.SHUT_RDWR)  # ends the thread's blocked recv
        listener.close()
        if self._thread is not None:
            self._thread.join(5)

    @staticmethod
    def _answer(listener: socket.socket, on_ring: Callable[[], None]) -> None:
        while True:
            try:
                data = listener.recv(64)
            except OSError:
                return
            if not data:  # shut down
                return
            on_ring()
