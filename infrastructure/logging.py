"""Structured logging: every line is an event with key/values, tagged with the request id.

Read by people in a terminal (coloured ``key=value`` lines), by machines elsewhere (one JSON
object a line); ``LOG_FORMAT`` forces either.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal, TextIO

import structlog

from infrastructure.observability.tracing import add_trace_ids
from infrastructure.request_context import current_request_id


def _add_request_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _add_process_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Several worker processes write to one stream under gunicorn: tell them apart.
    event_dict.setdefault("pid", os.getpid())
    return event_dict


LogFormat = Literal["json", "console"]


def configure_logging(
    *, level: str = "INFO", log_format: LogFormat | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library's logging through one renderer, to ``stream``
    (standard error by default).

    ``log_format`` None: console lines, coloured, when the stream is a terminal, JSON otherwise
    (a file, a pipe, a log collector). Forced to console, the lines are coloured only on a
    terminal, so that a file gets no escape codes; ``NO_COLOR`` (no-color.org) turns colours off.

    Standard-library records (SQLAlchemy, Alembic, Werkzeug) get the same processors, so the
    request id lands on their lines too.
    """
    stream = stream if stream is not None else sys.stderr
    terminal = stream.isatty()
    console = log_format == "console" if log_format is not None else terminal
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        add_trace_ids,
        _add_process_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=terminal and not os.environ.get("NO_COLOR"))
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        # Level first: a line below the level costs a comparison, not the processors' work.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Werkzeug's own access line lacks the request id; the app logs its own.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Alembic says which backend and DDL mode it uses at every start, two lines per context;
    # the migrations it applies are logged by infrastructure.db.migrations, one line each.
    logging.getLogger("alembic").setLevel(logging.WARNING)
