"""The application container: the registry's contexts, each in its own container, assembled
around what they share.

This is the context map of the running process: which context's API another context gets (its
facade in process, or its remote client), and which outboxes the event dispatcher serves.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.placement import RELAY, Placement
from app.registry import BY_NAME, IDENTITY, REGISTRY, SUBSCRIPTIONS, publishing
from contexts.user.adapters.passwords import Argon2PasswordHasher
from contexts.user.api import UserApi, UserNotFound
from infrastructure.auth.tokens import CurrentRoles, TokenService
from infrastructure.db.database import Database, Engines
from infrastructure.errors import DependencyUnavailable
from infrastructure.events.broker.layout import QueueLayout
from infrastructure.events.bus import EventBus
from infrastructure.events.delivery_runner import deliver_from_broker
from infrastructure.events.dispatcher import Dispatcher
from infrastructure.events.outbox import Outbox
from infrastructure.events.retry_policy import RetryPolicy
from infrastructure.observability.instruments import MeasuredApi, recorded_events_counter
from infrastructure.observability.metrics import Metrics
from infrastructure.observability.tracing import TracedUseCase, tracer_provider_from_env

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    # The clients of other services and of the broker bring httpx, tenacity, pybreaker (and with
    # it redis) and kombu: imported where a service URL or the broker is configured, not before.
    from infrastructure.events.broker.consumer import BrokerConsumer
    from infrastructure.events.broker.publisher import BrokerPublisher
    from infrastructure.remote.breakers import BreakerRegistry


def app_metrics() -> Metrics:
    """The app's metrics, in a registry of their own (``/metrics`` serves it)."""
    return Metrics(CollectorRegistry(auto_describe=True))


def tracing_for(settings: Settings) -> TracerProvider | None:
    """The app's tracer provider when the ``OTEL_*`` variables turn tracing on; its service is
    named for the contexts served here (``modular-shop`` when all, else
    ``modular-shop-product``, …) unless ``OTEL_SERVICE_NAME`` names it."""
    hosted = settings.hosted_contexts()
    every = len(hosted) == len(REGISTRY)
    return tracer_provider_from_env("modular-shop" if every else "-".join(("modular-shop", *hosted)))


def placement_of(settings: Settings) -> Placement:
    return Placement(SUBSCRIPTIONS, frozenset(settings.hosted_contexts()))


def broker_layout_for(settings: Settings, placement: Placement) -> QueueLayout:
    return QueueLayout(
        placement.broker_map(),
        exchange=settings.events_broker_exchange,
        queue_prefix=settings.events_broker_queue_prefix,
        retry_delay=settings.events_broker_retry_seconds,
    )


def broker_publisher_for(
    settings: Settings,
    layout: QueueLayout,
    placement: Placement,
    metrics: Metrics,
    tracing: TracerProvider | None,
) -> BrokerPublisher | None:
    """The relay's connection to the broker, when events published here go to other services."""
    url = settings.events_broker_url_value()
    if url is None or not placement.relayed():
        return None
    from infrastructure.events.broker.publisher import BrokerPublisher

    return BrokerPublisher(url, layout, connections=settings.delivery_workers(), metrics=metrics, tracing=tracing)


def broker_consumer_for(
    settings: Settings,
    placement: Placement,
    layout: QueueLayout,
    bus: EventBus,
    metrics: Metrics,
    tracing: TracerProvider | None,
) -> BrokerConsumer | None:
    """The broker consumer of the subscribers served here that take events published by
    contexts served elsewhere (started by the background work); None when there are none (the
    monolith)."""
    consumed = placement.consumed()
    url = settings.events_broker_url_value()
    if not consumed or url is None:
        return None
    from infrastructure.events.broker.consumer import BrokerConsumer  # kombu: only with a broker

    return BrokerConsumer(
        url,
        layout,
        deliver_from_broker(bus, tracing),
        subscribers=consumed,
        max_attempts=settings.events_max_attempts,
        transient=_dependency_away,
        metrics=metrics,
    )


def _dependency_away(error: Exception) -> bool:
    """A subscriber failing because its database, a service or a server is unreachable: the
    message is fine and must wait for it, however long, rather than become a dead letter."""
    return isinstance(error, (OperationalError, DependencyUnavailable, OSError))


def served_outboxes(settings: Settings, *outboxes: Outbox) -> list[Outbox]:
    """The outboxes of the publishing contexts this process serves: its dispatcher's work."""
    return [outbox for outbox in outboxes if outbox.context in settings.hosted_contexts()]


@contextmanager
def delivery_records(settings: Settings) -> Iterator[list[Outbox]]:
    """The outboxes of the publishing contexts this process serves, on their databases and
    nothing else: for the commands that read and steer delivery (``shop events``), which need
    neither the app nor the settings of the calls between services."""
    engines = Engines(settings.database_pool())
    served = {name: tables for name, tables in publishing().items() if name in settings.hosted_contexts()}
    databases = {
        name: Database(
            name, settings.database_url_for(name), schema=settings.database_schema_for(name), engines=engines
        )
        for name in served
    }
    try:
        # No subscriber is asked of these outboxes: they record no events.
        yield [Outbox(name, databases[name], tables, EventBus()) for name, tables in served.items()]
    finally:
        for database in databases.values():
            database.dispose()


def published_api(
    settings: Settings,
    context: str,
    in_process: Callable[[], Any],
    breakers: Callable[[], BreakerRegistry],
    metrics: Metrics,
    tracing: TracerProvider | None,
) -> MeasuredApi:
    """A context's published API as its callers get it, each call measured: its facade in this
    process, or its remote client when ``<CONTEXT>_SERVICE_URL`` names the service serving it
    (SERVICE_TOKEN is then set: the settings refuse the one without the other)."""
    url = settings.service_url_for(context)
    api_module = f"contexts.{context}.api"  # where every context keeps its published interface and errors
    if url is None:
        return MeasuredApi(in_process(), context, transport="in_process", errors_module=api_module, metrics=metrics)
    from infrastructure.remote.service import RemoteService

    client = BY_NAME[context].remote_client
    assert client is not None, f"the settings have no service URL for {context}, which cannot be served apart"
    token = settings.service_token_value()
    assert token is not None, "the settings refuse a service URL without SERVICE_TOKEN"
    module, _, name = client.partition(":")
    client_class = getattr(importlib.import_module(module), name)
    service = RemoteService(
        context, url, token, settings.remote_options(), breakers=breakers(), metrics=metrics, tracing=tracing
    )
    return MeasuredApi(client_class(service), context, transport="http", errors_module=api_module, metrics=metrics)


def breaker_registry(metrics: Metrics) -> BreakerRegistry:
    """The circuit breakers of the process's calls to other services, one per target."""
    from infrastructure.remote.breakers import BreakerRegistry

    return BreakerRegistry(metrics=metrics)


def remote_services(container: ApplicationContainer) -> dict[str, Any]:
    """The clients of other services this process calls, by service name (for readiness)."""
    settings = container.settings()
    return {
        context.name: getattr(container, f"{context.name}_api")().inner
        for context in REGISTRY
        if settings.service_url_for(context.name) is not None and hasattr(container, f"{context.name}_api")
    }


def broker_state(container: ApplicationContainer) -> Literal["ok", "unavailable"] | None:
    """Whether the broker answers this process's relay and consumer, as they last found out
    (read, never asked: readiness must not wait for a connection); None where neither runs here."""
    answers = []
    publisher = container.broker_publisher()
    if publisher is not None and container.dispatcher().running:
        answers.append(publisher.reachable)
    consumer = container.broker_consumer()
    if consumer is not None and consumer.started:
        answers.append(consumer.consuming)
    if not answers:
        return None
    return "ok" if all(answers) else "unavailable"


def current_roles_for(settings: Settings, users: UserApi) -> CurrentRoles | None:
    """Every bearer token is checked against the user's record, through the identity context's
    published API (in process, or the user service's when USER_SERVICE_URL is set): unknown
    users are refused, the role is the current one. A user service that does not answer makes
    the request a 503 (DependencyUnavailable): a token that cannot be checked is not trusted.
    A process serving no context whose endpoints take bearer tokens checks none."""
    hosted = settings.hosted_contexts()
    if IDENTITY not in hosted and not any(BY_NAME[name].bearer for name in hosted):
        return None

    def role_of(user_id: uuid.UUID) -> str | None:
        try:
            return users.get_user(user_id).role
        except UserNotFound:
            return None

    return CurrentRoles(role_of, ttl=settings.token_subject_cache_seconds)


class ApplicationContainer(containers.DeclarativeContainer):
    """What the app shares with its contexts. The contexts themselves, their databases and
    published APIs, and what serves them all (the dispatcher, the token check) are added from
    the registry by :func:`shop_container_class`; the annotations say what that adds for all."""

    settings = providers.Dependency(instance_of=Settings)
    event_bus = providers.Dependency(instance_of=EventBus)
    tokens = providers.Dependency(instance_of=TokenService)
    password_hasher = providers.Dependency(instance_of=Argon2PasswordHasher)
    metrics = providers.Singleton(app_metrics)
    tracing = providers.Singleton(tracing_for, settings=settings)
    # Made by the first remote client only (see build_container).
    breakers = providers.Singleton(breaker_registry, metrics=metrics)

    placement = providers.Singleton(placement_of, settings=settings)
    broker_layout = providers.Singleton(broker_layout_for, settings=settings, placement=placement)
    broker_consumer = providers.Singleton(
        broker_consumer_for,
        settings=settings,
        placement=placement,
        layout=broker_layout,
        bus=event_bus,
        metrics=metrics,
        tracing=tracing,
    )
    broker_publisher = providers.Singleton(
        broker_publisher_for,
        settings=settings,
        layout=broker_layout,
        placement=placement,
        metrics=metrics,
        tracing=tracing,
    )

    current_roles: providers.Singleton[CurrentRoles | None]
    dispatcher: providers.Singleton[Dispatcher]


class Shared:
    """What a registry entry wires its context's container to: the providers the app shares,
    the context's own database, and the published APIs of the contexts it calls, in process or
    remote by configuration."""

    def __init__(self) -> None:
        self.settings: providers.Dependency[Settings] = ApplicationContainer.settings
        self.event_bus: providers.Dependency[EventBus] = ApplicationContainer.event_bus
        self.tokens: providers.Dependency[TokenService] = ApplicationContainer.tokens
        self.password_hasher: providers.Dependency[Argon2PasswordHasher] = ApplicationContainer.password_hasher
        self.databases: dict[str, providers.Dependency[Database]] = {}
        self.contexts: dict[str, providers.Container[Any]] = {}
        self.apis: dict[str, providers.Singleton[Any]] = {}

    def database(self, context: str) -> providers.Dependency[Database]:
        return self.databases.setdefault(context, providers.Dependency(instance_of=Database))

    def api(self, caller: str, context: str) -> providers.Singleton[Any]:
        """``context``'s published API, for ``caller``, which must say it calls it."""
        if context not in BY_NAME[caller].calls:
            raise LookupError(f"the {caller} context calls {context}'s API without naming it in its calls")
        return self.published(context)

    def published(self, context: str) -> providers.Singleton[Any]:
        if context not in self.contexts:
            raise LookupError(f"the {context} context must be declared before the contexts that call it")
        if context not in self.apis:
            self.apis[context] = providers.Singleton(
                published_api,
                settings=self.settings,
                context=context,
                in_process=self.contexts[context].api.provider,
                breakers=ApplicationContainer.breakers.provider,
                metrics=ApplicationContainer.metrics,
                tracing=ApplicationContainer.tracing,
            )
        return self.apis[context]


def shop_container_class() -> type[ApplicationContainer]:
    """The application container of the registry's contexts, each under its name."""
    shared = Shared()
    for context in REGISTRY:
        shared.contexts[context.name] = context.container(shared)
    users = shared.published(IDENTITY)
    settings = ApplicationContainer.settings
    outboxes = [shared.contexts[name].outbox for name in publishing()]
    serving: dict[str, providers.Provider[Any]] = {
        "current_roles": providers.Singleton(current_roles_for, settings=settings, users=users),
        "dispatcher": providers.Singleton(
            Dispatcher,
            outboxes=providers.Callable(served_outboxes, settings, *outboxes),
            bus=ApplicationContainer.event_bus,
            workers=settings.provided.delivery_workers.call(),
            retry=providers.Factory(
                RetryPolicy,
                max_attempts=settings.provided.events_max_attempts,
                base_delay=settings.provided.events_retry_base_seconds,
                max_delay=settings.provided.events_retry_max_seconds,
            ),
            lease=providers.Factory(timedelta, seconds=settings.provided.events_claim_timeout_seconds),
            poll_interval=settings.provided.events_poll_seconds,
            persistent=(RELAY,),
            hold_writes_after=settings.provided.events_hold_writes_after_seconds,
            metrics=ApplicationContainer.metrics,
            tracing=ApplicationContainer.tracing,
        ),
    }
    return type(
        "ShopContainer",
        (ApplicationContainer,),
        {
            **shared.contexts,
            **{f"{name}_database": database for name, database in shared.databases.items()},
            **{f"{name}_api": api for name, api in shared.apis.items()},
            **serving,
        },
    )


ShopContainer = shop_container_class()


def context_container(container: ApplicationContainer, context: str) -> Any:
    """The container of ``context`` in the app's container."""
    return getattr(container, context)


def databases(container: ApplicationContainer) -> dict[str, Database]:
    """The database of every context this process serves, by context name."""
    return {context: getattr(container, f"{context}_database")() for context in container.settings().hosted_contexts()}


def build_container(settings: Settings) -> ApplicationContainer:
    """Build everything eagerly: dependency-injector's Singleton is not thread-safe, so
    nothing may be created lazily by the first concurrent requests."""
    engines = Engines(settings.database_pool())
    container = ShopContainer(
        settings=settings,
        event_bus=EventBus(),
        tokens=TokenService(
            settings.signing_secret(),
            ttl=timedelta(seconds=settings.token_ttl_seconds),
            previous_secrets=settings.previous_signing_secrets(),
        ),
        password_hasher=Argon2PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.password_hashing_concurrency,
            wait_seconds=settings.password_hashing_wait_seconds,
        ),
        # One engine, and so one pool, per database server for every context on it.
        **{
            f"{context.name}_database": Database(
                context.name,
                settings.database_url_for(context.name),
                schema=settings.database_schema_for(context.name),
                engines=engines,
            )
            for context in REGISTRY
        },
    )
    container.check_dependencies()
    tracing = container.tracing()
    if tracing is not None:
        _trace_use_cases(container, tracing)
    # Everything made now, so that a misconfiguration stops the start; but the breakers, made
    # by the first remote client (they bring the HTTP client's libraries, which a process that
    # calls no other service never imports).
    for singleton in container.traverse(types=[providers.Singleton]):
        if singleton is not container.breakers:
            singleton()
    _refuse_publishing_for_contexts_served_elsewhere(container)
    for name in publishing():
        context_container(container, name).outbox().on_recorded(recorded_events_counter(container.metrics()))
    return container


def _trace_use_cases(container: ApplicationContainer, tracing: TracerProvider) -> None:
    """Every use case of every context a span (``order.PlaceOrder``): each handler (the
    singletons made of its context's ``application.handlers`` classes, every context having
    that module in that role) is replaced by the same handler traced, before anything that
    takes it is made."""
    for context in REGISTRY:
        handlers = f"contexts.{context.name}.application.handlers"
        for provider in context_container(container, context.name).providers.values():
            if isinstance(provider, providers.Singleton) and provider.cls.__module__ == handlers:
                handler = type(provider)(provider.cls, *provider.args, **provider.kwargs)
                handler.add_attributes(**provider.attributes)
                provider.override(providers.Singleton(TracedUseCase, handler, context.name, tracing))


def _refuse_publishing_for_contexts_served_elsewhere(container: ApplicationContainer) -> None:
    """No event may be committed where it cannot be delivered: a context served elsewhere has
    its subscribers and relay in that process only (which subscribers run with it, this one
    cannot know), so an event it recorded here would get no delivery at all."""
    hosted = container.settings().hosted_contexts()
    for name in publishing():
        if name not in hosted:
            context_container(container, name).outbox().refuse_publishing(elsewhere(name))


def elsewhere(context: str) -> str:
    """What to tell whoever tries to change ``context`` in a process that does not serve it."""
    return (
        f"this process does not serve the {context} context (SERVED_CONTEXTS): changes to it must be made where it"
        f" is served, with the settings of the process serving {context}, so that its events reach their subscribers"
    )
