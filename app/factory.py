"""``create_app``: settings → container → Flask app with every context's blueprint."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from dependency_injector import wiring
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import api_docs, ops
from app.config import read_settings
from app.containers import ApplicationContainer, broker_state, build_container, databases, remote_services
from app.public_api import API_PREFIX, http_modules, register_endpoints
from app.registry import remotely_callable
from app.subscriptions import subscribe_all
from infrastructure.auth.bearer import init_auth
from infrastructure.auth.service import init_service_auth
from infrastructure.http.backpressure import install_write_backpressure
from infrastructure.http.body_limit import StreamedBodyLimit
from infrastructure.http.problems import install_problem_handlers
from infrastructure.http.rate_limit import (
    LOGIN_PER_ACCOUNT,
    LOGIN_PER_ADDRESS,
    REGISTRATION_PER_ADDRESS,
    install_rate_limits,
)
from infrastructure.http.request_id import install_request_ids
from infrastructure.http.security import install_cors, install_security_headers
from infrastructure.logging import configure_logging
from infrastructure.observability.exposition import DeliveryBacklog, metrics_blueprint
from infrastructure.observability.instruments import install_request_metrics, observe_pool, trace_requests_and_sql

CONTAINER = "shop.container"

# Views are functions (STYLE.md), so wiring need look at nothing else. The classes in the http
# modules are request and response models (and what they import), whose hundreds of inherited
# members wiring would walk for every app built: 75 of the 80 ms a wire took, and a test process
# builds hundreds of apps. dependency-injector (4.49 on) skips Werkzeug's LocalProxy and
# Starlette's Request through the same filters. tests/architecture/test_wiring.py holds the http
# modules to it.
if inspect.isclass not in wiring.INSPECT_EXCLUSION_FILTERS:
    wiring.INSPECT_EXCLUSION_FILTERS.append(inspect.isclass)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``test_config`` overrides settings that would come from the environment."""
    settings = read_settings(test_config)
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    container = build_container(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config.update(MAX_CONTENT_LENGTH=settings.max_content_length)
    app.wsgi_app = StreamedBodyLimit(app.wsgi_app, settings.max_content_length)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[CONTAINER] = container
    app.extensions[ops.DATABASES] = databases(container)
    app.extensions[ops.SERVICES] = ops.service_checks(remote_services(container))
    app.extensions[ops.BROKER] = lambda: broker_state(container)

    if settings.trusted_proxy_hops:
        # The client's address (what per-address limits count by) as the proxies nearest the
        # shop saw it; the rest of X-Forwarded-For is the client's to forge. The scheme is the
        # nearest proxy's word alone: nginx (`$scheme`) and most balancers replace
        # X-Forwarded-Proto instead of appending to it, so with several hops there is one value,
        # and asking ProxyFix for as many as there are hops would ignore the header.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops, x_proto=1)  # type: ignore[method-assign]
    install_request_ids(app)
    # Contexts on one server share its engine: each is instrumented once.
    engines = {database.engine for database in app.extensions[ops.DATABASES].values()}
    tracing = container.tracing()
    if tracing is not None:
        trace_requests_and_sql(app, tracing, engines)
    metrics = container.metrics()
    install_request_metrics(app, metrics)
    for engine in engines:
        observe_pool(engine, metrics)
    install_problem_handlers(app)
    init_auth(app, container.tokens(), container.current_roles())
    served = register_endpoints(app, settings.hosted_contexts())
    service_token = settings.service_token_value()
    if service_token is not None:
        init_service_auth(app, service_token)
        # Without a token nobody could call them: not served at all.
        for context in remotely_callable():
            if context.name in settings.hosted_contexts():
                app.register_blueprint(http_modules()[context.name].internal_bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(api_docs.bp)
    if settings.metrics_enabled:
        app.register_blueprint(
            metrics_blueprint(
                metrics,
                [
                    DeliveryBacklog(
                        [outbox.ledger for outbox in container.dispatcher().outboxes],
                        container.placement().fed_by_outboxes(),
                    ),
                    ops.ReadinessGauges(),
                ],
                token=settings.metrics_token_value(),
            )
        )
    install_rate_limits(
        app,
        rates={
            LOGIN_PER_ACCOUNT: settings.login_rate_limit_per_account,
            LOGIN_PER_ADDRESS: settings.login_rate_limit_per_address,
            REGISTRATION_PER_ADDRESS: settings.registration_rate_limit_per_address,
        },
        storage_url=settings.ratelimit_storage_url,
        key_prefix=settings.ratelimit_key_prefix,
        metrics=metrics,
    )
    if settings.events_dispatch_in_web and settings.events_hold_writes_after_seconds:
        install_write_backpressure(
            app,
            lambda timeout: container.dispatcher().wait_until_caught_up(timeout),
            timeout=settings.events_hold_writes_max_seconds,
            blueprints=[module.bp.name for module in served],
        )
    install_security_headers(app, hsts_seconds=settings.hsts_seconds)
    install_cors(app, settings.cors_origins(), path_prefix=API_PREFIX)

    subscribe_all(container)
    container.wire(modules=served, warn_unresolved=True, keep_cache=True)
    return app


def container_of(app: Flask) -> ApplicationContainer:
    container: ApplicationContainer = app.extensions[CONTAINER]
    return container
