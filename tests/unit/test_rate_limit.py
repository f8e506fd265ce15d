"""The limiter runs only inside the views it limits: no request pays for Flask-Limiter's
app-wide hooks, and a limited view still answers its 429 problem with ``Retry-After``."""

from __future__ import annotations

from functools import partial

from flask import Flask

from infrastructure.http.rate_limit import EXTENSION, install_rate_limits, throttle

RATE = "tries-per-address"


def _app() -> Flask:
    app = Flask(__name__)

    @app.post("/limited")
    @throttle(RATE, key=lambda: "everyone", per="address")
    def limited() -> str:
        return "ok"

    @app.get("/free")
    def free() -> str:
        return "ok"

    install_rate_limits(app, rates={RATE: "2 per minute"})
    return app


def test_no_hook_of_the_limiter_runs_before_or_after_every_request() -> None:
    app = _app()
    limiter = app.extensions[EXTENSION]

    hooks = [*app.before_request_funcs.get(None, []), *app.after_request_funcs.get(None, [])]

    assert [hook for hook in hooks if getattr(hook, "__self__", None) is limiter] == []
    assert [hook for hook in hooks if isinstance(hook, partial) and limiter in hook.args] == []


def test_a_limited_view_still_answers_its_429_with_retry_after_and_other_views_are_not_counted() -> None:
    client = _app().test_client()

    assert [client.get("/free").status_code for _ in range(5)] == [200] * 5
    assert [client.post("/limited").status_code for _ in range(2)] == [200] * 2
    refused = client.post("/limited")

    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # a minute, rounded up
