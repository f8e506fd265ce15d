"""The contexts of the shop, each declared once: everything in ``app/`` loops over this.

An entry says how the context's container is wired to what the app shares (its database, the
event bus, the published APIs of the contexts it calls), which module serves its HTTP endpoints,
whether it publishes events (its outbox), whether its endpoints take bearer tokens, whether other
services may call its published API, what it runs periodically, and which events it subscribes
to. Adding a context is a folder under ``contexts/`` and one entry here
(``tests/architecture/test_new_context.py`` adds one to a copy of the project and runs it).

Entries are in dependency order: a context is declared after the contexts whose published API
it calls, and the order is the order of migrations, endpoints in the API document and
``SERVED_CONTEXTS``.

A subscription names its subscriber and the provider of the subscriber's container class that
handles the event, by reference: a misspelt handler fails in mypy and at import, and one of
another context than its subscriber's fails at start-up (``app.subscriptions.served_copy``). The
name is the subscriber's identity in the delivery records (renaming one leaves its pending
deliveries to nobody) and the unit of ordering: one name over several event types gets one
aggregate's events in the order they were recorded, so the audit log sees an order placed before
it is cancelled even when the first delivery had to be retried — when the audit context is
served with the order context; across the broker a retried message lets later ones pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dependency_injector import providers

from app.placement import Subscription
from contexts.audit.container import AuditContainer
from contexts.notification.adapters.mailers import mailer_from_settings
from contexts.notification.container import NotificationContainer
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.order.container import OrderContainer
from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.application.handlers import ExpireReservations
from contexts.product.container import ProductContainer
from contexts.recommendation.container import RecommendationContainer
from contexts.user.adapters.orm import OUTBOX as USER_OUTBOX
from contexts.user.container import UserContainer
from contexts.user.events import UserRegistered
from infrastructure.events.tables import OutboxTables

if TYPE_CHECKING:
    from app.containers import Shared

# The context whose published API checks every bearer token against the user's record.
IDENTITY = "user"


@dataclass(frozen=True)
class Periodic:
    """Housekeeping a context's container runs on the maintenance interval, where it is served;
    ``run`` returns how many things it handled (logged when not 0)."""

    name: str
    run: Callable[[Any], int]


@dataclass(frozen=True)
class Context:
    name: str
    # The context's container, wired to what the app shares.
    container: Callable[[Shared], providers.Container[Any]]
    # The module holding the blueprint ``bp`` of its public endpoints (``internal_bp`` too when
    # it is ``callable_remotely``); None: it serves none.
    http: str | None = None
    # Its delivery records: it publishes events (its container's ``outbox``).
    outbox: OutboxTables | None = None
    # Its endpoints take bearer tokens: a process serving it checks them with the identity context.
    bearer: bool = False
    # The contexts whose published API (their container's ``api``) it calls.
    calls: tuple[str, ...] = ()
    # Its published API may be served apart, at ``<NAME>_SERVICE_URL``, by this client class
    # ("module:Class"; imported only then: it brings the HTTP client).
    remote_client: str | None = None
    periodic: tuple[Periodic, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()


def _expire_reservations(product: Any) -> int:
    expired: int = product.expire_reservations()(ExpireReservations())
    return expired


# One name for both order mails: a buyer is told of a cancellation only after the confirmation
# of that order went out (the name predates the cancellation notice).
ORDER_MAILS = "notification.order_confirmation_email"

# ``batched``: every effect of the subscriber is one write unit of work on its context's
# database, so that the dispatcher may deliver several events to it in one transaction. Not the
# mails (their effect is outside the database: a batch rolled back and run again would send
# them twice) nor the relay (the broker). Batched only on a database that runs one writer at a
# time (SQLite): there a batch saves a BEGIN IMMEDIATE, a writer turn and a commit per delivery
# and loses nothing. On PostgreSQL deliveries wait on round trips, and the dispatcher's workers
# overlap those; a batch runs one subscriber's deliveries one after the other and holds their
# row locks until its commit (measured: order-e2e fell from 0.21-0.23 to 0.15 of the floor,
# bench/README.md). What a batched subscriber must keep to: its writes are to its own context's
# database only (a write unit of work on another database inside a batch raises), so it must not
# call another context's write API in process; and its read units of work do not see what the
# earlier deliveries of its batch wrote (they are not committed yet), so it reads through its
# write unit of work what it needs to see of them.
REGISTRY: tuple[Context, ...] = (
    Context(
        "user",
        lambda shared: providers.Container(
            UserContainer,
            database=shared.database("user"),
            event_bus=shared.event_bus,
            tokens=shared.tokens,
            password_hasher=shared.password_hasher,
        ),
        http="contexts.user.http",
        outbox=USER_OUTBOX,
        remote_client="contexts.user.client:RemoteUserApi",
    ),
    Context(
        "product",
        lambda shared: providers.Container(
            ProductContainer,
            database=shared.database("product"),
            event_bus=shared.event_bus,
            reservation_ttl=providers.Factory(timedelta, seconds=shared.settings.provided.reservation_ttl_seconds),
        ),
        http="contexts.product.http",
        outbox=PRODUCT_OUTBOX,
        bearer=True,
        remote_client="contexts.product.client:RemoteProductApi",
        periodic=(Periodic("reservations_expired", _expire_reservations),),
        subscriptions=(
            Subscription(
                OrderPlaced,
                "product.confirm_reservation",
                ProductContainer.when_order_placed_confirm_reservation,
                batched=True,
            ),
            Subscription(
                OrderCancelled,
                "product.release_cancelled_order",
                ProductContainer.when_order_cancelled_release_stock,
                batched=True,
            ),
        ),
    ),
    Context(
        "order",
        lambda shared: providers.Container(
            OrderContainer,
            database=shared.database("order"),
            event_bus=shared.event_bus,
            product_api=shared.api("order", "product"),
        ),
        http="contexts.order.http",
        outbox=ORDER_OUTBOX,
        bearer=True,
        calls=("product",),
    ),
    Context(
        "notification",
        lambda shared: providers.Container(
            NotificationContainer,
            database=shared.database("notification"),
            mailer=providers.Singleton(
                mailer_from_settings,
                smtp_url=shared.settings.provided.smtp_url_value.call(),
                mail_folder=shared.settings.provided.mail_folder.call(),
                sender=shared.settings.provided.mail_from,
                timeout=shared.settings.provided.smtp_timeout_seconds,
            ),
        ),
        subscriptions=(
            Subscription(
                UserRegistered,
                "notification.recipients",
                NotificationContainer.when_user_registered_remember_recipient,
                batched=True,
            ),
            Subscription(
                UserRegistered, "notification.welcome_email", NotificationContainer.when_user_registered_send_welcome
            ),
            Subscription(OrderPlaced, ORDER_MAILS, NotificationContainer.when_order_placed_send_confirmation),
            Subscription(OrderCancelled, ORDER_MAILS, NotificationContainer.when_order_cancelled_send_notice),
        ),
    ),
    Context(
        "audit",
        lambda shared: providers.Container(AuditContainer, database=shared.database("audit")),
        http="contexts.audit.http",
        bearer=True,
        subscriptions=(
            Subscription(UserRegistered, "audit.user_log", AuditContainer.when_user_registered_audit, batched=True),
            Subscription(OrderPlaced, "audit.order_log", AuditContainer.when_order_placed_audit, batched=True),
            Subscription(OrderCancelled, "audit.order_log", AuditContainer.when_order_cancelled_audit, batched=True),
        ),
    ),
    Context(
        "recommendation",
        lambda shared: providers.Container(
            RecommendationContainer,
            database=shared.database("recommendation"),
            product_api=shared.api("recommendation", "product"),
        ),
        http="contexts.recommendation.http",
        bearer=True,
        calls=("product",),
        subscriptions=(
            Subscription(
                UserRegistered,
                "recommendation.profile",
                RecommendationContainer.when_user_registered_create_profile,
                batched=True,
            ),
            Subscription(
                OrderPlaced,
                "recommendation.purchases",
                RecommendationContainer.when_order_placed_record_purchase,
                batched=True,
            ),
            Subscription(
                OrderCancelled,
                "recommendation.purchases",
                RecommendationContainer.when_order_cancelled_subtract_purchase,
                batched=True,
            ),
        ),
    ),
)

CONTEXTS: tuple[str, ...] = tuple(context.name for context in REGISTRY)
SUBSCRIPTIONS: tuple[Subscription, ...] = tuple(s for context in REGISTRY for s in context.subscriptions)
BY_NAME: dict[str, Context] = {context.name: context for context in REGISTRY}


def callers_of(name: str) -> tuple[str, ...]:
    """The contexts that call ``name``'s published API: those that say so, and for the identity
    context every context whose endpoints take bearer tokens."""
    return tuple(context.name for context in REGISTRY if name in context.calls or (name == IDENTITY and context.bearer))


def publishing() -> dict[str, OutboxTables]:
    """The contexts that publish events, and so keep delivery records: their outbox tables."""
    return {context.name: context.outbox for context in REGISTRY if context.outbox is not None}


def remotely_callable() -> tuple[Context, ...]:
    """The contexts whose published API another service may call (``/internal/`` endpoints)."""
    return tuple(context for context in REGISTRY if context.remote_client is not None)
