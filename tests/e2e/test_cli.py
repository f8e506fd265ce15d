"""The ``shop`` command as an operator runs it: migrations, admins, demo data and ``serve``.

Each test has its own instance folder; commands and servers run as real subprocesses, so
these tests also prove that the CLI and the server read the same settings and secret. The
tests that touch a database run on each backend: SQLite files, and PostgreSQL schemas when
``SHOP_TEST_POSTGRES_URL`` names a server. Where migrating is not what a test is about, its
databases come migrated from the test templates (``prepare_instance``), not ``shop db upgrade``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text

from app.migrations import script_location, version_table
from app.placement import RELAY, Placement
from app.registry import CONTEXTS, SUBSCRIPTIONS
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from infrastructure.events.broker._kombu import Connection, Producer, Queue  # typed as Any for mypy --strict
from infrastructure.events.broker.layout import QueueLayout
from infrastructure.events.tables import DEAD
from tests.conftest import Backend, database_for, prepare_instance
from tests.e2e.server import (
    API,
    REQUEST_TIMEOUT,
    ShopServer,
    bearer,
    free_port,
    shop,
    shop_env,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow
# The tests on the broker run on the pytest-xdist worker of every test that needs it (some stop it:
# tests/README.md, "Running in parallel").
ON_THE_BROKER = pytest.mark.xdist_group("rabbitmq")

PASSWORD = "admin password"


@pytest.fixture
def env(tmp_path: Path, backend: Backend) -> dict[str, str]:
    """The environment of shop commands on a fresh instance on ``backend`` (set up first)."""
    return shop_env(tmp_path / "instance")


def instance_of(env: dict[str, str]) -> Path:
    return Path(env["INSTANCE_PATH"])


def schema(env: dict[str, str]) -> dict[str, tuple[set[str], list[str]]]:
    """Per context: the tables of its database, and the revisions its version table holds."""
    found = {}
    for context in CONTEXTS:
        database = database_for(context, instance_of(env))
        try:
            with database.begin() as connection:
                tables = set(inspect(connection).get_table_names(schema=database.schema))
                versions = (
                    list(connection.scalars(text(f"SELECT version_num FROM {version_table(context)}")))
                    if version_table(context) in tables
                    else []
                )
        finally:
            database.dispose()
        found[context] = (tables - {version_table(context)}, versions)
    return found


def heads() -> dict[str, list[str]]:
    return {context: list(ScriptDirectory(str(script_location(context))).get_heads()) for context in CONTEXTS}


def create_admin(
    env: dict[str, str], email: str, password: str = PASSWORD, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return shop(
        "users", "create-admin", email, "--password", password, env=env, cwd=instance_of(env).parent, check=check
    )


def test_db_upgrade_twice_is_idempotent_and_says_only_what_it_applied(env: dict[str, str], tmp_path: Path) -> None:
    logged = {**env, "LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}
    first = shop("db", "upgrade", env=logged, cwd=tmp_path)
    after_first = schema(env)
    create_admin(env, "kept@example.com")
    second = shop("db", "upgrade", env=logged, cwd=tmp_path)

    assert "up to date" in first.stdout and "up to date" in second.stdout
    # One line per revision applied, none of Alembic's own; nothing at all when nothing is applied.
    applied = [json.loads(line) for line in first.stderr.splitlines()]
    assert {(line["event"], line["version_table"], line["revision"]) for line in applied} == {
        ("migration.applied", version_table(context), revision)
        for context in CONTEXTS
        for revision in [script.revision for script in ScriptDirectory(str(script_location(context))).walk_revisions()]
    }
    assert second.stderr == ""
    assert {context: versions for context, (_, versions) in after_first.items()} == heads()
    assert all(tables for tables, _ in after_first.values()), after_first
    assert schema(env) == after_first
    # The data survived the second run: the admin is still there.
    assert "already exists" in create_admin(env, "kept@example.com", check=False).stderr


def test_db_downgrade_then_upgrade_rebuilds_empty_databases(env: dict[str, str], tmp_path: Path) -> None:
    shop("db", "upgrade", env=env, cwd=tmp_path)
    upgraded = schema(env)
    create_admin(env, "before@example.com")

    shop("db", "downgrade", env=env, cwd=tmp_path)
    assert schema(env) == {context: (set(), []) for context in CONTEXTS}

    shop("db", "upgrade", env=env, cwd=tmp_path)
    assert schema(env) == upgraded
    # The admin went with the tables, so the same email can be registered again.
    assert "created admin before@example.com" in create_admin(env, "before@example.com").stdout


def test_admin_created_by_the_cli_logs_in_to_the_server_and_creates_products(
    env: dict[str, str], tmp_path: Path
) -> None:
    prepare_instance(instance_of(env))
    output = create_admin(env, "boss@example.com").stdout
    assert re.fullmatch(r"created admin boss@example\.com \([0-9a-f-]{36}\)\n", output), output

    with (
        ShopServer(env, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client,
    ):
        admin = bearer(client, "boss@example.com", PASSWORD)
        me = client.get(f"{API}/users/me", headers=admin)
        created = client.post(
            f"{API}/products", json={"sku": "CLI-1", "name": "Made by the boss", "price": "1.00"}, headers=admin
        )
    assert me.status_code == 200 and me.json()["role"] == "admin", me.text
    assert created.status_code == 201, created.text
    assert created.json()["sku"] == "CLI-1"


def test_create_admin_for_an_existing_email_fails_clearly(env: dict[str, str], tmp_path: Path) -> None:
    prepare_instance(instance_of(env))
    create_admin(env, "taken@example.com")

    for email in ("taken@example.com", "TAKEN@Example.com"):
        again = create_admin(env, email, check=False)
        assert again.returncode != 0, again.stdout
        assert "already exists" in again.stderr, again.stderr
        assert "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("email", "password", "complaint"),
    [
        ("not-an-email", PASSWORD, "email"),
        ("short@example.com", "seven77", "password"),
        ("long@example.com", "x" * 129, "password"),
    ],
)
def test_create_admin_rejects_invalid_input(tmp_path: Path, email: str, password: str, complaint: str) -> None:
    """Validation comes before any database work, so no migration is needed here, and one
    backend (the default SQLite files) is enough."""
    refused = create_admin(shop_env(tmp_path / "instance"), email, password, check=False)

    assert refused.returncode != 0
    assert refused.stderr.startswith("Error:") and complaint in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stdout == ""


def test_seed_demo_twice_is_idempotent_and_its_credentials_log_in(env: dict[str, str], tmp_path: Path) -> None:
    prepare_instance(instance_of(env))

    first = shop("seed-demo", env=env, cwd=tmp_path).stdout
    second = shop("seed-demo", env=env, cwd=tmp_path).stdout

    assert "demo customer created" in first and "created" not in second, (first, second)
    assert first.count(" created") == second.count("exists already") >= 2
    credentials = re.search(r"email (\S+@\S+) and password (\S+)", second)
    assert credentials, second
    email, password = credentials.groups()

    with (
        ShopServer(env, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client,
    ):
        customer = bearer(client, email, password)
        me = client.get(f"{API}/users/me", headers=customer).json()
        products = client.get(f"{API}/products", params={"limit": 100}).json()
    assert me["email"] == email and me["role"] == "customer"
    skus = [product["sku"] for product in products["items"]]
    assert len(skus) == len(set(skus)) == first.count("product ")
    assert all(f"product {sku} created" in first for sku in skus)


def test_serve_takes_its_port_from_the_port_variable(env: dict[str, str], tmp_path: Path) -> None:
    prepare_instance(instance_of(env))
    port = free_port()

    with ShopServer(env, tmp_path / "server.log", port=port, port_from_env=True) as server:
        assert server.port == port
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=REQUEST_TIMEOUT)
    assert health.json() == {"status": "ok"}
    assert f"listening on http://127.0.0.1:{port}" in (tmp_path / "server.log").read_text()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_stopped_by_sigterm_or_ctrl_c_exits_cleanly(
    env: dict[str, str], tmp_path: Path, stop: signal.Signals
) -> None:
    """A stop that was asked for is no failure: exit status 0, so `make run` reports no error."""
    prepare_instance(instance_of(env))
    server = ShopServer({**env, "LOG_LEVEL": "INFO"}, tmp_path / "server.log").start()
    assert server.process is not None
    server.process.send_signal(stop)

    assert server.stop() == 0, server.log_tail()
    assert "events.dispatcher_stopped" in (tmp_path / "server.log").read_text()


def test_make_run_stopped_by_sigterm_reports_no_error(tmp_path: Path) -> None:
    """SIGTERM to `make run`'s process group (as a terminal's Ctrl-C, or a supervisor, sends
    it): the shop stops cleanly and make says nothing of an error (it was `Error 143`). make
    itself still ends by the signal it got, as GNU make always does."""
    root = Path(__file__).resolve().parents[2]
    built = ["make", "-q", "-C", str(root), ".venv/.runtime-stamp"]
    if shutil.which("make") is None or subprocess.run(built, capture_output=True, check=False).returncode:
        pytest.skip("make is missing, or .venv is not built by `make` (the test would install it)")
    port = free_port()
    env = shop_env(tmp_path / "instance", PORT=str(port), LOG_LEVEL="INFO", LOG_FORMAT="json")
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "-C", str(root), "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_healthy(make, f"http://127.0.0.1:{port}", 60, "make run", log_path.read_text)
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(timeout=30)

    output = log_path.read_text()
    assert "events.dispatcher_stopped" in output
    assert "make: ***" not in output, output


def test_serve_migrate_sets_up_fresh_databases_then_serves(env: dict[str, str], tmp_path: Path) -> None:
    """What `make run` runs: one process that migrates, then serves."""
    with ShopServer(env, tmp_path / "server.log", options=("--migrate",)) as server:
        products = httpx.get(f"{server.url}{API}/products", timeout=REQUEST_TIMEOUT)
    assert products.status_code == 200, products.text
    assert {context: versions for context, (_, versions) in schema(env).items()} == heads()


def test_serve_migrate_is_refused_with_prod(env: dict[str, str], tmp_path: Path) -> None:
    refused = shop("serve", "--prod", "--migrate", env=env, cwd=tmp_path, check=False)

    assert refused.returncode == 2
    assert "shop db upgrade" in refused.stderr


def test_version_is_the_shops(tmp_path: Path) -> None:
    result = shop("--version", env=shop_env(tmp_path / "instance"), cwd=tmp_path)

    assert result.stdout == f"modular-shop {version('modular-shop')}\n"


def test_help_lists_the_commands_of_a_shop_operator_only(tmp_path: Path) -> None:
    """Not Flask's `run` (it would serve without delivering events), `shell`, or its
    extensions' commands (`limiter`)."""
    result = shop("--help", env=shop_env(tmp_path / "instance"), cwd=tmp_path)

    listed = result.stdout.partition("Commands:")[2].split()
    commands = {word for word in listed if re.fullmatch(r"[a-z-]+", word)} & {
        "db",
        "docs",
        "events",
        "gateway",
        "openapi",
        "routes",
        "seed-demo",
        "serve",
        "users",
        "run",
        "shell",
        "limiter",
    }
    assert commands == {"db", "docs", "events", "gateway", "openapi", "routes", "seed-demo", "serve", "users"}
    assert "--app" not in result.stdout and "--debug" not in result.stdout


def test_help_and_version_import_neither_flask_nor_the_shop(tmp_path: Path) -> None:
    """What keeps `shop --help` quick: the app is imported by the commands that use it."""
    probe = (
        "import sys\n"
        "from app.cli import main\n"
        "for arguments in (['--help'], ['--version'], ['events', '--help'], ['db', '--help'],"
        " ['gateway', '--help'], ['gateway', 'nginx', '--help']):\n"
        "    main(arguments, standalone_mode=False)\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "print('imported:', sorted(loaded & {'flask', 'sqlalchemy', 'pydantic', 'contexts', 'infrastructure'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path
    )

    assert result.stdout.splitlines()[-1] == "imported: []"


def test_routes_lists_the_endpoints(env: dict[str, str], tmp_path: Path) -> None:
    result = shop("routes", env=env, cwd=tmp_path)

    assert "/api/v1/products" in result.stdout and "/healthz" in result.stdout
    assert "--all-methods" in shop("routes", "--help", env=env, cwd=tmp_path).stdout


APART = {
    "EVENTS_BROKER_URL": "amqp://guest:guest@127.0.0.1:9//",
    "TOKEN_SECRET": "t" * 40,
    "SERVICE_TOKEN": "s" * 40,
    "USER_SERVICE_URL": "http://127.0.0.1:9",  # for a process serving product without user; never called
}


@pytest.mark.parametrize(
    ("served", "command", "missing"),
    [
        ("product", ("users", "create-admin", "ops@example.com", "--password", PASSWORD), "user"),
    ],
)
def test_a_command_refuses_to_change_a_context_this_process_does_not_serve(
    tmp_path: Path, served: str, command: tuple[str, ...], missing: str
) -> None:
    """Its events would have had no subscriber here (no audit entry, no welcome mail), and its
    writes might land in a database the serving process never reads."""
    env = shop_env(tmp_path / "instance", SERVED_CONTEXTS=served, **APART)

    refused = shop(*command, env=env, cwd=tmp_path, check=False)

    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert refused.stderr.splitlines() == [
        f"Error: this process serves {served} (SERVED_CONTEXTS): run `shop {' '.join(command[:2])}` with the"
        f" settings of the process serving {missing}"
    ]
    assert "created" not in refused.stdout


@pytest.fixture
def audit_queues(tmp_path: Path) -> Iterator[tuple[str, QueueLayout, str]]:
    """RabbitMQ's URL, the queues a process serving audit consumes, declared under a prefix
    of the test's own (deleted afterwards), and the event id of the dead letter:
    ``audit.user_log`` holds two UserRegistered events, one message waiting for a retry and one
    dead letter (as its consumer would have put it there), ``audit.order_log`` nothing."""
    url = os.environ.get("SHOP_TEST_AMQP_URL")
    if not url:
        pytest.skip("RabbitMQ: set SHOP_TEST_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    layout = QueueLayout(
        Placement(SUBSCRIPTIONS, frozenset({"audit"})).broker_map(),
        exchange=f"{prefix}.events",
        queue_prefix=prefix,
        retry_delay=3600,  # the message put in a retry queue stays there while the test looks
    )
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        layout.declare(channel)
        producer = Producer(channel)
        for _ in range(2):
            producer.publish({"id": str(uuid.uuid4())}, exchange=layout.exchange, routing_key="user.UserRegistered")
        producer.publish({"id": str(uuid.uuid4())}, exchange="", routing_key=layout.retry_queue("audit.user_log"))
        dead_id = put_dead_letter(producer, layout, "audit.user_log", "user.UserRegistered")
    try:
        yield url, layout, dead_id
    finally:
        delete_layout(url, layout)


def delete_layout(url: str, layout: QueueLayout) -> None:
    """A test's queues and exchange gone from the shared broker, whatever the test left in them."""
    with Connection(url) as connection:
        channel = connection.channel()
        for name in layout.queue_names():
            channel.queue_delete(name)
        channel.exchange_delete(layout.exchange)


def put_dead_letter(producer: Any, layout: QueueLayout, subscriber: str, event_type: str) -> str:
    """A dead letter in ``subscriber``'s dead-letter queue, as its consumer would have put it
    there after five failed attempts; its event id."""
    event_id = str(uuid.uuid4())
    producer.publish(
        {"id": event_id},
        exchange="",
        routing_key=layout.dead_queue(subscriber),
        message_id=event_id,
        type=event_type,
        headers={
            "request_id": "r-1",
            "event_version": 1,
            "x-shop-subscriber": subscriber,
            "x-shop-attempts": 5,
            "x-shop-error": "RuntimeError('audit store down')",
        },
    )
    return event_id


@ON_THE_BROKER
def test_events_status_of_a_consumer_shows_its_broker_queues_without_the_settings_of_calls_between_services(
    tmp_path: Path, audit_queues: tuple[str, QueueLayout, str]
) -> None:
    """A process serving audit records no events: what waits for it is in its broker queues.
    It needs no TOKEN_SECRET, SERVICE_TOKEN or USER_SERVICE_URL to show them, though serving
    it would."""
    url, layout, _dead_id = audit_queues
    env = audit_env(tmp_path, url, layout)
    assert not {"TOKEN_SECRET", "SERVICE_TOKEN", "USER_SERVICE_URL"} & set(env)

    status = shop("events", "status", env=env, cwd=tmp_path, check=False)

    assert status.returncode == 0, status.stderr
    assert [line.split() for line in status.stdout.splitlines()] == [
        ["BROKER", "QUEUE", "READY", "CONSUMERS", "RETRYING", "DEAD-LETTERED"],
        [layout.queue("audit.order_log"), "0", "0", "0", "0"],
        [layout.queue("audit.user_log"), "2", "0", "1", "1"],
    ]


@ON_THE_BROKER
def test_events_dead_and_retry_of_a_consumer_list_its_broker_dead_letters_and_send_them_back(
    tmp_path: Path, audit_queues: tuple[str, QueueLayout, str]
) -> None:
    """Back in its subscriber's queue, the event is as it was published (its trace kept), its
    attempts and error gone: the consumer starts its attempts afresh."""
    url, layout, dead_id = audit_queues
    env = audit_env(tmp_path, url, layout)

    listed = shop("events", "dead", env=env, cwd=tmp_path)
    unknown = shop("events", "retry", "--event", str(uuid.uuid4()), env=env, cwd=tmp_path, check=False)
    listed_again = shop("events", "dead", env=env, cwd=tmp_path)
    retried = shop("events", "retry", "--event", dead_id, env=env, cwd=tmp_path)
    after = shop("events", "dead", env=env, cwd=tmp_path)

    assert (
        listed.stdout.splitlines()
        == listed_again.stdout.splitlines()
        == [
            f"broker  audit.user_log  user.UserRegistered  event {dead_id}  attempts 5",
            "    RuntimeError('audit store down')",
            "1 broker dead letter(s)",
        ]
    )
    assert unknown.returncode == 1
    assert unknown.stdout.splitlines() == ["0 broker dead letter(s) back in their subscribers' queues"]
    assert unknown.stderr.splitlines() == ["Error: 1 of the IDs are not dead letters; retried 0"]
    assert retried.stdout.splitlines() == ["1 broker dead letter(s) back in their subscribers' queues"]
    assert after.stdout.splitlines() == ["0 broker dead letter(s)"]
    *ready, back = messages_in(url, layout.queue("audit.user_log"))
    # The quorum queue counts deliveries in x-delivery-count: its own, added as it hands one out.
    headers = {key: value for key, value in back.headers.items() if key != "x-delivery-count"}
    assert (len(ready), back.properties["message_id"], back.properties["type"], headers) == (
        2,
        dead_id,
        "user.UserRegistered",
        {"request_id": "r-1", "event_version": 1},
    )


@ON_THE_BROKER
def test_events_dead_and_status_say_when_something_consumes_a_dead_letter_queue(
    tmp_path: Path, audit_queues: tuple[str, QueueLayout, str]
) -> None:
    """The broker counts only the messages no consumer holds: the listing would say nothing
    is dead while the consumer holds the dead letter."""
    url, layout, _dead_id = audit_queues
    env = audit_env(tmp_path, url, layout)
    dead_queue = layout.dead_queue("audit.user_log")
    with Connection(url) as connection:
        held: list[Any] = []
        consumer = connection.Consumer(Queue(dead_queue, no_declare=True), callbacks=[lambda _b, m: held.append(m)])
        consumer.consume()
        connection.drain_events(timeout=30)

        listed = shop("events", "dead", env=env, cwd=tmp_path)
        status = shop("events", "status", env=env, cwd=tmp_path)

    assert len(held) == 1
    assert listed.stdout.splitlines() == ["0 broker dead letter(s)"]
    warning = f"warning: {dead_queue} has 1 consumer(s): their messages are not"
    assert listed.stderr.splitlines() == [f"{warning} listed"]
    assert status.stderr.splitlines() == [f"{warning} counted"]
    assert status.stdout.splitlines()[-1].split() == [layout.queue("audit.user_log"), "2", "0", "1", "0"]


@ON_THE_BROKER
def test_events_dead_and_retry_refuse_while_another_runs_on_the_same_dead_letter_queue(
    tmp_path: Path, audit_queues: tuple[str, QueueLayout, str]
) -> None:
    """Two at once would list letters twice or not at all, and a retry miss the one asked for."""
    url, layout, dead_id = audit_queues
    env = audit_env(tmp_path, url, layout)
    dead_queue = layout.dead_queue("audit.user_log")
    with Connection(url) as holder:  # holds the lock as a running `shop events dead` would
        holder.channel().queue_declare(queue=f"{dead_queue}.lock", exclusive=True, auto_delete=True)

        listed = shop("events", "dead", env=env, cwd=tmp_path, check=False)
        retried = shop("events", "retry", "--event", dead_id, env=env, cwd=tmp_path, check=False)

    refusal = f"Error: another `shop events dead|retry` is running on {dead_queue}; try again once it is done"
    assert (listed.returncode, listed.stdout, listed.stderr.splitlines()) == (1, "", [refusal])
    assert (retried.returncode, retried.stdout, retried.stderr.splitlines()) == (1, "", [refusal])
    assert [message.properties["message_id"] for message in messages_in(url, dead_queue)] == [dead_id]


def product_env(tmp_path: Path, url: str, layout: QueueLayout) -> dict[str, str]:
    """The settings of a process serving product alone (it records deliveries of its events
    and consumes order's from the broker), on the test's broker queues."""
    return shop_env(
        tmp_path / "instance",
        SERVED_CONTEXTS="product",
        **{**APART, "EVENTS_BROKER_URL": url},
        EVENTS_BROKER_EXCHANGE=layout.exchange,
        EVENTS_BROKER_QUEUE_PREFIX=layout.queue_prefix,
    )


def put_dead_delivery(env: dict[str, str]) -> str:
    """A delivery of an event of product's to the broker relay that used up its attempts, in
    the product database; its ID."""
    now = datetime.now(timezone.utc)
    outbox, deliveries = PRODUCT_OUTBOX.outbox, PRODUCT_OUTBOX.deliveries
    event_id, delivery_id = uuid.uuid4(), uuid.uuid4()
    database = database_for("product", instance_of(env))
    try:
        with database.begin(write=True) as connection:
            position = connection.execute(
                insert(outbox).values(
                    event_id=event_id,
                    event_type="product.ProductCreated",
                    aggregate_id="p-1",
                    occurred_at=now,
                    envelope={"id": str(event_id)},
                )
            ).inserted_primary_key[0]
            connection.execute(
                insert(deliveries).values(
                    id=delivery_id,
                    event_position=position,
                    subscriber=RELAY,
                    event_type="product.ProductCreated",
                    aggregate_id="p-1",
                    status=DEAD,
                    attempts=5,
                    available_at=now,
                    last_error="PublishFailed: broker did not confirm",
                    recorded_at=now,
                )
            )
    finally:
        database.dispose()
    return str(delivery_id)


@ON_THE_BROKER
def test_events_dead_and_retry_of_a_publisher_that_also_consumes_take_both_kinds_of_dead_letters(
    tmp_path: Path,
) -> None:
    """The product service records its own events' deliveries and consumes order's events. A
    delivery is retried by its ID, a broker dead letter by --event: one never moves the other."""
    url = os.environ.get("SHOP_TEST_AMQP_URL")
    if not url:
        pytest.skip("RabbitMQ: set SHOP_TEST_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    layout = QueueLayout(
        Placement(SUBSCRIPTIONS, frozenset({"product"})).broker_map(), exchange=f"{prefix}.events", queue_prefix=prefix
    )
    env = product_env(tmp_path, url, layout)
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        layout.declare(channel)
        dead_id = put_dead_letter(Producer(channel), layout, "product.confirm_reservation", "order.OrderPlaced")
    try:
        shop("db", "upgrade", env=env, cwd=tmp_path)
        first, second = put_dead_delivery(env), put_dead_delivery(env)
        listed = shop("events", "dead", env=env, cwd=tmp_path)
        one = shop("events", "retry", first, env=env, cwd=tmp_path)
        listed_again = shop("events", "dead", env=env, cwd=tmp_path)
        retried = shop("events", "retry", "--all-dead", env=env, cwd=tmp_path)
        after = shop("events", "dead", env=env, cwd=tmp_path)
        waiting = messages_in(url, layout.queue("product.confirm_reservation"))
    finally:
        delete_layout(url, layout)

    lines = listed.stdout.splitlines()
    assert [line.split("  ")[:4] for line in lines[0:4:2]] == [
        [delivery, "product", RELAY, "product.ProductCreated"] for delivery in (first, second)
    ]
    assert lines[1:4:2] == ["    PublishFailed: broker did not confirm"] * 2
    assert lines[4:] == [
        "2 dead delivery(ies)",
        f"broker  product.confirm_reservation  order.OrderPlaced  event {dead_id}  attempts 5",
        "    RuntimeError('audit store down')",
        "1 broker dead letter(s)",
    ]
    assert one.stdout.splitlines() == ["1 delivery(ies) due again"]
    # The delivery retried is no longer dead; the broker dead letter is where it was.
    assert listed_again.stdout.splitlines()[0].startswith(f"{second}  ")
    assert listed_again.stdout.splitlines()[2:] == ["1 dead delivery(ies)", *lines[5:]]
    assert retried.stdout.splitlines() == [
        "1 delivery(ies) due again",
        "1 broker dead letter(s) back in their subscribers' queues",
    ]
    assert after.stdout.splitlines() == ["0 dead delivery(ies)", "0 broker dead letter(s)"]
    assert len(waiting) == 1


def test_events_dead_and_retry_report_the_deliveries_before_asking_a_broker_that_does_not_answer(
    tmp_path: Path,
) -> None:
    """What was done in the delivery records is said even though the command then fails."""
    env = shop_env(tmp_path / "instance", SERVED_CONTEXTS="product", **APART)  # no broker listens there
    shop("db", "upgrade", env=env, cwd=tmp_path)
    delivery = put_dead_delivery(env)

    listed = shop("events", "dead", env=env, cwd=tmp_path, check=False)
    retried = shop("events", "retry", "--all-dead", env=env, cwd=tmp_path, check=False)

    assert (listed.returncode, retried.returncode) == (1, 1)
    assert listed.stdout.splitlines()[0].startswith(f"{delivery}  product  {RELAY}")
    assert listed.stdout.splitlines()[2:] == ["1 dead delivery(ies)"]
    assert retried.stdout.splitlines() == ["1 delivery(ies) due again"]
    for failed in (listed, retried):
        assert failed.stderr.startswith("Error: the broker does not answer ("), failed.stderr
        assert "Traceback" not in failed.stderr


def audit_env(tmp_path: Path, url: str, layout: QueueLayout) -> dict[str, str]:
    """The settings of a process serving audit alone, on the test's broker queues."""
    return shop_env(
        tmp_path / "instance",
        SERVED_CONTEXTS="audit",
        EVENTS_BROKER_URL=url,
        EVENTS_BROKER_EXCHANGE=layout.exchange,
        EVENTS_BROKER_QUEUE_PREFIX=layout.queue_prefix,
    )


def messages_in(url: str, queue: str) -> list[Any]:
    """Every message of ``queue`` (kombu ``Message`` objects), taken out of it."""
    with Connection(url) as connection:
        source = Queue(queue)(connection.channel())
        messages = []
        while (message := source.get(no_ack=True)) is not None:
            messages.append(message)
        return messages
