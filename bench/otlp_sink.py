"""An OTLP/HTTP receiver that takes every export and keeps nothing: the far end of the shop's
traces when ``compare.py`` measures them on (``--shop-env OTEL_EXPORTER_OTLP_ENDPOINT=...``),
so that the shop pays for making, batching and sending its spans, and not for a collector's
failures (an endpoint that refuses makes the exporter retry with backoff).

    .venv/bin/python bench/otlp_sink.py --port 4318 &
    .venv/bin/python bench/compare.py --db sqlite --kinds read order-nodelivery \\
        --shop-env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318

It prints the spans it was sent (by counting the protobuf's spans) when it is stopped (Ctrl-C or
SIGTERM), so a run can be checked to have traced at all.
"""

from __future__ import annotations

import argparse
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ANSWER = ExportTraceServiceResponse().SerializeToString()


class _SinkServer(ThreadingHTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Sink)
        self.lock = threading.Lock()
        self.spans = 0
        self.exports = 0


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the exporter keeps its connection
    server: _SinkServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self.server.lock:
            self.server.spans += spans
            self.server.exports += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per export would be most of the output."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4318)
    options = parser.parse_args()
    server = _SinkServer(options.port)

    def stop(_signal: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"received {server.spans} spans in {server.exports} exports", flush=True)


if __name__ == "__main__":
    main()
