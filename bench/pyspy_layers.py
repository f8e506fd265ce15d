"""Which layer of the shop py-spy's samples fall in, per file: where a process's Python CPU goes.

    .venv/bin/python bench/pyspy_layers.py bench/profiles/split-pyspy/*.txt

Reads py-spy's raw (collapsed) stacks, e.g. ``bench/split.py --py-spy`` (``--gil``: the thread
holding the GIL), and puts each sample in the first layer one of its frames belongs to, in this
order: an event subscriber's work (``when_*``, its transactions included), the broker client
(kombu/amqp: relaying, consuming), the outbound HTTP client (httpx, httpcore, ``remote.py``),
the dispatcher's and relay's own bookkeeping (``infrastructure/events``: claims, completions,
inbox), a request's view and handlers (``contexts/``, their database work included), and the
HTTP serving stack around them (gunicorn, werkzeug, Flask, the shop's middleware).
"""

from __future__ import annotations

import argparse
import collections

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("event subscribers (when_*, their transactions)", ("when_",)),
    ("broker client (kombu/amqp)", ("kombu/", "amqp/")),
    ("outbound HTTP client (httpx, httpcore, remote/)", ("httpx/", "httpcore/", "infrastructure/remote/")),
    ("dispatcher and relay bookkeeping (infrastructure/events)", ("infrastructure/events/",)),
    ("request: views and handlers (contexts/, DB work included)", ("contexts/",)),
    (
        "request: HTTP serving (gunicorn, werkzeug, Flask, middleware)",
        ("gunicorn/", "werkzeug/", "flask/", "infrastructure/http/"),
    ),
)


def layer_of(frames: list[str]) -> str:
    for name, needles in LAYERS:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    for path in parser.parse_args().paths:
        counts: collections.Counter[str] = collections.Counter()
        with open(path) as lines:
            for line in lines:
                stack, _, count = line.rstrip().rpartition(" ")
                counts[layer_of(stack.split(";"))] += int(count)
        total = sum(counts.values())
        print(f"{path}: {total} samples")
        for name, count in counts.most_common():
            print(f"  {100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
