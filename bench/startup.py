"""How long a second ``make run`` takes to answer: from ``make run`` to the first 200.

A newcomer's second start (``.venv`` bootstrapped, databases migrated) is what issue 16 times:
each run starts ``make run PORT=<free port>`` in a checkout, in a session of its own, polls
``GET /api/v1/products`` until it answers 200, records the seconds since the start, then stops
the whole process group with SIGTERM (SIGKILL if it has not exited 15 s later). Each checkout's
first run bootstraps and migrates whatever is missing and is not counted; then the checkouts
take turns (A B A B ...) for ``--rounds`` timed runs each, so that both see the same load on
this shared machine. Prints every run, then each checkout's median and the ratio of medians.

    python3 bench/startup.py [--rounds 7] CHECKOUT [CHECKOUT ...]

Standard library only, so any Python 3.11 runs it against any checkout. The runs get a clean
environment (``PATH``, ``HOME``, locale, ``PORT``): a shop setting exported in the caller's
shell would otherwise change what is measured. Wrap it in ``flock /tmp/bench.lock`` on a
shared machine.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

PATH = "/api/v1/products"
_KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_200(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", PATH)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (make and the server), as Ctrl-C in a terminal would."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def time_make_run(checkout: Path, timeout: float, log: Path | None = None) -> float:
    """Seconds from starting ``make run`` in ``checkout`` to its first 200 on ``PATH``."""
    port = free_port()
    env = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
    env["PORT"] = str(port)
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    started = time.perf_counter()
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=checkout,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not _answers_200(port):
            if process.poll() is not None:
                raise SystemExit(f"{checkout}: make run exited with {process.returncode} before answering")
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"{checkout}: no 200 on {PATH} within {timeout} s")
            time.sleep(0.01)
        return time.perf_counter() - started
    finally:
        _stop(process)
        if log:
            output.close()  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkouts", nargs="+", type=Path, help="checkouts to time, in turns")
    parser.add_argument("--rounds", type=int, default=7, help="timed runs per checkout (default 7)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a 200 (default 300)")
    parser.add_argument("--log", type=Path, help="append every run's output to this file")
    args = parser.parse_args(argv)
    checkouts = [checkout.resolve() for checkout in args.checkouts]

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    for checkout in checkouts:
        seconds = time_make_run(checkout, args.timeout, args.log)
        print(f"first run (bootstrap, migrations; not counted) {checkout}: {seconds:.2f} s", flush=True)
    timings: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    for round_ in range(1, args.rounds + 1):
        for checkout in checkouts:
            seconds = time_make_run(checkout, args.timeout, args.log)
            timings[checkout].append(seconds)
            print(f"round {round_} {checkout}: {seconds:.2f} s", flush=True)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    medians = {checkout: statistics.median(runs) for checkout, runs in timings.items()}
    for checkout, runs in timings.items():
        print(f"median {medians[checkout]:.2f} s  {checkout}  ({' '.join(f'{s:.2f}' for s in runs)})")
    first = checkouts[0]
    for checkout in checkouts[1:]:
        print(f"ratio {checkout.name}/{first.name}: {medians[checkout] / medians[first]:.2f}")


if __name__ == "__main__":
    main()
