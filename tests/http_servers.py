"""Small HTTP servers on loopback, in threads, for tests of calls that leave the process.

``serve_app`` serves a real app; ``ScriptedServer`` answers what a test scripts and records
what it received; ``SilentServer`` accepts connections and never answers; ``dead_url`` names a
port nobody listens on. Every one of them is stopped (and its sockets closed) on leaving its
``with`` block.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from wsgiref.types import WSGIApplication

from werkzeug.serving import WSGIRequestHandler, make_server

HOST = "127.0.0.1"
POLL_SECONDS = 0.05  # how soon a server notices it is asked to stop


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The test's own assertions say what matters; no access log on stderr."""


@contextmanager
def serve_app(app: WSGIApplication) -> Iterator[str]:
    """``app`` (a Flask app, or any WSGI application) served by werkzeug over loopback in a
    thread; yields its base URL."""
    server = make_server(HOST, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), name="test-app-server", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def dead_url() -> str:
    """A loopback URL on a port that was free a moment ago: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return f"http://{HOST}:{port}"


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    client_port: int = 0  # which connection it came on


class ScriptedServer:
    """Answers the scripted ``answers`` in turn, then ``then`` forever; records every request.

    ``then`` may be changed between calls (``server.then = Answer(200)``), e.g. to let a
    service "come back". With a ``gate`` (a barrier), each request waits at it before being
    answered, and is answered 500 if the barrier breaks: so a test can require requests to be
    in flight at the same time. With ``tls`` (a server context), it speaks https.
    """

    def __init__(
        self,
        *answers: Answer,
        then: Answer | None = None,
        gate: threading.Barrier | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._script = list(answers)
        self.then = then or Answer()
        self._gate = gate
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_SECONDS,), name="scripted-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self._scheme}://{HOST}:{self._server.server_address[1]}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def _next_answer(self, received: Received) -> Answer:
        with self._lock:
            self._received.append(received)
            answer = self._script.pop(0) if self._script else self.then
        if self._gate is not None:
            try:
                self._gate.wait()
            except threading.BrokenBarrierError:
                return Answer(500, {"detail": "the other requests never came"})
        return answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                port = self.client_address[1]
                answer = owner._next_answer(Received(self.command, self.path, dict(self.headers.items()), body, port))
                payload = b"" if answer.status == 204 else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                content_type = "application/problem+json" if answer.status >= 400 else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test inspects ``received``."""

        return Handler

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class SilentServer:
    """Accepts connections and reads, but never answers: the call can only end by its timeout."""

    def __init__(self) -> None:
        self._listener = socket.create_server((HOST, 0))
        self._connections: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._listener.getsockname()[1]}"

    @property
    def accepted(self) -> int:
        return len(self._connections)

    def _accept(self) -> None:
        self._listener.settimeout(POLL_SECONDS)
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)
        for connection in self._connections:
            connection.close()
        self._listener.close()
