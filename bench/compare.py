"""The benchmark is the proof: the shop against a floor app, same machine, same run, same load.

Starts ``bench/floor_app.py`` (the least a bare Flask + SQLAlchemy app does for the same two
requests, see its docstring) and the shop (``<checkout>/.venv/bin/shop serve --prod``) side by
side under gunicorn with the same workers x threads, loads the same products into both (same ids,
prices and stock) and one customer whose shop-issued token both accept, then drives each with wrk
in alternating rounds (floor, shop, floor, shop, ...) after a short warm-up. The machine is shared
and noisy: read the ratio shop/floor of each round and their median, never one absolute figure.

Request kinds (``--kinds``):

- ``read``: ``GET /api/v1/products/<id>``, a random one of the products;
- ``order``: ``POST /api/v1/orders`` (one line, one unit of a random product), the shop's
  dispatcher delivering events in the web workers meanwhile, as it does by default;
- ``order-e2e``: the same load, then the shop's outboxes are drained: orders/s is orders placed
  divided by (wrk's duration + the time until no delivery is pending), and the p95 lag
  (completed_at - recorded_at) of the deliveries recorded since the round began;
- ``order-nodelivery``: the same load on a shop started with ``EVENTS_DISPATCH_IN_WEB=false``
  (its deliveries pile up; nobody relays them), the request path alone;
- ``order-e2e-guarded``: ``order-e2e`` with a third app in each round, the *guarded* floor
  (``floor_app.py`` with ``FLOOR_DELIVER=1``: the same four effects delivered exactly once through
  an inbox, drained like the shop): shop/floor, shop/guarded and guarded/floor.

Every round also reads the CPU time (utime + stime, and that of reaped children, from
``/proc/<pid>/stat``) of the measured app's process tree, of the PostgreSQL server (every
process named ``postgres``, or with ``--postgres-pid`` one postmaster's tree; the rounds run one
app at a time, so the delta is that app's, plus whatever else uses the server meanwhile: the
idle rate is printed per kind) and of wrk, over wrk's run and,
for the drained kinds, the drain: CPU milliseconds per successful request, beside the
throughput, and the ratio of the CPU per request (the other app's / this one's).

With delivery on, every round starts only once the shop has no pending delivery, so a backlog
left by one round never competes with the next one (nor with the floor's rounds).

    .venv/bin/python bench/compare.py --db sqlite
    .venv/bin/python bench/compare.py --db postgres [--postgres-url URL]
        [--kinds read order ...] [--rounds 3] [--duration 5] [--shop /path/to/checkout] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import jwt
from sqlalchemy import Engine, column, create_engine, func, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.sql.expression import TableClause

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import floor_app
from bench.order_placement import drop_schemas, server_env
from infrastructure.db.types import UtcDateTime
from tests.e2e.server import API, HOST, bearer, free_port, register

REPO = Path(__file__).resolve().parents[1]
BacklogT = TypeVar("BacklogT", bound="Backlog")

KINDS = ("read", "order-nodelivery", "order", "order-e2e", "order-e2e-guarded")
# Run order: the shop with delivery on first, then restarted with it off, so the deliveries that
# pile up without a dispatcher are never drained while another kind is being measured.
RUN_ORDER = ("read", "order", "order-e2e", "order-e2e-guarded", "order-nodelivery")
DRAINED = ("order-e2e", "order-e2e-guarded")  # kinds whose apps' rounds last until their outbox is empty
# The apps measured in each round, in this order, and the ratios printed (first / second).
APPS = {"order-e2e-guarded": ("floor", "guarded", "shop")}
PAIRS = {"order-e2e-guarded": (("shop", "floor"), ("shop", "guarded"), ("guarded", "floor"))}
OUTBOX_CONTEXTS = ("user", "product", "order")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN = ("bench-admin@example.com", "bench admin password")
CUSTOMER = ("bench-customer@example.com", "bench customer password")
STOCK = 1_000_000_000  # the shop's largest stock: no round can run out
STARTUP_TIMEOUT = 90.0  # two loaded cores: gunicorn workers building the shop's app take a while
STOP_TIMEOUT = 40.0  # above the shop's graceful timeout (30 s)
WRK_TIMEOUT = "10s"  # a slower response counts as a timeout error in wrk


@dataclass(frozen=True)
class Options:
    db: str
    postgres_url: str
    kinds: tuple[str, ...]
    rounds: int
    duration: int
    warmup: int
    workers: int
    threads: int
    connections: int
    wrk_threads: int
    pool_size: int | None
    events_workers: int | None
    shop_env: tuple[str, ...]
    guarded_threads: int
    postgres_pid: int | None
    products: int
    drain_timeout: float
    shop: Path
    json_path: Path | None
    logs: Path | None


# --- servers ---------------------------------------------------------------------------------


class Server:
    """A server subprocess in a session of its own, so Ctrl-C reaches this script only and the
    server is stopped here, gracefully (SIGTERM), then its whole process group is killed if it lingers."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path, port: int) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.port = port
        self.log_path = cwd / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Server:
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz within {STARTUP_TIMEOUT:.0f} s\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own group: the master and its workers
            process.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, max_chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- end of {self.log_path} ---\n{text[-max_chars:]}"


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server.start()
    finally:
        server.stop()


# --- the two apps and their data ---------------------------------------------------------------


@dataclass
class Setup:
    """Where each app keeps its data, and what both were given."""

    folder: Path
    shop_env: dict[str, str]
    floor_env: dict[str, str]
    guarded_env: dict[str, str]
    product_ids: list[str] = field(default_factory=list)
    token: str = ""


def make_setup(options: Options, folder: Path) -> Setup:
    """Both apps' environments: one token secret, the same workers x threads and pool sizes."""
    postgres = options.postgres_url if options.db == "postgres" else None
    shop_env = server_env(folder / "instance", postgres, prod=True)
    shop_env.update(
        WEB_WORKERS=str(options.workers),
        WEB_THREADS=str(options.threads),
        TOKEN_SECRET=secrets.token_urlsafe(48),
        TOKEN_TTL_SECONDS="86400",  # one token for the whole run
    )
    # The shop as deployed: its own EVENTS_WORKERS and pool defaults, not order_placement's smaller
    # ones. Each app's pool holds its own steady concurrency (the shop's request threads and
    # delivery workers; the floor's threads, the guarded floor's delivery threads too): a pool
    # smaller than that closes and reopens connections all through a round (README, "Pool churn").
    shop_env.pop("EVENTS_WORKERS", None)
    shop_env.pop("DATABASE_POOL_SIZE", None)
    if options.pool_size is not None:
        shop_env["DATABASE_POOL_SIZE"] = str(options.pool_size)
    if options.events_workers is not None:
        shop_env["EVENTS_WORKERS"] = str(options.events_workers)
    for setting in options.shop_env:
        name, _, value = setting.partition("=")
        shop_env[name] = value
    floor_env = {
        "PATH": os.environ.get("PATH", ""),
        "TOKEN_SECRET": shop_env["TOKEN_SECRET"],
        "DATABASE_POOL_SIZE": str(options.pool_size or options.threads),
        "DATABASE_MAX_OVERFLOW": shop_env.get("DATABASE_MAX_OVERFLOW", "10"),
    }
    # The guarded floor: its own database (schema or file), so it never delivers the plain floor's orders.
    guarded_env = {
        **floor_env,
        "DATABASE_POOL_SIZE": str(options.pool_size or options.threads + options.guarded_threads),
        "FLOOR_DELIVER": "1",
        "FLOOR_DELIVER_THREADS": str(options.guarded_threads),
        "FLOOR_MAIL_DIR": str(folder / "guarded" / "mail"),
    }
    if postgres:
        prefix = shop_env["USER_DATABASE_SCHEMA"].rsplit("_", 1)[0]
        floor_env.update(FLOOR_DATABASE_URL=postgres, FLOOR_DATABASE_SCHEMA=f"{prefix}_floor")
        guarded_env.update(FLOOR_DATABASE_URL=postgres, FLOOR_DATABASE_SCHEMA=f"{prefix}_guarded")
    else:
        for name, env in (("floor", floor_env), ("guarded", guarded_env)):
            env["FLOOR_DATABASE_URL"] = f"sqlite:///{folder / name / 'floor.db'}"
            (folder / name).mkdir()
    return Setup(folder=folder, shop_env=shop_env, floor_env=floor_env, guarded_env=guarded_env)


def drop_databases(setup: Setup) -> None:
    """Drop the throwaway PostgreSQL schemas of both apps (SQLite files go with the folder)."""
    drop_schemas(setup.shop_env)
    for floor in (setup.floor_env, setup.guarded_env):
        if "FLOOR_DATABASE_SCHEMA" in floor:
            drop_schemas(
                {"DATABASE_URL": floor["FLOOR_DATABASE_URL"], "FLOOR_DATABASE_SCHEMA": floor["FLOOR_DATABASE_SCHEMA"]}
            )


def shop_command(options: Options, *args: str, setup: Setup) -> None:
    """A one-off ``shop`` command of the measured checkout (migrations, the admin)."""
    result = subprocess.run(
        [str(options.shop / ".venv" / "bin" / "shop"), *args],
        env=setup.shop_env,
        cwd=setup.folder,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"shop {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")


def shop_server(options: Options, setup: Setup, *, delivery: bool) -> Server:
    env = {**setup.shop_env, "EVENTS_DISPATCH_IN_WEB": "true" if delivery else "false"}
    port = free_port()
    command = [str(options.shop / ".venv" / "bin" / "shop"), "serve", "--prod", "--host", HOST, "--port", str(port)]
    return Server("shop", command, env, setup.folder, port)


def floor_server(options: Options, setup: Setup, *, guarded: bool = False) -> Server:
    port = free_port()
    command = [
        sys.executable,
        str(REPO / "bench" / "floor_app.py"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(options.workers),
        "--threads",
        str(options.threads),
    ]
    if guarded:
        return Server("guarded", command, setup.guarded_env, setup.folder, port)
    return Server("floor", command, setup.floor_env, setup.folder, port)


def floor_config(setup: Setup, *, guarded: bool = False) -> floor_app.FloorConfig:
    return floor_app.FloorConfig.from_env(setup.guarded_env if guarded else setup.floor_env)


def product_body(sku_prefix: str, n: int) -> dict[str, Any]:
    """The n-th product of a benchmark's catalogue: prices varied, stock that never runs out."""
    return {
        "sku": f"{sku_prefix}-{n:03d}",
        "name": f"Bench product {n}",
        "description": f"Product number {n} of the benchmark",
        "price": f"{1 + n % 40}.{(n * 7) % 100:02d}",
        "currency": "USD",
        "initial_stock": STOCK,
    }


def load_data(options: Options, setup: Setup, shop_url: str) -> None:
    """The products through the shop's admin API, then the same rows (same ids) into the floor's
    tables; one customer registered with the shop, whose token the floor accepts as well."""
    with httpx.Client(base_url=shop_url, timeout=60) as client:
        admin = bearer(client, *ADMIN)
        seeds = []
        for n in range(options.products):
            body = product_body("BENCH", n)
            response = client.post(f"{API}/products", json=body, headers=admin)
            assert response.status_code == 201, (response.status_code, response.text)
            created = response.json()
            seeds.append(
                floor_app.SeedProduct(
                    created["id"], body["sku"], body["name"], body["description"], body["price"], "USD", STOCK
                )
            )
        setup.product_ids = [seed.id for seed in seeds]
        setup.token = register(client, *CUSTOMER)["Authorization"].removeprefix("Bearer ")
    customer_id = str(uuid.UUID(jwt.decode(setup.token, options={"verify_signature": False})["sub"]))
    buyer = floor_app.SeedCustomer(customer_id, CUSTOMER[0], "Bench customer")
    floor_app.seed(floor_config(setup), seeds)
    floor_app.seed(floor_config(setup, guarded=True), seeds, [buyer])


def check_sanity(setup: Setup, shop_url: str, floor_url: str) -> None:
    """Both apps answer the same shapes, and the floor really does its job: one order takes
    the stock and writes the order, its line and its outbox row."""
    product_id = setup.product_ids[0]
    headers = {"Authorization": f"Bearer {setup.token}"}
    body = {"items": [{"product_id": product_id, "quantity": 2}]}
    answers = {}
    for name, url in (("shop", shop_url), ("floor", floor_url)):
        with httpx.Client(base_url=url, timeout=60) as client:
            before = client.get(f"{API}/products/{product_id}").json()
            placed = client.post(f"{API}/orders", json=body, headers=headers)
            assert placed.status_code == 201, (name, placed.status_code, placed.text)
            after = client.get(f"{API}/products/{product_id}").json()
        assert after["stock"] == before["stock"] - 2, (name, before, after)
        answers[name] = (before, placed.json())
    (shop_product, shop_order), (floor_product, floor_order) = answers["shop"], answers["floor"]
    assert shop_product == floor_product, (shop_product, floor_product)
    assert shop_order.keys() == floor_order.keys(), (shop_order, floor_order)
    assert shop_order["items"][0].keys() == floor_order["items"][0].keys(), (shop_order, floor_order)
    assert shop_order["total"] == floor_order["total"], (shop_order, floor_order)
    check_floor_rows(setup, floor_order["id"])


def check_floor_rows(setup: Setup, order_id: str) -> None:
    engines = floor_app.make_engines(floor_config(setup))
    try:
        with engines.reader.connect() as connection:
            counts = [
                connection.execute(select(func.count()).select_from(t).where(where)).scalar_one()
                for t, where in (
                    (floor_app.orders, floor_app.orders.c.id == order_id),
                    (floor_app.order_lines, floor_app.order_lines.c.order_id == order_id),
                    (floor_app.outbox, floor_app.outbox.c.aggregate_id == order_id),
                )
            ]
    finally:
        engines.reader.dispose()
    assert counts == [1, 1, 1], f"floor order {order_id}: order, lines, outbox rows = {counts}"


def check_guarded(setup: Setup, guarded_url: str, outbox: GuardedOutbox) -> None:
    """The guarded floor delivers: one order, once drained, has its four inbox rows, its mail
    file and record, its audit entry, its purchase counted and the order confirmed."""
    headers = {"Authorization": f"Bearer {setup.token}"}
    body = {"items": [{"product_id": setup.product_ids[0], "quantity": 1}]}
    with httpx.Client(base_url=guarded_url, timeout=60) as client:
        placed = client.post(f"{API}/orders", json=body, headers=headers)
    assert placed.status_code == 201, (placed.status_code, placed.text)
    assert outbox.wait_until_drained(60)[1], "the guarded floor did not deliver its first order within 60 s"
    order_id = placed.json()["id"]
    with outbox.engine.connect() as connection:
        event_id = connection.execute(
            select(floor_app.outbox.c.event_id).where(floor_app.outbox.c.aggregate_id == order_id)
        ).scalar_one()
        status = connection.execute(
            select(floor_app.orders.c.status).where(floor_app.orders.c.id == order_id)
        ).scalar_one()
        counts = [
            connection.execute(select(func.count()).select_from(t).where(where)).scalar_one()
            for t, where in (
                (floor_app.inbox, floor_app.inbox.c.event_id == event_id),
                (floor_app.sent_mails, floor_app.sent_mails.c.event_id == event_id),
                (floor_app.audit_log, floor_app.audit_log.c.event_id == event_id),
                (floor_app.purchase_counts, floor_app.purchase_counts.c.product_id == setup.product_ids[0]),
            )
        ]
    mail = Path(setup.guarded_env["FLOOR_MAIL_DIR"]) / f"{event_id}.eml"
    assert (status, counts, mail.exists()) == ("confirmed", [4, 1, 1, 1], True), (status, counts, mail.exists())


# --- the apps' deliveries --------------------------------------------------------------------


class Backlog:
    """An app's undelivered events: waited for before a round, and drained after a drained one."""

    def pending(self) -> int:
        raise NotImplementedError

    def since(self, moment: datetime) -> tuple[list[float], int]:
        """Lags in seconds of the deliveries done that were recorded since ``moment``; and how many died."""
        raise NotImplementedError

    def dispose(self) -> None:
        raise NotImplementedError

    def wait_until_drained(self, timeout: float) -> tuple[float, bool]:
        """Seconds waited until nothing was pending, and whether that happened within ``timeout``."""
        started = time.monotonic()
        while self.pending():
            if time.monotonic() - started > timeout:
                return time.monotonic() - started, False
            time.sleep(0.1)
        return time.monotonic() - started, True


class GuardedOutbox(Backlog):
    """The guarded floor's outbox: a row is pending until all four effects are done."""

    def __init__(self, setup: Setup) -> None:
        self.engine = floor_app.make_engines(floor_config(setup, guarded=True)).reader
        self._pending = (
            select(func.count()).select_from(floor_app.outbox).where(floor_app.outbox.c.delivered_at.is_(None))
        )

    def pending(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(self._pending).scalar_one())

    def since(self, moment: datetime) -> tuple[list[float], int]:
        box = floor_app.outbox
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(box.c.occurred_at, box.c.delivered_at).where(
                    box.c.occurred_at >= moment, box.c.delivered_at.is_not(None)
                )
            ).all()
        return [(as_utc(row.delivered_at) - as_utc(row.occurred_at)).total_seconds() for row in rows], 0

    def dispose(self) -> None:
        self.engine.dispose()


def as_utc(moment: datetime) -> datetime:
    """SQLite gives the floor's timestamps back naive (they were written in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Deliveries(Backlog):
    """Reads the shop's ``<ctx>_deliveries`` tables: what is pending, and how late what is done was."""

    def __init__(self, setup: Setup) -> None:
        self.engines: list[tuple[Engine, TableClause]] = []
        url = setup.shop_env.get("DATABASE_URL")
        shared = create_engine(make_url(url).set(drivername="postgresql+psycopg")) if url else None
        for context in OUTBOX_CONTEXTS:
            if shared is not None:
                engine, schema = shared, setup.shop_env[f"{context.upper()}_DATABASE_SCHEMA"]
            else:
                engine, schema = create_engine(f"sqlite:///{setup.folder / 'instance' / context}.db"), None
            deliveries = table(
                f"{context}_deliveries",
                column("status"),
                column("recorded_at", UtcDateTime()),
                column("completed_at", UtcDateTime()),
                schema=schema,
            )
            self.engines.append((engine, deliveries))

    def pending(self) -> int:
        total = 0
        for engine, deliveries in self.engines:
            with engine.connect() as connection:
                query = select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
                total += connection.execute(query).scalar_one()
        return total

    def since(self, moment: datetime) -> tuple[list[float], int]:
        lags: list[float] = []
        dead = 0
        for engine, deliveries in self.engines:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(deliveries.c.status, deliveries.c.recorded_at, deliveries.c.completed_at).where(
                        deliveries.c.recorded_at >= moment
                    )
                ).all()
            lags += [(row.completed_at - row.recorded_at).total_seconds() for row in rows if row.status == "done"]
            dead += sum(row.status == "dead" for row in rows)
        return lags, dead

    def dispose(self) -> None:
        for engine, _ in self.engines:
            engine.dispose()


# --- CPU -------------------------------------------------------------------------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: its own CPU and that of the children it reaped


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line: ``pid (comm) state ppid ...``. The name may hold spaces and
    parentheses, so the fields are counted from its last ``)``: state is field 3, ppid 4, utime,
    stime, cutime, cstime 14 to 17 (proc(5)). A dead child's CPU moves into its parent's cutime
    and cstime when reaped, so summing all four over a process tree loses no worker, backend or
    connection that ends during a round."""
    head, _, rest = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    fields = rest.split()
    return ProcStat(pid=int(pid), comm=comm, ppid=int(fields[1]), ticks=sum(int(value) for value in fields[11:15]))


def read_processes(proc: Path = Path("/proc")) -> list[ProcStat]:
    processes = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                processes.append(parse_stat((entry / "stat").read_text()))
            except (FileNotFoundError, ProcessLookupError):  # ended since the listing
                continue
    return processes


def tree_ticks(processes: Sequence[ProcStat], root: int) -> int:
    """Ticks of ``root`` and of all its descendants."""
    children: dict[int, list[ProcStat]] = defaultdict(list)
    for process in processes:
        children[process.ppid].append(process)
    by_pid = {process.pid: process for process in processes}
    total, stack = 0, [by_pid[root]] if root in by_pid else []
    while stack:
        process = stack.pop()
        total += process.ticks
        stack += children[process.pid]
    return total


def named_ticks(processes: Sequence[ProcStat], comm: str) -> int:
    return sum(process.ticks for process in processes if process.comm == comm)


def children_cpu_s() -> float:
    """CPU of this script's reaped children: wrk, the only one that ends during a round."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuReading:
    app_ticks: int
    db_ticks: int | None  # all postgres processes; None on SQLite (the database is in the app)
    wrk_s: float


@dataclass(frozen=True)
class Cpu:
    """CPU seconds spent over a round's window by the app, the database server and wrk."""

    app_s: float
    db_s: float | None
    wrk_s: float

    @classmethod
    def between(cls, before: CpuReading, after: CpuReading) -> Cpu:
        db_s = None
        if before.db_ticks is not None and after.db_ticks is not None:
            db_s = (after.db_ticks - before.db_ticks) / CLOCK_TICKS_PER_S
        return cls((after.app_ticks - before.app_ticks) / CLOCK_TICKS_PER_S, db_s, after.wrk_s - before.wrk_s)

    def per_request_ms(self, requests: int) -> CpuPerRequest:
        def ms(seconds: float) -> float:
            return seconds * 1000 / requests if requests else math.nan

        return CpuPerRequest(ms(self.app_s), ms(self.db_s or 0.0), ms(self.wrk_s))


@dataclass(frozen=True)
class CpuPerRequest:
    app_ms: float
    db_ms: float
    wrk_ms: float

    @property
    def total_ms(self) -> float:
        """What serving it cost, app and database: wrk's share is the load's, the same for every app."""
        return self.app_ms + self.db_ms


def db_ticks(processes: Sequence[ProcStat], postmaster: int | None) -> int:
    """The PostgreSQL server's ticks: its postmaster's tree when given (a server of the benchmark's
    own, which nobody else loads), else every process named postgres on the machine."""
    return tree_ticks(processes, postmaster) if postmaster is not None else named_ticks(processes, "postgres")


def read_cpu(app_pid: int, options: Options) -> CpuReading:
    processes = read_processes()
    db = db_ticks(processes, options.postgres_pid) if options.db == "postgres" else None
    return CpuReading(tree_ticks(processes, app_pid), db, children_cpu_s())


def idle_db_ms_per_s(options: Options, seconds: float = 2.0) -> float:
    """The PostgreSQL server's CPU while neither app is loaded: what others' use adds to each round."""
    before = db_ticks(read_processes(), options.postgres_pid)
    time.sleep(seconds)
    return (db_ticks(read_processes(), options.postgres_pid) - before) / CLOCK_TICKS_PER_S * 1000 / seconds


# --- wrk -------------------------------------------------------------------------------------

LUA = """
local ids = {%(ids)s}
local threads = {}
wrk.method = "%(method)s"
%(headers)s

function setup(thread)
  table.insert(threads, thread)
  thread:set("number", #threads)
end

function init(args)
  statuses = {}
  math.randomseed(number * 7919 + os.time())
end

function request()
  local id = ids[math.random(#ids)]
  %(request)s
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do counts[code] = (counts[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(counts) do table.insert(parts, string.format('"%%d": %%d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%.0f, "p99_us": %%.0f, ' ..
    '"socket_errors": %%d, "timeouts": %%d, "statuses": {%%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write, e.timeout, table.concat(parts, ", ")))
end
"""
ORDER_HEADERS = 'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer %(token)s"'
READ = 'return wrk.format(nil, "/api/v1/products/" .. id)'
ORDER = (
    'return wrk.format(nil, "/api/v1/orders", nil, \'{"items": [{"product_id": "\' .. id .. \'", "quantity": 1}]}\')'
)


def write_script(setup: Setup, kind: str) -> Path:
    """wrk's Lua: a random product per request, the customer's token, per-status counts and
    latency percentiles printed as one JSON line at the end."""
    reading = kind == "read"
    script = setup.folder / f"{'read' if reading else 'order'}.lua"
    script.write_text(
        LUA
        % {
            "ids": ", ".join(f'"{product_id}"' for product_id in setup.product_ids),
            "method": "GET" if reading else "POST",
            # Reads go without a token: the floor would ignore it, the shop might check it.
            "headers": "" if reading else ORDER_HEADERS % {"token": setup.token},
            "request": READ if reading else ORDER,
        }
    )
    return script


@dataclass
class Wrk:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    timeouts: int
    statuses: dict[str, int]

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if code.startswith("2"))

    @property
    def errors(self) -> int:
        """Non-2xx answers, plus requests that got none (connect/read/write errors, timeouts)."""
        return self.requests - self.ok + self.socket_errors + self.timeouts

    @property
    def rate(self) -> float:
        """Successful responses per second: a server that fails fast must not look fast."""
        return self.ok / self.duration_s


class Load(Protocol):
    """How hard wrk drives a server: what ``run_wrk`` reads of its options (``split.py``'s too)."""

    @property
    def wrk_threads(self) -> int: ...

    @property
    def connections(self) -> int: ...


def run_wrk(options: Load, url: str, script: Path, seconds: int) -> Wrk:
    command = [
        "wrk",
        f"-t{options.wrk_threads}",
        f"-c{options.connections}",
        f"-d{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((line for line in result.stdout.splitlines() if line.startswith("WRK_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    return Wrk(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        socket_errors=raw["socket_errors"],
        timeouts=raw["timeouts"],
        statuses=raw["statuses"],
    )


# --- rounds ----------------------------------------------------------------------------------


@dataclass
class Round:
    kind: str
    number: int
    app: str
    wrk: Wrk
    settled: bool = True  # False: a backlog was still pending when the round began
    drain_s: float | None = None  # drained kinds: after the round, until nothing is pending
    drained: bool = True
    lag_p95_ms: float | None = None
    dead: int = 0
    cpu: Cpu | None = None  # over wrk's run and the drain
    began: str = ""  # when wrk started (UTC, ISO 8601), to find the round in the servers' logs

    @property
    def rate(self) -> float:
        """Successful requests/s; for the drained kinds orders/s over wrk's time plus the drain
        (an upper bound if the drain timed out)."""
        if self.drain_s is None:
            return self.wrk.rate
        return self.wrk.ok / (self.wrk.duration_s + self.drain_s)

    @property
    def cpu_per_request(self) -> CpuPerRequest | None:
        """CPU per successful request; for the drained kinds including the deliveries."""
        return self.cpu.per_request_ms(self.wrk.ok) if self.cpu else None


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    options: Options, kind: str, number: int, app: str, server: Server, script: Path, backlogs: Mapping[str, Backlog]
) -> Round:
    """One wrk round, once no app has a delivery pending; for the drained kinds an app with a
    backlog is timed until it has drained it too. CPU is read over the same window."""
    settled = all([backlog.wait_until_drained(options.drain_timeout)[1] for backlog in backlogs.values()])
    assert server.process is not None
    began = datetime.now(timezone.utc)
    before = read_cpu(server.process.pid, options)
    result = Round(kind, number, app, run_wrk(options, server.url, script, options.duration), settled=settled)
    result.began = began.isoformat()
    backlog = backlogs.get(app)
    if kind in DRAINED and backlog is not None:
        result.drain_s, result.drained = backlog.wait_until_drained(options.drain_timeout)
    result.cpu = Cpu.between(before, read_cpu(server.process.pid, options))
    if kind in DRAINED and backlog is not None:
        lags, result.dead = backlog.since(began)
        result.lag_p95_ms = percentile(lags, 0.95) * 1000 if lags else None
    return result


def run_kind(
    options: Options, setup: Setup, kind: str, servers: Mapping[str, Server], backlogs: Mapping[str, Backlog]
) -> list[Round]:
    """Warm-up, then rounds cycling through the kind's apps, each printed as soon as it is done."""
    apps = APPS.get(kind, ("floor", "shop"))
    script = write_script(setup, kind)
    for app in apps:
        run_wrk(options, servers[app].url, script, options.warmup)
    for backlog in backlogs.values():  # the warm-up's deliveries are not idle
        backlog.wait_until_drained(options.drain_timeout)
    idle = idle_db_ms_per_s(options) if options.db == "postgres" else None
    print_header(kind, apps, idle)
    rounds: list[Round] = []
    for number in range(1, options.rounds + 1):
        group = [measure(options, kind, number, app, servers[app], script, backlogs) for app in apps]
        print_round(group)
        rounds += group
    return rounds


# --- output ----------------------------------------------------------------------------------


def print_header(kind: str, apps: Sequence[str], idle_db_ms_per_s: float | None) -> None:
    what = {
        "read": "GET /api/v1/products/<id>",
        "order": "POST /api/v1/orders, delivery on",
        "order-e2e": "POST /api/v1/orders, orders/s until every delivery is done",
        "order-e2e-guarded": "POST /api/v1/orders, orders/s until every delivery is done, plain and guarded floor",
        "order-nodelivery": "POST /api/v1/orders, EVENTS_DISPATCH_IN_WEB=false",
    }[kind]
    print(f"\n{kind}: {what}")
    if idle_db_ms_per_s is not None:
        print(f"PostgreSQL server, idle before the rounds: {idle_db_ms_per_s:.1f} ms of CPU per s")
    drained = "  drain s  lag p95 ms dead" if kind in DRAINED else ""
    columns = " | ".join(f"{app + ' /s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}{drained}" for app in apps)
    pairs = " ".join(f"{a}/{b}" for a, b in PAIRS.get(kind, (("shop", "floor"),)))
    print(f"{'round':>5} | {columns} | {pairs}")
    print(
        f"{'':>5}   cpu ms per successful request: app + database = total (wrk); cpu ratio = the second's / the first's"
    )


def describe_errors(wrk: Wrk) -> str:
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(wrk.statuses.items()) if not code.startswith("2"))
    socket = f"socket errors: {wrk.socket_errors}, timeouts: {wrk.timeouts}"
    return f"{codes}; {socket}" if codes else socket


def format_cpu(cpu: CpuPerRequest | None) -> str:
    if cpu is None:
        return "-"
    return f"{cpu.app_ms:.2f} + {cpu.db_ms:.2f} = {cpu.total_ms:.2f} ({cpu.wrk_ms:.2f})"


def print_round(group: Sequence[Round]) -> None:
    def columns(result: Round) -> str:
        wrk = result.wrk
        text = f"{result.rate:9.1f} {wrk.p50_ms:7.1f} {wrk.p99_ms:7.1f} {wrk.errors:6d}"
        if result.kind in DRAINED:
            if result.drain_s is None:
                return text + f" {'-':>8} {'-':>11} {'-':>4}"
            drain = f"{result.drain_s:8.1f}" if result.drained else " timeout"
            lag = f"{result.lag_p95_ms:11.0f}" if result.lag_p95_ms is not None else f"{'-':>11}"
            text += f" {drain} {lag} {result.dead:4d}"
        return text

    by_app = {result.app: result for result in group}
    pairs = PAIRS.get(group[0].kind, (("shop", "floor"),))
    ratios = " ".join(f"{ratio(by_app[a], by_app[b]):.3f}" for a, b in pairs)
    line = f"{group[0].number:5d} | {' | '.join(columns(result) for result in group)} | {ratios}"
    line += "\n        cpu " + " | ".join(f"{r.app}: {format_cpu(r.cpu_per_request)}" for r in group)
    line += " | cpu ratio " + " ".join(f"{cpu_ratio(by_app[a], by_app[b]):.3f}" for a, b in pairs)
    for result in group:
        if result.wrk.errors:
            line += f"\n      ! {result.app}: {result.wrk.errors} errors ({describe_errors(result.wrk)})"
        if not result.settled:
            line += f"\n      ! {result.app}: deliveries were still pending when this round began"
        if not result.drained:
            line += (
                f"\n      ! {result.app}: deliveries still pending after the drain timeout; orders/s is an upper bound"
            )
    print(line, flush=True)


def ratio(shop: Round, floor: Round) -> float:
    return shop.rate / floor.rate if floor.rate else float("nan")


def cpu_ratio(shop: Round, floor: Round) -> float:
    """The floor's CPU per request over the shop's: the throughput ratio a CPU-bound machine allows."""
    shop_cpu, floor_cpu = shop.cpu_per_request, floor.cpu_per_request
    if shop_cpu is None or floor_cpu is None or not shop_cpu.total_ms:
        return math.nan
    return floor_cpu.total_ms / shop_cpu.total_ms


def median_or_nan(values: Sequence[float]) -> float:
    present = [value for value in values if not math.isnan(value)]
    return statistics.median(present) if present else math.nan


def summarize(rounds: list[Round]) -> dict[str, dict[str, Any]]:
    """Per kind: each pair's throughput and CPU ratios (medians and rounds), and each app's median
    CPU per request."""
    summary: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        of_kind = [r for r in rounds if r.kind == kind]
        if not of_kind:
            continue
        by_number: dict[int, dict[str, Round]] = defaultdict(dict)
        for result in of_kind:
            by_number[result.number][result.app] = result
        groups = [by_number[number] for number in sorted(by_number)]
        pairs = {}
        for a, b in PAIRS.get(kind, (("shop", "floor"),)):
            ratios = [ratio(group[a], group[b]) for group in groups]
            cpu_ratios = [cpu_ratio(group[a], group[b]) for group in groups]
            pairs[f"{a}/{b}"] = {
                "ratios": ratios,
                "median": statistics.median(ratios),
                "cpu_ratios": cpu_ratios,
                "cpu_median": median_or_nan(cpu_ratios),
            }
        cpu: dict[str, dict[str, float]] = {}
        for app in APPS.get(kind, ("floor", "shop")):
            per_request = [r.cpu_per_request for r in of_kind if r.app == app and r.cpu_per_request is not None]
            cpu[app] = {
                field: median_or_nan([getattr(each, field) for each in per_request])
                for field in ("app_ms", "db_ms", "total_ms", "wrk_ms")
            }
        summary[kind] = {"pairs": pairs, "cpu_ms": cpu, "errors": sum(r.wrk.errors for r in of_kind)}
    return summary


def print_summary(options: Options, summary: dict[str, dict[str, Any]]) -> None:
    print(f"\nthroughput ratios, and cpu ratios ({options.db}, {options.workers} workers x {options.threads} threads)")
    for kind, figures in summary.items():
        errors = f"   ! {figures['errors']} errors" if figures["errors"] else ""
        for name, pair in figures["pairs"].items():
            per_round = " ".join(f"{value:.3f}" for value in pair["ratios"])
            cpu_rounds = " ".join(f"{value:.3f}" for value in pair["cpu_ratios"])
            print(
                f"  {kind:<17} {name:<13} median {pair['median']:.3f}   rounds {per_round}"
                f"   | cpu ratio median {pair['cpu_median']:.3f}   rounds {cpu_rounds}{errors}"
            )
        for app, cpu in figures["cpu_ms"].items():
            print(
                f"  {'':<17} {app:<13} cpu ms per request, medians: app {cpu['app_ms']:.2f} + database "
                f"{cpu['db_ms']:.2f} = {cpu['total_ms']:.2f} (wrk {cpu['wrk_ms']:.2f})"
            )


def write_json(options: Options, rounds: list[Round], summary: dict[str, dict[str, Any]]) -> None:
    if options.json_path is None:
        return
    config = {name: str(value) if isinstance(value, Path) else value for name, value in asdict(options).items()}
    records = [
        {
            **asdict(r),
            "rate": r.rate,
            "wrk_rate": r.wrk.rate,
            "errors": r.wrk.errors,
            "cpu_ms": asdict(r.cpu_per_request) if r.cpu_per_request else None,
        }
        for r in rounds
    ]
    options.json_path.write_text(json.dumps({"config": config, "rounds": records, "summary": summary}, indent=2))
    print(f"raw results: {options.json_path}")


# --- main ------------------------------------------------------------------------------------


def run(options: Options, folder: Path) -> list[Round]:
    """Start both servers, load the data, check sanity, then measure kind after kind; the shop is
    restarted once, with delivery off, for order-nodelivery; the guarded floor runs only for
    its kind."""
    setup = make_setup(options, folder)
    rounds: list[Round] = []
    with ExitStack() as stack:
        stack.callback(drop_databases, setup)
        stack.callback(report_logs, options, folder)
        shop_command(options, "db", "upgrade", setup=setup)
        shop_command(options, "users", "create-admin", ADMIN[0], "--password", ADMIN[1], setup=setup)
        floor_app.init_db(floor_config(setup))
        floor_app.init_db(floor_config(setup, guarded=True))
        floor = stack.enter_context(running(floor_server(options, setup)))
        kinds = [kind for kind in RUN_ORDER if kind in options.kinds]
        for delivery in (True, False):
            group = [kind for kind in kinds if (kind != "order-nodelivery") == delivery]
            if not group:
                continue
            with running(shop_server(options, setup, delivery=delivery)) as shop, ExitStack() as backlogs:
                if not setup.product_ids:
                    load_data(options, setup, shop.url)
                    check_sanity(setup, shop.url, floor.url)
                    print(f"sanity: both apps placed an order, the floor wrote its rows ({options.db})")
                shop_backlog: dict[str, Backlog] = {}
                if delivery:
                    shop_backlog["shop"] = backlogs.enter_context(disposing(Deliveries(setup)))
                for kind in group:
                    servers = {"floor": floor, "shop": shop}
                    if kind != "order-e2e-guarded":
                        rounds += run_kind(options, setup, kind, servers, shop_backlog)
                        continue
                    with (
                        running(floor_server(options, setup, guarded=True)) as guarded,
                        disposing(GuardedOutbox(setup)) as outbox,
                    ):
                        check_guarded(setup, guarded.url, outbox)
                        print(f"sanity: the guarded floor delivered an order's four effects once ({options.db})")
                        servers["guarded"] = guarded
                        rounds += run_kind(options, setup, kind, servers, {**shop_backlog, "guarded": outbox})
    return rounds


@contextmanager
def disposing(backlog: BacklogT) -> Iterator[BacklogT]:
    try:
        yield backlog
    finally:
        backlog.dispose()


def report_logs(options: Options, folder: Path) -> None:
    """The servers log errors only (LOG_LEVEL=ERROR): say how much they logged, keep it if asked."""
    for log in sorted(folder.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        print(f"{log.name}: {len(lines)} lines logged" + (f", last: {lines[-1][:200]}" if lines else ""))
        if options.logs is not None:
            options.logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, options.logs / log.name)


def add_load_options(parser: argparse.ArgumentParser, measured: str) -> None:
    """The rounds and the load, the same options in every harness that drives servers with wrk;
    ``measured`` names what is compared ("app", "topology")."""
    parser.add_argument("--rounds", type=int, default=3, help=f"rounds per {measured} and kind (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per round (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help=f"seconds of warm-up per {measured} and kind (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of each server process (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SHOP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        help="server for the throwaway schemas (default: $SHOP_TEST_POSTGRES_URL, else %(default)s)",
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    add_load_options(parser, "app")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="DATABASE_POOL_SIZE of every app (default: each its own concurrency: the shop's default, "
        "the floor's --threads, the guarded floor's --threads + --guarded-threads)",
    )
    parser.add_argument("--events-workers", type=int, help="the shop's EVENTS_WORKERS (default: the shop's own)")
    parser.add_argument(
        "--shop-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_setting,
        help="a setting of the shop's, e.g. EVENTS_HOLD_WRITES_AFTER_SECONDS=0 (repeatable)",
    )
    parser.add_argument(
        "--guarded-threads", type=int, default=1, help="the guarded floor's delivery threads per worker (default 1)"
    )
    parser.add_argument(
        "--postgres-pid",
        type=int,
        help="postmaster whose process tree is the database's CPU (a server of the benchmark's own); "
        "default: every process named postgres",
    )
    parser.add_argument("--products", type=int, default=100, help="products ordered at random (default 100)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="longest wait for the shop's deliveries")
    parser.add_argument("--shop", type=Path, default=REPO, help="checkout whose .venv/bin/shop is measured")
    parser.add_argument("--json", type=Path, dest="json_path", help="write the raw results here")
    parser.add_argument("--logs", type=Path, help="copy both servers' logs into this folder at the end")
    args = parser.parse_args(argv)
    args.kinds = tuple(args.kinds)
    args.shop_env = tuple(args.shop_env)
    args.shop = args.shop.resolve()
    return Options(**vars(args))


def _setting(text: str) -> str:
    name, equals, _value = text.partition("=")
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return text


def check_tools(options: Options) -> None:
    if shutil.which("wrk") is None:
        sys.exit("compare.py needs wrk: apt-get install wrk")
    if not (options.shop / ".venv" / "bin" / "shop").exists():
        sys.exit(f"no {options.shop}/.venv/bin/shop: run `make venv` in {options.shop}")


def _interrupt(_signal: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks: servers stopped, schemas dropped


def main() -> None:
    options = parse_options()
    check_tools(options)
    # Also SIGINT: a shell starting this in the background would otherwise have it ignored.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _interrupt)
    print(
        f"shop: {options.shop} on {options.db}; {options.workers} workers x {options.threads} threads each; "
        f"wrk {options.wrk_threads} threads, {options.connections} connections; "
        f"{options.rounds} rounds of {options.duration} s per app and kind"
    )
    with tempfile.TemporaryDirectory(prefix="shop-compare-") as folder:
        try:
            rounds = run(options, Path(folder))
        except KeyboardInterrupt:
            sys.exit("interrupted: servers stopped")
    summary = summarize(rounds)
    print_summary(options, summary)
    write_json(options, rounds, summary)


if __name__ == "__main__":
    main()
