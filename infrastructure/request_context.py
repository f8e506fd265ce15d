"""The identity of the request being served, carried across logs, events and calls.

ContextVars rather than Flask's ``g`` so that code below the HTTP layer (the event bus, log
processors, outgoing clients) can read them without importing Flask. Besides the request id:
the caller's W3C ``traceparent``, passed on unchanged, and the caller's deadline, so that a call
this request makes to another service spends no more than what is left of the caller's budget.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"
# Milliseconds the caller will still wait for the answer, counted from when it sent the request.
DEADLINE_HEADER = "X-Deadline-Ms"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)
_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)  # time.monotonic() value


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str | None) -> None:
    _request_id.set(request_id)


def current_traceparent() -> str | None:
    return _traceparent.get()


def bind_traceparent(traceparent: str | None) -> None:
    _traceparent.set(traceparent)


def bind_deadline(seconds_from_now: float | None) -> None:
    """The request must be answered within ``seconds_from_now``; None: no deadline is known."""
    _deadline.set(None if seconds_from_now is None else time.monotonic() + seconds_from_now)


def remaining_seconds() -> float | None:
    """What is left of the request's deadline (negative once it passed); None without one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
