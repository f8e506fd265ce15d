"""Where the gunicorn workers' threads spend their time, from py-spy's raw (collapsed) stacks.

    py-spy record -p PID -d 60 -r 100 -f raw --threads -o worker.txt   # per worker, during a run
    .venv/bin/python bench/pyspy_summary.py worker-*.txt

py-spy cannot tell an idle thread in this container (threads blocked in a lock or a socket read
are sampled too), so the shares are of wall time across every thread, not of CPU: what this
shows is where threads wait. Prints the shares per kind of thread, then, for the request
threads, the dispatcher's loop and the subscribers, the leaf frames with the nearest frame of
the project's own code above them.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Iterator

KINDS = ("event-delivery", "event-dispatcher", "ThreadPoolExecutor", "MainThread", "maintenance")
SUBSCRIBER_FRAME = "when_"


def samples(paths: list[str]) -> Iterator[tuple[list[str], int]]:
    for path in paths:
        with open(path) as lines:
            for line in lines:
                stack, _, count = line.rstrip().rpartition(" ")
                yield stack.split(";"), int(count)


def kind(thread: str) -> str:
    name = thread.split(": ", 1)[-1]
    return next((prefix for prefix in KINDS if name.startswith(prefix)), name)


def name(frame: str) -> str:
    return frame.split(" (")[0]


def where(frames: list[str]) -> str:
    """The leaf, and the nearest frame of the project's own code above it."""
    own = next((name(f) for f in reversed(frames) if "contexts/" in f or "infrastructure/" in f), "-")
    return f"{own:48s} {name(frames[-1])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", nargs="+", help="py-spy record -f raw --threads outputs")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    total = 0
    kinds: collections.Counter[str] = collections.Counter()
    subscribers: collections.Counter[str] = collections.Counter()
    leaves: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for frames, count in samples(args.raw):
        total += count
        thread = kind(frames[0])
        kinds[thread] += count
        subscriber = next((name(f) for f in frames if name(f).startswith(SUBSCRIBER_FRAME)), None)
        if subscriber:
            subscribers[subscriber] += count
            leaves["subscribers (all four)"][where(frames)] += count
        elif thread in ("ThreadPoolExecutor", "event-dispatcher"):
            leaves[thread][where(frames)] += count
    print(f"{total} samples (every thread, wall time)\n\nby thread:")
    for thread, count in kinds.most_common():
        print(f"  {count / total:6.1%}  {thread}")
    print("\nsubscribers, of all samples:")
    for subscriber, count in subscribers.most_common():
        print(f"  {count / total:6.1%}  {subscriber}")
    for group, counter in leaves.items():
        group_total = sum(counter.values())
        print(f"\n{group}: {group_total / total:.1%} of all samples; within it:")
        for place, count in counter.most_common(args.top):
            print(f"  {count / group_total:6.1%}  {place}")


if __name__ == "__main__":
    main()
