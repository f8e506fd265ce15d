"""A process serving some contexts: their endpoints, databases, subscribers and relays only.

The placement of every subscription is pinned for the topologies the README describes; apps
serving a subset are built for real (on both backends) and inspected. That events actually
cross between such processes through RabbitMQ is proven end to end in tests/e2e.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from pydantic import ValidationError
from sqlalchemy import inspect, text

from app.config import Settings, settings_problems
from app.containers import ApplicationContainer, databases
from app.factory import container_of
from app.migrations import upgrade_all
from app.placement import RELAY, Placement
from app.registry import CONTEXTS, SUBSCRIPTIONS
from app.subscriptions import served_copy
from contexts.notification.container import NotificationContainer
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role
from infrastructure.events.outbox import PublishingRefused
from tests.conftest import MakeApp, amqp_url_or_skip, database_for
from tests.http_servers import dead_url

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
TOKEN = "s" * 40
APART = {"events_broker_url": BROKER, "service_token": TOKEN, "token_secret": "t" * 40}
# A process serving contexts that take bearer tokens, without the user context, checks them at
# the user service (never called here).
APART_FROM_USER = {**APART, "user_service_url": "http://127.0.0.1:9"}
ALL_BUT_PRODUCT = "user,order,notification,audit,recommendation"


def subscribed(container: ApplicationContainer) -> set[str]:
    """Every subscriber name on the process's bus, over every event type there is."""
    bus = container.event_bus()
    return {name for subscription in SUBSCRIPTIONS for name in bus.subscribers(subscription.event_type)}


def placement(*served: str) -> Placement:
    return Placement(SUBSCRIPTIONS, frozenset(served or CONTEXTS))


def test_the_monolith_runs_every_subscriber_itself_and_relays_nothing() -> None:
    whole = placement()
    assert len(whole.local()) == len(SUBSCRIPTIONS)
    assert (whole.relayed(), whole.consumed()) == ([], [])


def test_each_subscription_runs_its_handler_as_a_provider_of_its_subscribers_context(app: Any) -> None:
    """The subscribers on the bus are the app's copies of the referenced providers, one per
    subscription: the handler of the subscriber's context, called when the event is delivered."""
    container = container_of(app)
    for subscription in SUBSCRIPTIONS:
        copy = served_copy(getattr(container, subscription.subscriber), subscription.handler)
        assert copy is not subscription.handler, "the app's copy, wired to its settings"
        assert copy.provides is subscription.handler.provides  # type: ignore[attr-defined]


def test_a_handler_of_another_context_than_its_subscribers_fails_at_start_up(app: Any) -> None:
    container = container_of(app)
    with pytest.raises(LookupError, match=r"not a provider of .*AuditContainer"):
        served_copy(container.audit, NotificationContainer.when_user_registered_send_welcome)


def test_with_product_apart_order_events_cross_both_ways_through_the_broker() -> None:
    rest = placement(*ALL_BUT_PRODUCT.split(","))
    assert [event_type.TYPE for event_type in rest.relayed()] == ["order.OrderCancelled", "order.OrderPlaced"]
    assert rest.consumed() == []
    product = placement("product")
    assert [s.name for s in product.local()] == ["product.confirm_reservation", "product.release_cancelled_order"]
    assert product.relayed() == [], "nobody subscribes to the product context's events"
    assert product.consumed() == ["product.confirm_reservation", "product.release_cancelled_order"]


def test_queues_are_declared_only_for_subscriptions_that_cross_the_process_boundary() -> None:
    assert placement().broker_map() == {}
    product_queues = {
        "product.confirm_reservation": {"order.OrderPlaced"},
        "product.release_cancelled_order": {"order.OrderCancelled"},
    }
    assert placement(*ALL_BUT_PRODUCT.split(",")).broker_map() == product_queues, "no queue nobody reads"
    assert placement("product").broker_map() == product_queues
    assert placement("audit").broker_map() == {
        "audit.user_log": {"user.UserRegistered"},
        "audit.order_log": {"order.OrderPlaced", "order.OrderCancelled"},
    }


def test_with_every_context_apart_each_relays_what_it_publishes_and_consumes_what_it_takes() -> None:
    assert [t.TYPE for t in placement("user").relayed()] == ["user.UserRegistered"]
    assert [t.TYPE for t in placement("order").relayed()] == ["order.OrderCancelled", "order.OrderPlaced"]
    assert placement("notification").consumed() == [
        "notification.order_confirmation_email",
        "notification.recipients",
        "notification.welcome_email",
    ]
    assert placement("audit").consumed() == ["audit.order_log", "audit.user_log"]
    assert placement("recommendation").consumed() == ["recommendation.profile", "recommendation.purchases"]
    every_consumer = {name for context in CONTEXTS for name in placement(context).consumed()}
    assert every_consumer == {s.name for s in SUBSCRIPTIONS}, "every subscriber is served somewhere"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"served_contexts": "product,shipping"}, "unknown context shipping"),
        ({"served_contexts": "product", "service_token": TOKEN}, "EVENTS_BROKER_URL: required: this process"),
        ({"served_contexts": "product", "events_broker_url": BROKER}, "SERVICE_TOKEN: required: this process"),
        ({"served_contexts": "order", **APART}, "PRODUCT_SERVICE_URL: required: this process serves order"),
        ({"served_contexts": "recommendation", **APART}, "PRODUCT_SERVICE_URL: required"),
        ({"events_broker_url": "http://rabbit:5672/"}, "amqp:// or amqps://"),
        ({"served_contexts": "product", "events_broker_url": BROKER, "service_token": TOKEN}, "TOKEN_SECRET: required"),
        ({"product_service_url": "http://product:8000", "service_token": TOKEN}, "TOKEN_SECRET: required"),
    ],
)
def test_a_process_that_could_not_reach_the_contexts_it_needs_is_refused(
    tmp_path: Path, settings: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(instance_path=tmp_path, **settings)
    assert complaint in settings_problems(refused.value)


def test_a_process_serving_contexts_apart_does_not_make_up_its_own_signing_secret(tmp_path: Path) -> None:
    """It would sign tokens no other service accepts, and refuse every token they sign."""
    with pytest.raises(ValidationError) as refused:
        Settings(instance_path=tmp_path, served_contexts="user", events_broker_url=BROKER, service_token=TOKEN)
    assert settings_problems(refused.value).splitlines() == [
        "  TOKEN_SECRET: required when contexts are served apart (SERVED_CONTEXTS, USER_SERVICE_URL,"
        " PRODUCT_SERVICE_URL): every service must verify the tokens the others sign, so all of them need the"
        " same secret"
    ]
    assert not (tmp_path / "token-secret").exists()


@pytest.mark.usefixtures("backend")
def test_the_product_service_serves_its_endpoints_databases_and_subscribers_only(make_app: MakeApp) -> None:
    app = make_app(served_contexts="product", **APART_FROM_USER)
    container = container_of(app)
    client = app.test_client()

    assert list(databases(container)) == ["product"]
    assert client.get("/readyz").json["databases"] == {"product": "ok"}
    assert client.get("/api/v1/products").status_code == 200
    assert client.get("/api/v1/orders").status_code == 404
    assert client.post("/api/v1/users", json={}).status_code == 404
    assert client.get("/internal/v1/product/products", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400
    # It serves product's endpoints only, but documents the whole API (behind a gateway the
    # document may come from any process): tests/integration/test_openapi.py.
    assert "/api/v1/orders" in client.get("/openapi.json").json["paths"]
    assert [outbox.context for outbox in container.dispatcher().outboxes] == ["product"]
    assert subscribed(container) == {"product.confirm_reservation", "product.release_cancelled_order"}
    assert container.broker_publisher() is None, "nothing published here goes elsewhere"


@pytest.mark.usefixtures("backend")
def test_the_rest_relays_order_events_and_calls_the_product_service(make_app: MakeApp) -> None:
    app = make_app(served_contexts=ALL_BUT_PRODUCT, product_service_url="http://127.0.0.1:9", **APART)
    container = container_of(app)

    assert list(databases(container)) == ["user", "order", "notification", "audit", "recommendation"]
    assert app.test_client().get("/api/v1/products").status_code == 404
    assert [outbox.context for outbox in container.dispatcher().outboxes] == ["user", "order"]
    subscribers = subscribed(container)
    assert RELAY in subscribers
    assert not {name for name in subscribers if name.startswith("product.")}
    assert container.broker_publisher() is not None
    assert type(container.product_api().inner).__name__ == "RemoteProductApi"


def tables_of(context: str, instance: Path) -> list[str]:
    database = database_for(context, instance)
    try:
        with database.engine.connect() as connection:
            return inspect(connection).get_table_names(schema=database.schema)
    finally:
        database.dispose()


@pytest.mark.usefixtures("backend")
def test_migrations_create_only_the_served_contexts_tables(tmp_path: Path, make_app: MakeApp) -> None:
    make_app(served_contexts="audit", **APART_FROM_USER)  # start_app migrates what the app serves
    instance = tmp_path / "instance-0"
    assert "audit_entries" in tables_of("audit", instance)
    assert {context: tables_of(context, instance) for context in CONTEXTS if context != "audit"} == {
        context: [] for context in CONTEXTS if context != "audit"
    }


@pytest.mark.usefixtures("backend")
def test_a_context_served_elsewhere_cannot_commit_an_event_that_nothing_here_would_deliver(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """Its subscribers and relay run where it is served; committed here, UserRegistered would
    have had no delivery at all (no audit entry, no welcome mail, no recommendation profile)."""
    container = container_of(make_app(served_contexts="product", **APART_FROM_USER))
    upgrade_all({"user": container.user_database()})  # as if it shared the user service's database
    register = container.user.register_user()

    with pytest.raises(PublishingRefused, match="does not serve the user context"):
        register(RegisterUser(email="ops@example.com", password="correct horse", name="Ops", role=Role.ADMIN))

    users = database_for("user", tmp_path / "instance-0")
    try:
        with users.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM user_users")).scalar_one() == 0
            assert connection.execute(text("SELECT count(*) FROM user_outbox")).scalar_one() == 0
    finally:
        users.dispose()


# --- readiness of a process using the broker ----------------------------------------------------


def test_a_process_that_relays_and_consumes_reports_the_broker_and_stays_ready_without_it(
    make_app: MakeApp,
) -> None:
    dead_broker = dead_url().replace("http://", "amqp://guest:guest@") + "//"
    app = make_app(served_contexts="product", **{**APART_FROM_USER, "events_broker_url": dead_broker})
    client = app.test_client()
    assert "broker" not in client.get("/readyz").json, "nothing here uses the broker until it consumes"
    consumer = container_of(app).broker_consumer()
    consumer.start()  # as the background work does; it cannot connect
    try:
        ready = client.get("/readyz")
        metrics = client.get("/metrics").text
    finally:
        consumer.stop()

    assert ready.status_code == 200, "a broker outage is waited out: the events stay in the outbox and the queues"
    assert ready.json["broker"] == "unavailable"
    assert 'shop_dependency_ready{dependency="broker"} 0.0' in metrics
    assert "shop_ready 1.0" in metrics


def test_with_the_broker_up_readiness_says_so(make_app: MakeApp) -> None:
    url, prefix = amqp_url_or_skip(), f"t{uuid.uuid4().hex[:12]}"
    app = make_app(
        served_contexts="product",
        **{
            **APART_FROM_USER,
            "events_broker_url": url,
            "events_broker_exchange": f"{prefix}.events",
            "events_broker_queue_prefix": prefix,
        },
    )
    container = container_of(app)
    consumer = container.broker_consumer()
    consumer.start()
    try:
        deadline = time.monotonic() + 10
        while not consumer.consuming:
            assert time.monotonic() < deadline, "the consumer never connected"
            time.sleep(0.05)
        ready = app.test_client().get("/readyz")
    finally:
        consumer.stop()
        layout = container.broker_layout()
        with Connection(url) as connection:  # the queues and exchange this test's consumer declared
            channel = connection.channel()
            for queue in layout.queue_names():
                channel.queue_delete(queue)
            channel.exchange_delete(layout.exchange)
    assert ready.status_code == 200
    assert ready.json["broker"] == "ok"


def test_the_monolith_uses_no_broker_and_reports_none(app: Any) -> None:
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200
    assert "broker" not in ready.json
    assert ready.json["services"] == {}
