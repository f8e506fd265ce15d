"""The start-up of a ``shop`` process without the cyclic garbage collector's rounds.

Importing the shop and building its app make over a hundred thousand objects that live as long
as the process, and almost none of them is garbage; the collector, which runs every few hundred
allocations and each time walks what the younger generations hold, spends a good part of a
command's start-up on them, and the full collection at the interpreter's exit walks them all
once more. So it is paused while the app is imported and built, and what was built is then
frozen (``gc.freeze``) into the permanent generation, which later collections, the one at exit
included, skip: ``shop db upgrade`` on up-to-date databases went from 1.23 to 0.88 s of CPU
(medians of five, 2026-12-05). What start-up left as garbage is frozen with the rest and kept
for the process's life: 1,358 of the 126,000 objects tracked once an app is built (measured
then with ``gc.collect()``), too few to be worth a collection. A gunicorn master that froze
before forking also leaves its workers' collections out of the pages they share with it, as
``gc.freeze``'s documentation advises for a process that forks.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_while_starting() -> Iterator[None]:
    """No collection inside the block; on the way out what exists is frozen and the collector
    is back as it was (a nested block leaves it paused for the outer one)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
