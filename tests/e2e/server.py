"""A small harness for end-to-end tests: the real ``shop`` command as a subprocess.

``shop(...)`` runs a one-off command (``db upgrade``, ``users create-admin``, ...);
``ShopServer`` runs ``shop serve`` on a free loopback port, waits until ``GET /healthz``
answers, and stops it with SIGTERM, then SIGKILL if it lingers. The server's stdout and
stderr go to a log file whose tail is shown when something goes wrong.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import httpx

HOST = "127.0.0.1"
# Argon2 at its cheapest and quiet logs: the e2e tests register many users.
FAST_ENV = {
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_COST_KIB": "8",
    "ARGON2_PARALLELISM": "1",
    "REGISTRATION_RATE_LIMIT_PER_ADDRESS": "100000/minute",
    "LOG_LEVEL": "WARNING",
}
COMMAND_TIMEOUT = 60.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# Another checkout's ``shop`` to run instead of this one's (``bench/split.py --shop`` measures a
# checkout against another with the same harness).
EXECUTABLE_VARIABLE = "SHOP_EXECUTABLE"


def shop_executable() -> Path:
    """The ``shop`` console script installed beside the running interpreter, or the one
    ``$SHOP_EXECUTABLE`` names."""
    chosen = os.environ.get(EXECUTABLE_VARIABLE)
    path = Path(chosen) if chosen else Path(sys.executable).parent / ("shop.exe" if os.name == "nt" else "shop")
    if not path.exists():
        if chosen:
            raise FileNotFoundError(f"no shop executable at {path}, which ${EXECUTABLE_VARIABLE} names")
        raise FileNotFoundError(f"no shop executable beside {sys.executable}; is the project installed?")
    return path


def shop_env(instance: Path, **overrides: str) -> dict[str, str]:
    """The process environment for a shop command using ``instance`` for its files.

    Every setting the shop reads is taken out of the inherited environment first, so a
    developer's own ``DATABASE_URL`` or ``PORT`` cannot leak into a test. The databases are
    those of the running test's backend (see ``tests/conftest.py``).
    """
    # Imported here: tests.conftest brings in the whole shop, and client processes a test spawns
    # import this module for its HTTP helpers only (``tests/e2e/buyers.py``).
    from tests.conftest import env_for

    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith(("DATABASE_URL", "DATABASE_SCHEMA")) and name not in {"PORT", "TOKEN_SECRET", "FLASK_APP"}
    }
    env.update(FAST_ENV)
    env["INSTANCE_PATH"] = str(instance)
    env.update(env_for(instance))
    env.update(overrides)
    return env


def shop(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``shop ARGS`` to completion; with ``check`` a non-zero exit fails with its output.

    ``cwd`` should be a test's own folder: the settings also read a ``.env`` file from there.
    """
    result = subprocess.run(
        [str(shop_executable()), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"shop {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def free_port() -> int:
    """A loopback port that was free a moment ago (the server retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class ServerFailed(RuntimeError):
    pass


def wait_until_answering(
    process: subprocess.Popen[bytes],
    url: str,
    path: str,
    *,
    timeout: float,
    name: str,
    log_tail: Callable[[], str],
    ready: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200,
) -> None:
    """Returns once ``GET {url}{path}`` answers as ``ready`` wants; ``ServerFailed`` with
    ``log_tail()`` when the process serving it exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited with {process.returncode} before answering\n{log_tail()}")
        try:
            if ready(httpx.get(f"{url}{path}", timeout=1.0)):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise ServerFailed(f"{name} did not answer {path} within {timeout}s\n{log_tail()}")


def wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, timeout: float, name: str, log_tail: Callable[[], str]
) -> None:
    """Returns once ``GET {url}/healthz`` answers ok (a shop, or a proxy in front of one)."""
    wait_until_answering(
        process,
        url,
        "/healthz",
        timeout=timeout,
        name=name,
        log_tail=log_tail,
        ready=lambda response: response.status_code == 200 and response.json() == {"status": "ok"},
    )


def stop_process(
    process: subprocess.Popen[bytes], stop_signal: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> int:
    """``stop_signal``, then SIGKILL after ``timeout`` seconds; the exit status."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return process.returncode


class ShopServer:
    """``shop serve`` in a subprocess; use as a context manager or call start/stop.

    With ``port_from_env`` the port is given as the ``PORT`` variable instead of ``--port``;
    ``options`` are added to the command line (``("--prod",)`` serves with gunicorn, whose
    master is the process this class starts and stops).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        port: int | None = None,
        port_from_env: bool = False,
        startup_timeout: float = STARTUP_TIMEOUT,
        options: Sequence[str] = (),
    ) -> None:
        self.env = dict(env)
        self.options = tuple(options)
        self.log_path = log_path
        self.cwd = cwd or log_path.parent
        self.requested_port = port
        self.port_from_env = port_from_env
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> ShopServer:
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            self._spawn()
            try:
                self._wait_until_healthy()
                return self
            except ServerFailed:
                # Werkzeug says the former, gunicorn the latter.
                address_taken = any(s in self.log_tail() for s in ("Address already in use", "Connection in use"))
                self.stop()
                if not address_taken or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        env = dict(self.env)
        command = [str(shop_executable()), "serve", *self.options, "--host", HOST]
        if self.port_from_env:
            env["PORT"] = str(self.port)
        else:
            command += ["--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_healthy(self) -> None:
        assert self.process is not None
        wait_until_healthy(self.process, self.url, self.startup_timeout, "shop serve", self.log_tail)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        return stop_process(process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no handler runs. ``start`` brings it back on the same port,
        so that callers configured with its URL find it again."""
        process, self.process = self.process, None
        assert process is not None, "the server is not running"
        process.kill()
        process.wait()
        self.requested_port = self.port

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, max_chars: int = 4000) -> str:
        """The end of the server's log (its error lines carry whole tracebacks, so bounded)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no server log at {self.log_path})"
        cut = "..." if len(text) > max_chars else ""
        return f"--- end of {self.log_path} ---\n{cut}{text[-max_chars:]}"

    def __enter__(self) -> ShopServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        crashed = self.process is not None and self.process.poll() is not None
        self.stop()
        if exc_type is not None or crashed:
            # Shown by pytest beside the failure; the whole log stays in the test's tmp folder.
            print(self.log_tail())
        if crashed and exc_type is None:
            raise ServerFailed(f"shop serve died during the test\n{self.log_tail()}")


def start_all(servers: Sequence[ShopServer]) -> None:
    """Start several servers side by side (their start-ups overlap), each as ``start`` does."""
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        for started in [pool.submit(server.start) for server in servers]:
            started.result()


# --- HTTP helpers shared by the e2e tests -------------------------------------------------

API = "/api/v1"
REQUEST_TIMEOUT = 30.0


def bearer(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    """Log in over HTTP; the Authorization header for the token."""
    response = client.post(f"{API}/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, (response.status_code, response.text)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def register(client: httpx.Client, email: str, password: str, name: str = "Cus Tomer") -> dict[str, str]:
    """Register a customer over HTTP and log in; the Authorization header."""
    response = client.post(f"{API}/users", json={"email": email, "password": password, "name": name})
    assert response.status_code == 201, (response.status_code, response.text)
    return bearer(client, email, password)
