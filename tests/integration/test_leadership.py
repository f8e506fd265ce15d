"""One process leads (``infrastructure/leadership.py``), the next takes over when it dies; the
doorbell (``infrastructure/doorbell.py``) wakes the leader from another process.

The other processes are real ones (``python -c``), killed with SIGKILL: what the kernel does
with a dead process's lock and socket is what is under test.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infrastructure.doorbell import SUPPORTED, Doorbell
from infrastructure.leadership import Leadership

TIMEOUT = 30.0

LEADER = """
import sys, threading
from pathlib import Path
from infrastructure.leadership import Leadership
elected = threading.Event()
Leadership(Path(sys.argv[1]), lead=elected.set, resign=lambda: None).start()
elected.wait()
print("leading", file=sys.stderr, flush=True)
threading.Event().wait()
"""


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def other_leader(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process leading on ``tmp_path / 'lock'`` (it has said so when this yields)."""
    lock = tmp_path / "lock"
    process = subprocess.Popen(
        [sys.executable, "-c", LEADER, str(lock)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    try:
        assert process.stderr.readline().strip() == "leading"
        yield process, lock
    finally:
        process.kill()
        process.wait()
        process.stderr.close()


def test_a_process_leads_only_once_the_leader_process_is_gone(
    other_leader: tuple[subprocess.Popen[str], Path],
) -> None:
    process, lock = other_leader
    led, resigned = threading.Event(), threading.Event()
    candidate = Leadership(lock, lead=led.set, resign=resigned.set)
    candidate.start()
    try:
        # The other leads: this one's campaign is blocked on the lock, whatever the wait.
        assert not led.wait(0.5) and not candidate.leading

        process.kill()  # no clean-up in the dead process: the kernel lets go of its lock
        process.wait()
        assert led.wait(TIMEOUT), "not elected after the leader died"
        assert candidate.leading
    finally:
        candidate.stop()
    assert resigned.is_set() and not candidate.leading


def test_a_process_that_resigns_hands_the_lead_over(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    first_led, second_led = threading.Event(), threading.Event()
    first = Leadership(lock, lead=first_led.set, resign=lambda: None)
    first.start()
    assert first_led.wait(TIMEOUT)
    # A second descriptor on the same file: flock excludes it even within one process.
    second = Leadership(lock, lead=second_led.set, resign=lambda: None)
    second.start()
    try:
        assert not second_led.wait(0.5)
        first.stop()
        assert second_led.wait(TIMEOUT), "the lead was not handed over"
    finally:
        second.stop()


def test_a_candidate_stopped_before_its_election_never_leads(
    other_leader: tuple[subprocess.Popen[str], Path],
) -> None:
    process, lock = other_leader
    led = threading.Event()
    candidate = Leadership(lock, lead=led.set, resign=lambda: None)
    candidate.start()
    candidate.stop()
    process.kill()
    process.wait()
    # The campaign now gets the lock, sees the stop and lets go: a third candidate is elected.
    third_led = threading.Event()
    third = Leadership(lock, lead=third_led.set, resign=lambda: None)
    third.start()
    try:
        assert third_led.wait(TIMEOUT)
    finally:
        third.stop()
    assert not led.is_set() and not candidate.leading


def test_a_failing_lead_lets_go_of_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock"

    def fail() -> None:
        raise RuntimeError("the dispatcher would not start")

    failing = Leadership(lock, lead=fail, resign=lambda: None)
    failing.start()
    led = threading.Event()
    other = Leadership(lock, lead=led.set, resign=lambda: None)
    other.start()
    try:
        assert led.wait(TIMEOUT), "a candidate that could not lead kept the lock"
        assert not failing.leading
    finally:
        other.stop()
        failing.stop()


RING = """
import sys
from infrastructure.doorbell import Doorbell
doorbell = Doorbell(sys.argv[1])
doorbell.ring()
doorbell.close()
"""


@pytest.mark.skipif(not SUPPORTED, reason="the doorbell needs Linux's abstract socket namespace")
def test_the_doorbell_wakes_its_listener_from_another_process(tmp_path: Path) -> None:
    rung = threading.Event()
    doorbell = Doorbell(str(tmp_path / "lock"))
    doorbell.listen(rung.set)
    try:
        subprocess.run([sys.executable, "-c", RING, str(tmp_path / "another")], check=True)
        assert not rung.wait(0.3)
        subprocess.run([sys.executable, "-c", RING, str(tmp_path / "lock")], check=True)
        assert rung.wait(TIMEOUT), "the ring from the other process was not heard"
    finally:
        doorbell.close()


@pytest.mark.skipif(not SUPPORTED, reason="the doorbell needs Linux's abstract socket namespace")
def test_a_doorbell_closed_frees_its_address_and_ringing_nobody_is_harmless(tmp_path: Path) -> None:
    key = str(tmp_path / "lock")
    ringer = Doorbell(key)
    ringer.ring()  # nobody listens: nothing happens, nothing raised
    first = Doorbell(key)
    first.listen(lambda: None)
    first.close()
    rung = threading.Event()
    second = Doorbell(key)
    second.listen(rung.set)  # the address is free again: the next leader can listen
    try:
        ringer.ring()
        assert rung.wait(TIMEOUT)
    finally:
        second.close()
        ringer.close()
