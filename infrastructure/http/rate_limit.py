"""Rate limits on chosen views (Flask-Limiter), answered with a 429 problem and ``Retry-After``.

A blueprint marks a view with :func:`throttle`, naming a *rate* (e.g. ``"login-per-account"``)
and the key that requests are counted by. The marks are inert until :func:`install_rate_limits`
builds one :class:`flask_limiter.Limiter` for that app, with that app's rates and storage: every
app has its own counters (in memory by default, or in Redis shared by all the processes that use
the same URL and key prefix), and nothing is kept at module level.

Rejected requests are not counted; successful and failed ones are. Only requests whose view
runs are counted (CORS preflights and automatic ``OPTIONS`` answers are not).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from prometheus_client import Counter

from infrastructure.http.problems import Problem
from infrastructure.observability.metrics import Metrics

EXTENSION = "shop.rate_limiter"
MARKS = "__shop_throttles__"
STRATEGY = "moving-window"

# The names of the rates that the app configures (see app.config.Settings).
LOGIN_PER_ACCOUNT = "login-per-account"
LOGIN_PER_ADDRESS = "login-per-address"
REGISTRATION_PER_ADDRESS = "registration-per-address"

V = TypeVar("V", bound=Callable[..., Any])
Key = Callable[[], str | None]


@dataclass(frozen=True)
class Throttle:
    rate: str
    key: Key
    per: str  # what the key stands for, for the problem's detail: "account", "address"


def throttle(rate: str, *, key: Key, per: str) -> Callable[[V], V]:
    """Count the view's requests by ``key()`` against the app's rate called ``rate``.

    A request for which ``key()`` is ``None`` is not counted against this rate. The view is
    returned unchanged (only marked), so the decorator may sit anywhere under the route's.
    """

    def mark(view: V) -> V:
        setattr(view, MARKS, (*getattr(view, MARKS, ()), Throttle(rate, key, per)))
        return view

    return mark


def client_address() -> str:
    """The peer address of the request (behind a proxy, have ProxyFix set ``remote_addr``)."""
    return request.remote_addr or "unknown"


def from_client_address(key: Key) -> Key:
    """``key`` counted separately for every client address (``None`` stays ``None``).

    A limit per account alone lets anyone lock an account's owner out by failing on purpose;
    counted per account *and* address, only the failing address is held back."""

    def keyed() -> str | None:
        value = key()
        return None if value is None else f"{value}@{client_address()}"

    return keyed


def json_body_field(field: str, normalise: Callable[[str], str] = str) -> Key:
    """A key from a string field of the JSON body, normalised then hashed, or ``None`` if the
    body is not a JSON object with that string field. Never raises: malformed bodies are the
    view's to reject. The hash keeps the value (an email, say) out of storage and logs."""
    cache = f"shop.rate_limit.body.{field}"

    def key() -> str | None:
        if cache not in g:
            setattr(g, cache, _body_field(field, normalise))
        value: str | None = getattr(g, cache)
        return value

    return key


def _body_field(field: str, normalise: Callable[[str], str]) -> str | None:
    try:
        body = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):  # invalid JSON or UTF-8, or nested too deeply
        return None
    value = body.get(field) if isinstance(body, dict) else None
    if not isinstance(value, str) or not (normalised := normalise(value)):
        return None
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def install_rate_limits(
    app: Flask,
    *,
    rates: Mapping[str, str],
    storage_url: str | None = None,
    key_prefix: str = "shop",
    metrics: Metrics | None = None,
) -> Limiter:
    """Give ``app`` its own limiter, and apply it to every view registered so far that is
    marked with :func:`throttle`. Call it after the blueprints are registered. Each refusal is
    counted by the rate's name (``shop_rate_limited_requests_total``)."""
    refused = (metrics or Metrics()).rate_limited
    limiter = Limiter(
        key_func=client_address,
        storage_uri=storage_url or "memory://",
        strategy=STRATEGY,
        key_prefix=key_prefix,
        headers_enabled=False,
        # If Redis goes away, keep limiting in this process rather than failing logins.
        in_memory_fallback_enabled=bool(storage_url),
    )
    limiter.init_app(app)
    _drop_app_wide_hooks(app, limiter)
    app.extensions[EXTENSION] = limiter

    for endpoint, view in list(app.view_functions.items()):
        limited: Callable[..., Any] = view
        for mark in getattr(view, MARKS, ()):
            if mark.rate not in rates:
                raise ValueError(
                    f"the view {endpoint!r} is throttled by the rate {mark.rate!r}, which is not configured"
                )
            limited = limiter.limit(
                rates[mark.rate],
                key_func=_never_none(mark.key),
                exempt_when=_absent(mark.key),
                scope=mark.rate,
                error_message=f"too many requests for this {mark.per}",
                on_breach=_counting(refused.labels(mark.rate)),
            )(limited)
        app.view_functions[endpoint] = limited

    app.register_error_handler(RateLimitExceeded, lambda error: _too_many_requests(limiter, error))
    return limiter


def _counting(refusals: Counter) -> Callable[[RequestLimit], None]:
    return lambda _breached: refusals.inc()


def _drop_app_wide_hooks(app: Flask, limiter: Limiter) -> None:
    """Every limit here is a view's own, and the decorated view checks it when it runs. The
    app-wide hooks Flask-Limiter adds serve default limits, conditional deductions and rate-limit
    headers, none of which the shop uses, yet they ran on every request: the one before resolved
    the view's limits (a tenth of a product read's time), the one after looked the current limit
    up again. Its teardown, which releases the request's limiter state, stays."""
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.after_request_funcs[None] = [hook for hook in app.after_request_funcs[None] if not _bound_to(hook, limiter)]


def _bound_to(hook: Callable[..., Any], limiter: Limiter) -> bool:
    return isinstance(hook, partial) and hook.args == (limiter,)


def _never_none(key: Key) -> Callable[[], str]:
    return lambda: key() or ""


def _absent(key: Key) -> Callable[[], bool]:
    return lambda: key() is None


def _too_many_requests(limiter: Limiter, error: RateLimitExceeded) -> Response:
    breached = limiter.current_limit
    retry_after = max(1, math.ceil(breached.reset_at - time.time())) if breached else 60
    return Problem(
        429,
        f"{error.description}; try again in {retry_after} seconds",
        headers={"Retry-After": str(retry_after)},
    ).to_response()
