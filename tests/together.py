"""Calls released at one instant in threads, for tests of what concurrent writers do."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(calls: list[Callable[[], object]], *, timeout: float = 120) -> list[BaseException | None]:
    """Run ``calls`` in threads released at once by a barrier; what each raised, or None. Fails
    if any is still running after ``timeout`` seconds (a deadlock the database did not break)."""
    start = threading.Barrier(len(calls))
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            calls[index]()
        except BaseException as error:  # noqa: BLE001 - every outcome is asserted by the caller
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a call never finished"
    return outcomes
