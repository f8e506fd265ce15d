"""`shop serve` stopped by signals: after the first, a duplicate SIGTERM (make sends one) is
ignored while the background work stops, but a second Ctrl-C ends the process at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Serving until the first Ctrl-C (the handler raises SystemExit(0)), then a stop that takes a
# while, as a dispatcher handing back its work may, during which more signals come.
SERVING_THEN_STOPPING = """
import os, signal, time
from app.cli import _stop_on_signal
signal.signal(signal.SIGTERM, _stop_on_signal)
signal.signal(signal.SIGINT, _stop_on_signal)
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
finally:
    os.kill(os.getpid(), signal.SIGTERM)
    print("stopping", flush=True)
    {during_the_stop}
    time.sleep(2)
    print("stopped", flush=True)
"""


def serve_and_stop(during_the_stop: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SERVING_THEN_STOPPING.format(during_the_stop=during_the_stop)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_a_duplicate_sigterm_does_not_cut_the_stop_short() -> None:
    stopped = serve_and_stop("pass")

    assert (stopped.returncode, stopped.stdout.split()) == (0, ["stopping", "stopped"]), stopped.stderr


def test_a_second_ctrl_c_exits_at_once_as_interrupted() -> None:
    stopped = serve_and_stop("os.kill(os.getpid(), signal.SIGINT)")

    assert (stopped.returncode, stopped.stdout.split()) == (130, ["stopping"]), stopped.stderr
