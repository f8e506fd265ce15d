"""The shop in one of three topologies, as real ``shop serve`` processes on loopback ports, all on
the test's PostgreSQL schemas (and RabbitMQ where events leave a process), behind a gateway.

- ``monolith``: one process serves every context; events never leave it.
- ``product_extracted``: the product context in a process of its own, everything else in a
  second one; order and recommendation call product over HTTP, events cross through RabbitMQ.
- ``all_apart``: each of the six contexts in its own process.

Every process gets the same databases (one PostgreSQL database, the same schema names), the same
token secret and service token, and its own instance folder (the notification service writes its
mail there). A gateway forwards each request by path prefix to the process serving that context,
so a test talks to one base URL whatever the topology: a real nginx running the configuration
``shop gateway nginx`` generates for the topology (``front="nginx"``; skips without nginx), or a
small one in the test process, which marks its own failures so that fault tests can tell them
from the services'. Each
topology gets an exchange and queue prefix of its own on the broker, deleted afterwards with its
queues, so runs never see each other's messages.

Use :func:`running_topology` as a context manager after the ``backend`` fixture chose
PostgreSQL: it migrates each process's contexts (or, with ``migrated_by="the test"``, all of them
in the test's process), creates the admin, starts the processes and the gateway, and stops and
removes all of it however the test ends.
"""

from __future__ import annotations

import email
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import Any, Literal

import httpx
from kombu import Connection
from sqlalchemy import text
from werkzeug.wrappers import Request, Response

from app.gateway import routes
from app.registry import CONTEXTS
from tests.conftest import database_for, prepare_instance
from tests.e2e.nginx import nginx_gateway, nginx_or_skip
from tests.e2e.server import HOST, STARTUP_TIMEOUT, ShopServer, free_port, shop, shop_env, start_all
from tests.http_servers import serve_app

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin password"

TOPOLOGIES: dict[str, tuple[tuple[str, ...], ...]] = {
    "monolith": (CONTEXTS,),
    "product_extracted": (("product",), tuple(context for context in CONTEXTS if context != "product")),
    "all_apart": tuple((context,) for context in CONTEXTS),
}
# The contexts that call the product context through its published ProductApi.
PRODUCT_CALLERS = frozenset({"order", "recommendation"})
# The contexts whose endpoints take bearer tokens, checked against the user's record.
USER_CALLERS = frozenset({"product", "order", "audit", "recommendation"})
# The contexts whose outbox holds deliveries: they publish events some subscriber takes.
PUBLISHERS = ("user", "product", "order")

# What `shop gateway nginx` routes, read from the contexts' endpoints; longest prefix first (the
# recommendations live under the user context's path).
ROUTES: tuple[tuple[str, str], ...] = tuple(
    sorted(((route.prefix, route.context) for route in routes()), key=lambda route: -len(route[0]))
)

# What every process of a test gets: the same secrets, quick event retries (a confirmation whose
# buyer's registration has not reached the notification context yet is retried soon), and a
# login limit per address that the gateway's one address does not hit.
COMMON_SETTINGS = {
    "EVENTS_BROKER_RETRY_SECONDS": "1",
    "EVENTS_POLL_SECONDS": "0.2",
    "EVENTS_RETRY_BASE_SECONDS": "0.1",
    "EVENTS_RETRY_MAX_SECONDS": "1",
    "LOGIN_RATE_LIMIT_PER_ADDRESS": "10000/minute",
}

# What stands in front of the processes: the generated nginx configuration, or the test's gateway.
Front = Literal["nginx", "test gateway"]
# The generated gateway is one proxy that appends to X-Forwarded-For: what the shop must trust.
NGINX_SETTINGS = {"TRUSTED_PROXY_HOPS": "1"}

GATEWAY_TIMEOUT = 60.0
SETTLE_TIMEOUT = 180.0
POLL_INTERVAL = 0.2
BROKER_COMMAND_TIMEOUT = 120.0
# Headers that belong to one connection, not to the message: a proxy does not pass them on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
GATEWAY_ERROR_HEADER = "X-Gateway-Error"


def wait_until(condition: Callable[[], bool], what: Callable[[], str] | str, timeout: float = SETTLE_TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (called then, if a function) at the
    deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting: {what() if callable(what) else what}")
        time.sleep(POLL_INTERVAL)


# --- the gateway ---------------------------------------------------------------------------


class Gateway:
    """A reverse proxy, as a WSGI application that ``serve_app`` serves: each request goes,
    method, headers, body and all, to the base URL ``upstream_for(path)`` names, and its answer
    comes back as it was (status, headers, body). An upstream that cannot be reached is a 502
    problem marked with ``X-Gateway-Error``, so a test can tell the gateway's own failures from
    the services'."""

    def __init__(self, upstream_for: Callable[[str], str | None]) -> None:
        self._upstream_for = upstream_for
        self._client = httpx.Client(
            timeout=GATEWAY_TIMEOUT, limits=httpx.Limits(max_connections=200, max_keepalive_connections=100)
        )

    def close(self) -> None:
        self._client.close()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        upstream = self._upstream_for(request.path)
        if upstream is None:
            response = self._problem(404, "no-route", f"no service serves {request.path}")
        else:
            response = self._forward(request, upstream)
        return response(environ, start_response)

    def _forward(self, request: Request, upstream: str) -> Response:
        # The raw target keeps the path's and query's encoding exactly as the client sent it.
        target = request.environ.get("RAW_URI") or request.full_path
        headers = [(name, value) for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP]
        try:
            answer = self._client.request(
                request.method, f"{upstream}{target}", headers=headers, content=request.get_data()
            )
        except httpx.TransportError as error:
            return self._problem(502, "upstream-unreachable", f"{upstream}: {type(error).__name__}: {error}")
        passed = [(name, value) for name, value in answer.headers.multi_items() if name.lower() not in HOP_BY_HOP]
        return Response(answer.content, status=answer.status_code, headers=passed)

    @staticmethod
    def _problem(status: int, reason: str, detail: str) -> Response:
        body = {"type": "about:blank", "title": "Gateway error", "status": status, "detail": detail}
        return Response(
            json.dumps(body),
            status=status,
            content_type="application/problem+json",
            headers={GATEWAY_ERROR_HEADER: reason},
        )


def route_of(path: str) -> str | None:
    """The context serving ``path``: the longest matching prefix, on segment boundaries."""
    for prefix, context in ROUTES:
        if path == prefix or path.startswith(f"{prefix}/"):
            return context
    return None


# --- the broker ----------------------------------------------------------------------------


def rabbitmqctl(*arguments: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", *arguments], capture_output=True, text=True, timeout=BROKER_COMMAND_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"rabbitmqctl {' '.join(arguments)}: {result.stdout}{result.stderr}"
    return result.stdout


def broker_running() -> bool:
    result = subprocess.run(
        ["rabbitmq-diagnostics", "-q", "check_running"],
        capture_output=True,
        timeout=BROKER_COMMAND_TIMEOUT,
        check=False,
    )
    return result.returncode == 0


@contextmanager
def broker_stopped() -> Iterator[None]:
    """RabbitMQ's application stopped for the block, and always running again after it (waited
    for), whatever the block did: other tests share the server."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        rabbitmqctl("start_app")
        wait_until(broker_running, "RabbitMQ runs again", timeout=BROKER_COMMAND_TIMEOUT)


@dataclass(frozen=True)
class BrokerSpace:
    """The exchange and queues of one test on the broker: named by a prefix of its own."""

    url: str
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}")

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.events"

    def queue_names(self) -> list[str]:
        """The test's queues on the broker: ``<prefix>.<subscriber>``, ``.retry`` and ``.dead``."""
        listed = json.loads(rabbitmqctl("list_queues", "name", "--formatter", "json", "-q") or "[]")
        return sorted(queue["name"] for queue in listed if queue["name"].startswith(f"{self.prefix}."))

    def queues(self) -> dict[str, int]:
        """Each of the test's queues → its messages ready now. Asked of each queue itself: the
        counts ``rabbitmqctl list_queues`` shows for quorum queues are statistics that lag."""
        names = self.queue_names()
        with Connection(self.url, connect_timeout=10) as connection:
            channel = connection.channel()
            return {name: int(channel.queue_declare(queue=name, passive=True).message_count) for name in names}

    def remove(self) -> None:
        names = self.queue_names()
        with Connection(self.url, connect_timeout=10) as connection:
            channel = connection.channel()
            for name in names:
                channel.queue_delete(name)
            channel.exchange_delete(self.exchange)


# --- what the notification service wrote -----------------------------------------------------


def mail_kind(message: email.message.EmailMessage) -> str:
    """``<event-id.kind@host>`` → kind (``welcome``, ``order-confirmation``)."""
    return str(message["Message-ID"]).strip("<>").split("@")[0].split(".", 1)[1]


def recipient(message: email.message.EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


# --- the processes -------------------------------------------------------------------------


@dataclass
class Service:
    """One ``shop serve`` process and the contexts it serves."""

    name: str
    contexts: tuple[str, ...]
    folder: Path
    env: dict[str, str]
    server: ShopServer

    @property
    def instance(self) -> Path:
        return Path(self.env["INSTANCE_PATH"])

    @property
    def url(self) -> str:
        return self.server.url


class Topology:
    """The running processes of a topology, its gateway, and what a test asks of them."""

    def __init__(self, name: str, data: Path, services: Sequence[Service], broker: BrokerSpace | None) -> None:
        self.name = name
        self.data = data  # the instance folder the test's schemas are named after
        self.services = list(services)
        self.broker = broker
        self.gateway = Gateway(self._upstream_for)
        self.url = ""  # the one base URL tests call: the gateway's, once it is served

    def upstreams(self) -> list[str]:
        """The placement as ``shop gateway nginx --upstream`` takes it: each process's
        ``SERVED_CONTEXTS=URL``."""
        return [f"{','.join(service.contexts)}={service.url}" for service in self.services]

    def service_for(self, context: str) -> Service:
        return next(service for service in self.services if context in service.contexts)

    def _upstream_for(self, path: str) -> str | None:
        context = route_of(path)
        return None if context is None else self.service_for(context).url

    # -- faults

    def kill(self, context: str) -> None:
        """SIGKILL the process serving ``context``: no handler runs, nothing is handed back."""
        self.service_for(context).server.kill()

    def start_again(self, context: str) -> None:
        """Start the process serving ``context`` again, on the port it had."""
        self.service_for(context).server.start()

    def assert_running(self) -> None:
        for service in self.services:
            assert service.server.is_running(), f"{service.name} died\n{service.server.log_tail()}"

    def log_tails(self) -> str:
        return "\n".join(service.server.log_tail() for service in self.services)

    # -- what the contexts hold

    def rows(self, context: str, query: str, **parameters: Any) -> list[tuple[Any, ...]]:
        """``query``'s rows from ``context``'s schema (unqualified table names)."""
        database = database_for(context, self.data)
        try:
            with database.begin() as connection:
                return [tuple(row) for row in connection.execute(text(query), parameters)]
        finally:
            database.dispose()

    @contextmanager
    def holding_rows(self, context: str, query: str, **parameters: Any) -> Iterator[None]:
        """``query`` (a ``SELECT … FOR UPDATE``) run in a transaction of the test's that stays
        open for the block: whoever writes those rows meanwhile waits."""
        database = database_for(context, self.data)
        try:
            with database.begin() as connection:
                connection.execute(text(query), parameters).all()
                yield
        finally:
            database.dispose()

    def deliveries(self) -> dict[str, int]:
        """Deliveries by status over every publishing context's outbox."""
        counts: dict[str, int] = {}
        for context in PUBLISHERS:
            for status, count in self.rows(context, f"SELECT status, count(*) FROM {context}_deliveries GROUP BY 1"):
                counts[status] = counts.get(status, 0) + int(count)
        return counts

    def all_delivered(self) -> bool:
        """Every delivery done; a dead one fails at once (nothing would finish it), naming it."""
        dead = [
            (context, subscriber, event_type, (error or "")[-300:])
            for context in PUBLISHERS
            for subscriber, event_type, error in self.rows(
                context, f"SELECT subscriber, event_type, last_error FROM {context}_deliveries WHERE status = 'dead'"
            )
        ]
        assert not dead, f"{len(dead)} dead deliveries, e.g. {dead[:3]}"
        return set(self.deliveries()) <= {"done"}

    def mails(self) -> list[email.message.EmailMessage]:
        """The messages the notification service wrote, as ``.eml`` files in its instance folder."""
        parsed = []
        for path in sorted((self.service_for("notification").instance / "mail").glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, email.message.EmailMessage)
            parsed.append(message)
        return parsed

    def broker_messages(self) -> dict[str, int]:
        """The test's queues and their messages; empty for a topology that uses no broker."""
        return self.broker.queues() if self.broker else {}

    def assert_broker_drained(self) -> None:
        """No dead letter, and no message left on any of the test's queues: every event that
        crossed the broker was taken by its subscriber (a queue nobody consumes would grow)."""
        queues = self.broker_messages()
        dead = {name: count for name, count in queues.items() if name.endswith(".dead") and count}
        assert not dead, f"dead letters on the broker: {dead}"
        left = {name: count for name, count in queues.items() if count}
        assert not left, f"messages nobody took, left on the broker: {left}"


def _service_env(
    data: Path,
    folder: Path,
    contexts: tuple[str, ...],
    *,
    secrets_env: Mapping[str, str],
    product_url: str,
    user_url: str,
    broker: BrokerSpace | None,
    settings: Mapping[str, str],
) -> dict[str, str]:
    """The environment of the process serving ``contexts``: the test's databases (named after
    ``data``, the same schemas for every process) with an instance folder of its own."""
    env = shop_env(
        data,
        INSTANCE_PATH=str(folder / "instance"),
        SERVED_CONTEXTS=",".join(contexts),
        **secrets_env,
        **COMMON_SETTINGS,
    )
    if PRODUCT_CALLERS & set(contexts) and "product" not in contexts:
        env["PRODUCT_SERVICE_URL"] = product_url
    if USER_CALLERS & set(contexts) and "user" not in contexts:
        env["USER_SERVICE_URL"] = user_url
    if broker is not None and set(contexts) != set(CONTEXTS):
        env["EVENTS_BROKER_URL"] = broker.url
        env["EVENTS_BROKER_EXCHANGE"] = broker.exchange
        env["EVENTS_BROKER_QUEUE_PREFIX"] = broker.prefix
    env.update(settings)
    return env


def _build(
    name: str,
    folder: Path,
    amqp_url: str | None,
    settings: Mapping[str, str],
    serve_options: Sequence[str] = (),
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Topology:
    layout = TOPOLOGIES[name]
    split = len(layout) > 1
    assert amqp_url or not split, f"{name} needs RabbitMQ"
    broker = BrokerSpace(amqp_url) if split and amqp_url else None
    data = folder / "data"
    secrets_env = {"TOKEN_SECRET": secrets.token_urlsafe(48), "SERVICE_TOKEN": secrets.token_urlsafe(48)}
    names = [contexts[0] if len(contexts) == 1 else "rest" for contexts in layout] if split else ["monolith"]
    ports = {service_name: free_port() for service_name in names}
    product_service = names[next(index for index, contexts in enumerate(layout) if "product" in contexts)]
    product_url = f"http://{HOST}:{ports[product_service]}"
    user_service = names[next(index for index, contexts in enumerate(layout) if "user" in contexts)]
    user_url = f"http://{HOST}:{ports[user_service]}"
    services = []
    for service_name, contexts in zip(names, layout, strict=True):
        service_folder = folder / service_name
        env = _service_env(
            data,
            service_folder,
            contexts,
            secrets_env=secrets_env,
            product_url=product_url,
            user_url=user_url,
            broker=broker,
            settings=settings,
        )
        server = ShopServer(
            env,
            folder / "logs" / f"{service_name}.log",
            cwd=service_folder,
            port=ports[service_name],
            options=serve_options,
            startup_timeout=startup_timeout,
        )
        services.append(Service(service_name, contexts, service_folder, env, server))
    return Topology(name, data, services, broker)


# Who migrates the databases before the processes start: ``shop db upgrade`` in each process's
# environment, side by side (what an operator runs, and what the scenario of every topology
# proves; the migrations take an advisory lock), or the test, in its own process, for a test
# whose subject is something else: one process started instead of one per service.
Migration = Literal["each process", "the test"]


def _migrate(topology: Topology, migrated_by: Migration) -> None:
    """The databases the processes share, migrated as ``migrated_by`` says."""
    if migrated_by == "the test":
        prepare_instance(topology.data)
        return
    with ThreadPoolExecutor(max_workers=len(topology.services)) as pool:
        upgrades = [
            pool.submit(shop, "db", "upgrade", env=service.env, cwd=service.folder) for service in topology.services
        ]
        for upgrade in upgrades:
            upgrade.result()


def _create_admin(topology: Topology) -> None:
    """The admin, by ``shop users create-admin`` in the user service's environment: its
    registration's deliveries are those of that process (on the broker when contexts run apart)."""
    user_service = topology.service_for("user")
    shop(
        "users",
        "create-admin",
        ADMIN_EMAIL,
        "--password",
        ADMIN_PASSWORD,
        env=user_service.env,
        cwd=user_service.folder,
    )


@contextmanager
def running_topology(
    name: str,
    folder: Path,
    *,
    amqp_url: str | None = None,
    settings: Mapping[str, str] | None = None,
    front: Front = "test gateway",
    serve_options: Sequence[str] = (),
    startup_timeout: float = STARTUP_TIMEOUT,
    migrated_by: Migration = "each process",
) -> Iterator[Topology]:
    """``name``'s processes started in ``folder`` (logs under ``folder/logs``) behind ``front``;
    everything stopped and its broker queues and exchange deleted on the way out.

    ``settings`` go to every process, ``serve_options`` to each ``shop serve`` (``("--prod",)``:
    gunicorn, as bench/split.py measures it). The databases are those of the running test's backend,
    whose fixture empties or drops the schemas afterwards; ``migrated_by`` says who migrates them. Services
    are named ``monolith``; ``product`` and ``rest``; or after their context."""
    if front == "nginx":
        nginx_or_skip()  # before any process starts
        settings = {**NGINX_SETTINGS, **(settings or {})}
    topology = _build(name, folder, amqp_url, settings or {}, serve_options, startup_timeout)
    with ExitStack() as cleanup:
        if topology.broker is not None:
            cleanup.callback(topology.broker.remove)
        for service in topology.services:
            service.folder.mkdir(parents=True, exist_ok=True)
        _migrate(topology, migrated_by)
        _create_admin(topology)
        for service in topology.services:
            cleanup.callback(service.server.stop)
        start_all([service.server for service in topology.services])
        cleanup.callback(topology.gateway.close)
        if front == "nginx":
            # Generated with the settings the processes run with (the first one's, as any would do).
            first = topology.services[0]
            gateway = nginx_gateway(topology.upstreams(), folder / "nginx", env=first.env)
            topology.url = cleanup.enter_context(gateway)
        else:
            topology.url = cleanup.enter_context(serve_app(topology.gateway))
        try:
            yield topology
            topology.assert_running()
        except BaseException:
            print(topology.log_tails())
            raise
