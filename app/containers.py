"""The application container: one container per context, assembled around shared infrastructure.

This is the context map of the running process: which context's API another context gets,
and which outboxes the event dispatcher serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from dependency_injector import containers, providers

from app.config import BEARER_CONTEXTS, CONTEXTS, Settings
from app.placement import RELAY, Placement
from app.subscriptions import SUBSCRIPTIONS
from contexts.audit.container import AuditContainer
from contexts.notification.adapters.mailers import mailer_from_settings
from contexts.notification.container import NotificationContainer
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.order.container import OrderContainer
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.api import ProductApi
from contexts.product.container import ProductContainer
from contexts.recommendation.container import RecommendationContainer
from contexts.user.adapters.orm import OUTBOX as USER_OUTBOX
from contexts.user.adapters.passwords import Argon2PasswordHasher
from contexts.user.api import UserApi, UserNotFound
from contexts.user.container import UserContainer
from infrastructure.auth import CurrentRoles, TokenService
from infrastructure.db import Database, Engines
from infrastructure.events.broker.layout import QueueLayout
from infrastructure.events.bus import EventBus
from infrastructure.events.dispatcher import Dispatcher, RetryPolicy
from infrastructure.events.outbox import Outbox
from infrastructure.events.tables import OutboxTables

if TYPE_CHECKING:
    # The clients of other services and of the broker bring httpx, tenacity, pybreaker (and with
    # it redis) and kombu: imported where a service URL or the broker is configured, not before.
    from contexts.product.client import RemoteProductApi
    from contexts.user.client import RemoteUserApi
    from infrastructure.events.broker.publisher import BrokerPublisher
    from infrastructure.remote.breakers import BreakerRegistry


def placement_of(settings: Settings) -> Placement:
    return Placement(SUBSCRIPTIONS, frozenset(settings.hosted_contexts()))


def broker_layout_for(settings: Settings, placement: Placement) -> QueueLayout:
    return QueueLayout(
        placement.broker_map(),
        exchange=settings.events_broker_exchange,
        queue_prefix=settings.events_broker_queue_prefix,
        retry_delay=settings.events_broker_retry_seconds,
    )


def broker_publisher_for(settings: Settings, layout: QueueLayout, placement: Placement) -> BrokerPublisher | None:
    """The relay's connection to the broker, when events published here go to other services."""
    url = settings.events_broker_url_value()
    if url is None or not placement.relayed():
        return None
    from infrastructure.events.broker.publisher import BrokerPublisher

    return BrokerPublisher(url, layout, connections=settings.delivery_workers())


def served_outboxes(settings: Settings, *outboxes: Outbox) -> list[Outbox]:
    """The outboxes of the publishing contexts this process serves: its dispatcher's work."""
    return [outbox for outbox in outboxes if outbox.context in settings.hosted_contexts()]


# The contexts that publish events, and so keep delivery records.
OUTBOX_TABLES: dict[str, OutboxTables] = {"user": USER_OUTBOX, "product": PRODUCT_OUTBOX, "order": ORDER_OUTBOX}


@contextmanager
def delivery_records(settings: Settings) -> Iterator[list[Outbox]]:
    """The outboxes of the publishing contexts this process serves, on their databases and
    nothing else: for the commands that read and steer delivery (``shop events``), which need
    neither the app nor the settings of the calls between services."""
    engines = Engines(settings.database_pool())
    databases = {
        context: Database(
            context,
            settings.database_url_for(context),
            schema=settings.database_schema_for(context),
            engines=engines,
        )
        for context in settings.hosted_contexts()
        if context in OUTBOX_TABLES
    }
    try:
        # No subscriber is asked of these outboxes: they record no events.
        yield [Outbox(context, database, OUTBOX_TABLES[context], EventBus()) for context, database in databases.items()]
    finally:
        for database in databases.values():
            database.dispose()


def product_api_for(
    settings: Settings, in_process: Callable[[], ProductApi], breakers: Callable[[], BreakerRegistry]
) -> ProductApi:
    """The product context as its callers get it: its facade in this process, or the remote
    client when PRODUCT_SERVICE_URL names the product service (SERVICE_TOKEN is then set:
    the settings refuse the one without the other)."""
    if settings.product_service_url is None:
        return in_process()
    from contexts.product.client import RemoteProductApi
    from infrastructure.remote.service import RemoteService

    token = settings.service_token_value()
    assert token is not None, "the settings refuse PRODUCT_SERVICE_URL without SERVICE_TOKEN"
    service = RemoteService(
        "product", settings.product_service_url, token, settings.remote_options(), breakers=breakers()
    )
    return RemoteProductApi(service)


def user_api_for(
    settings: Settings, in_process: Callable[[], UserApi], breakers: Callable[[], BreakerRegistry]
) -> UserApi:
    """The user context as the rest of this process gets it: its facade in this process, or the
    remote client when USER_SERVICE_URL names the user service (SERVICE_TOKEN is then set:
    the settings refuse the one without the other)."""
    if settings.user_service_url is None:
        return in_process()
    from contexts.user.client import RemoteUserApi
    from infrastructure.remote.service import RemoteService

    token = settings.service_token_value()
    assert token is not None, "the settings refuse USER_SERVICE_URL without SERVICE_TOKEN"
    service = RemoteService("user", settings.user_service_url, token, settings.remote_options(), breakers=breakers())
    return RemoteUserApi(service)


def breaker_registry() -> BreakerRegistry:
    """The circuit breakers of the process's calls to other services, one per target."""
    from infrastructure.remote.breakers import BreakerRegistry

    return BreakerRegistry()


def remote_services(container: ApplicationContainer) -> dict[str, RemoteProductApi | RemoteUserApi]:
    """The clients of other services this process calls, by service name (for readiness)."""
    settings = container.settings()
    if settings.product_service_url is None and settings.user_service_url is None:
        return {}  # all in process: nothing to import the clients (and httpx) for
    from contexts.product.client import RemoteProductApi
    from contexts.user.client import RemoteUserApi

    clients = {"product": container.product_api(), "user": container.user_api()}
    return {name: api for name, api in clients.items() if isinstance(api, RemoteProductApi | RemoteUserApi)}


def current_roles_for(settings: Settings, users: UserApi) -> CurrentRoles | None:
    """Every bearer token is checked against the user's record, through the user context's
    published API (in process, or the user service's when USER_SERVICE_URL is set): unknown
    users are refused, the role is the current one. A user service that does not answer makes
    the request a 503 (DependencyUnavailable): a token that cannot be checked is not trusted.
    A process serving no context whose endpoints take bearer tokens checks none."""
    if not {"user", *BEARER_CONTEXTS} & set(settings.hosted_contexts()):
        return None

    def role_of(user_id: uuid.UUID) -> str | None:
        try:
            return users.get_user(user_id).role
        except UserNotFound:
            return None

    return CurrentRoles(role_of, ttl=settings.token_subject_cache_seconds)


class ApplicationContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    event_bus = providers.Dependency(instance_of=EventBus)
    tokens = providers.Dependency(instance_of=TokenService)
    password_hasher = providers.Dependency(instance_of=Argon2PasswordHasher)
    user_database = providers.Dependency(instance_of=Database)
    product_database = providers.Dependency(instance_of=Database)
    order_database = providers.Dependency(instance_of=Database)
    notification_database = providers.Dependency(instance_of=Database)
    audit_database = providers.Dependency(instance_of=Database)
    recommendation_database = providers.Dependency(instance_of=Database)

    user = providers.Container(
        UserContainer,
        database=user_database,
        event_bus=event_bus,
        tokens=tokens,
        password_hasher=password_hasher,
    )
    product = providers.Container(
        ProductContainer,
        database=product_database,
        event_bus=event_bus,
        reservation_ttl=providers.Factory(timedelta, seconds=settings.provided.reservation_ttl_seconds),
    )
    # Made by the first remote client only (see build_container).
    breakers = providers.Singleton(breaker_registry)
    # What the order and recommendation contexts call: in process or remote, by configuration.
    product_api = providers.Singleton(
        product_api_for, settings=settings, in_process=product.api.provider, breakers=breakers.provider
    )
    order = providers.Container(OrderContainer, database=order_database, event_bus=event_bus, product_api=product_api)
    notification = providers.Container(
        NotificationContainer,
        database=notification_database,
        mailer=providers.Singleton(
            mailer_from_settings,
            smtp_url=settings.provided.smtp_url_value.call(),
            mail_folder=settings.provided.mail_folder.call(),
            sender=settings.provided.mail_from,
            timeout=settings.provided.smtp_timeout_seconds,
        ),
    )
    # What checks bearer tokens against the user's record: in process or remote, by configuration.
    user_api = providers.Singleton(
        user_api_for, settings=settings, in_process=user.api.provider, breakers=breakers.provider
    )
    current_roles = providers.Singleton(current_roles_for, settings=settings, users=user_api)
    audit = providers.Container(AuditContainer, database=audit_database)
    recommendation = providers.Container(
        RecommendationContainer, database=recommendation_database, product_api=product_api
    )

    placement = providers.Singleton(placement_of, settings=settings)
    broker_layout = providers.Singleton(broker_layout_for, settings=settings, placement=placement)
    broker_publisher = providers.Singleton(
        broker_publisher_for, settings=settings, layout=broker_layout, placement=placement
    )

    dispatcher = providers.Singleton(
        Dispatcher,
        outboxes=providers.Callable(served_outboxes, settings, user.outbox, product.outbox, order.outbox),
        bus=event_bus,
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
    )


def databases(container: ApplicationContainer) -> dict[str, Database]:
    """The database of every context this process serves, by context name."""
    return {context: getattr(container, f"{context}_database")() for context in container.settings().hosted_contexts()}


def build_container(settings: Settings) -> ApplicationContainer:
    """Build everything eagerly: dependency-injector's Singleton is not thread-safe, so
    nothing may be created lazily by the first concurrent requests."""
    engines = Engines(settings.database_pool())
    container = ApplicationContainer(
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
            f"{context}_database": Database(
                context,
                settings.database_url_for(context),
                schema=settings.database_schema_for(context),
                engines=engines,
            )
            for context in CONTEXTS
        },
    )
    container.check_dependencies()
    # Everything made now, so that a misconfiguration stops the start; but the breakers, made
    # by the first remote client (they bring the HTTP client's libraries, which a process that
    # calls no other service never imports).
    for singleton in container.traverse(types=[providers.Singleton]):
        if singleton is not container.breakers:
            singleton()
    _refuse_publishing_for_contexts_served_elsewhere(container)
    return container


def _refuse_publishing_for_contexts_served_elsewhere(container: ApplicationContainer) -> None:
    """No event may be committed where it cannot be delivered: a context served elsewhere has
    its subscribers and relay in that process only (which subscribers run with it, this one
    cannot know), so an event it recorded here would get no delivery at all."""
    hosted = container.settings().hosted_contexts()
    for outbox in (container.user.outbox(), container.product.outbox(), container.order.outbox()):
        if outbox.context not in hosted:
            outbox.refuse_publishing(elsewhere(outbox.context))


def elsewhere(context: str) -> str:
    """What to tell whoever tries to change ``context`` in a process that does not serve it."""
    return (
        f"this process does not serve the {context} context (SERVED_CONTEXTS): changes to it must be made where it"
        f" is served, with the settings of the process serving {context}, so that its events reach their subscribers"
    )
