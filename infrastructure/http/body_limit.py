"""Streamed request bodies held to ``MAX_CONTENT_LENGTH`` like bodies with a Content-Length.

A chunked body has no Content-Length; the server hands it over as a terminated stream
(``wsgi.input_terminated``), and Werkzeug reads such a stream only up to the limit and returns
what it read: a larger body was silently cut to the limit and, if what was left happened to be
valid JSON, served. This middleware reads a streamed body itself, at most one byte past the
limit, and hands the application a body with a Content-Length; Werkzeug then answers a body
over the limit with 413 exactly as it does one that announced its length.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import IO, Any

from werkzeug.wsgi import get_content_length

_READ_SIZE = 64 * 1024
# How much of a refused chunked body is read and dropped, so that a client that sends its whole
# body before reading the answer gets its 413 rather than a broken connection (servers drain a
# body with a Content-Length for it); beyond this the connection is dropped instead.
_DRAINED_AT_MOST = 16 * 1024 * 1024


def _parts(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """Up to ``size`` bytes in parts: a chunked stream may return one chunk per read."""
    while size > 0:
        part = stream.read(min(size, _READ_SIZE))
        if not part:
            return
        size -= len(part)
        yield part


class StreamedBodyLimit:
    """WSGI middleware; ``limit`` is the largest body in bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("wsgi.input_terminated") and get_content_length(environ) is None:
            body = b"".join(_parts(environ["wsgi.input"], self.limit + 1))
            if len(body) > self.limit:
                for _dropped in _parts(environ["wsgi.input"], _DRAINED_AT_MOST):
                    pass
            environ["wsgi.input"] = io.BytesIO(body)
            # What the application gets is no longer chunked but a body of known length.
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            del environ["wsgi.input_terminated"]
        return self.app(environ, start_response)  # type: ignore[no-any-return]
