"""The identity of the request being served, carried across logs, events and calls.

A ContextVar rather than Flask's ``g`` so that code below the HTTP layer (the event bus,
log processors, future outgoing clients) can read it without importing Flask.
"""

from __future__ import annotations

from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str | None) -> None:
    _request_id.set(request_id)
