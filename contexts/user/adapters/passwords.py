"""Password hashing with argon2id (argon2-cffi); parameters come from configuration.

Every hash and every verification takes ``memory_cost`` KiB and ``parallelism`` threads of
CPU for a while: unbounded, sixty registrations at once stall the process and grow it by
gigabytes. So at most ``concurrency`` of them run at once in a process; the others wait for a
slot (their requests take longer, the process stays within ``concurrency`` × ``memory_cost``
and keeps CPU for everything else, such as ``/healthz``). A request waits at most
``wait_seconds``, then gets :class:`~infrastructure.errors.Busy` (a 503): a waiting request
holds its server thread, and waiting without limit would let a burst take every thread of a
process and leave ``/healthz`` queued behind it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from infrastructure.errors import Busy


class Argon2PasswordHasher:
    def __init__(
        self, *, time_cost: int, memory_cost: int, parallelism: int, concurrency: int, wait_seconds: float
    ) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._wait_seconds = wait_seconds

    def hash(self, password: str) -> str:
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        with self._slot():
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise Busy("password hashing", retry_after_seconds=math.ceil(self._wait_seconds))
        try:
            yield
        finally:
            self._slots.release()

    def needs_rehash(self, password_hash: str) -> bool:
        """Reads the parameters in the hash's text: no argon2 work, so no slot."""
        return self._hasher.check_needs_rehash(password_hash)
