"""Errors of the technical kernel that the HTTP layer answers, kept free of any client library
so that the problem handlers can name them without importing what raises them."""

from __future__ import annotations


class DependencyUnavailable(Exception):
    """Another service this one needs did not answer in time, is down, or its circuit is open.

    ``service`` is the dependency's name (``"product"``), never its URL: the message reaches
    clients. ``reason`` is for the log only.
    """

    def __init__(self, service: str, retry_after_seconds: int, reason: str = "") -> None:
        super().__init__(f"the {service} service is unavailable" + (f" ({reason})" if reason else ""))
        self.service = service
        self.retry_after_seconds = max(1, retry_after_seconds)
        self.reason = reason


class DependencyMisconfigured(DependencyUnavailable):
    """Another service answers, but refuses this one's credentials or serves nothing at the
    address it is called at: the two are configured differently, and no retry helps until an
    operator fixes that. ``problem`` says what to fix, naming settings and never their values
    (it reaches clients)."""

    RETRY_AFTER_SECONDS = 60

    def __init__(self, service: str, problem: str) -> None:
        super().__init__(service, self.RETRY_AFTER_SECONDS, problem)
        self.problem = problem


class UnexpectedAnswer(Exception):
    """The target answered something its client cannot take: a bug on one side or the other.
    Not retried; a 500 at the edge."""

    def __init__(self, service: str, status: int, detail: str = "") -> None:
        super().__init__(f"the {service} service answered {status}" + (f": {detail}" if detail else ""))
        self.service = service
        self.status = status


class Busy(Exception):
    """This process has no capacity left for the request just now: every slot of a resource it
    bounds (password hashing, say) stayed taken for as long as a request may wait for one. Nothing
    is wrong and nothing was done, so the client may well succeed a moment later. ``resource``
    is for the log only."""

    def __init__(self, resource: str, retry_after_seconds: int) -> None:
        super().__init__(f"no {resource} slot became free in time")
        self.resource = resource
        self.retry_after_seconds = max(1, retry_after_seconds)


class OutcomeUnknown(Exception):
    """A write whose connection was lost while the server ran its commit: it may have been
    committed or not, and only a later read can tell (if it finds the write). The unit of work
    raises it as a database error of its own (``infrastructure.db.unit_of_work.CommitAnswerLost``),
    answered as any lost database is; a use case that must not guess catches it by this class."""
