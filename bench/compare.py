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
  (its deliveries pile up; nobody relays them), the request path alone.

With delivery on, every round starts only once the shop has no pending delivery, so a backlog
left by one round never competes with the next one (nor with the floor's rounds).

    .venv/bin/python bench/compare.py --db sqlite
    .venv/bin/python bench/compare.py --db postgres [--postgres-url URL]
        [--kinds read order ...] [--rounds 3] [--duration 5] [--shop /path/to/checkout] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine, column, create_engine, func, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.sql.expression import TableClause

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import floor_app
from bench.order_placement import drop_schemas, server_env
from infrastructure.db_types import UtcDateTime
from tests.e2e.server import API, HOST, bearer, free_port, register

REPO = Path(__file__).resolve().parents[1]

KINDS = ("read", "order-nodelivery", "order", "order-e2e")
# Run order: the shop with delivery on first, then restarted with it off, so the deliveries that
# pile up without a dispatcher are never drained while another kind is being measured.
RUN_ORDER = ("read", "order", "order-e2e", "order-nodelivery")
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
    pool_size: int
    events_workers: int | None
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
    product_ids: list[str] = field(default_factory=list)
    token: str = ""


def make_setup(options: Options, folder: Path) -> Setup:
    """Both apps' environments: one token secret, the same workers x threads and pool sizes."""
    postgres = options.postgres_url if options.db == "postgres" else None
    shop_env = server_env(folder / "instance", postgres, prod=True)
    shop_env.update(
        WEB_WORKERS=str(options.workers),
        WEB_THREADS=str(options.threads),
        DATABASE_POOL_SIZE=str(options.pool_size),
        TOKEN_SECRET=secrets.token_urlsafe(48),
        TOKEN_TTL_SECONDS="86400",  # one token for the whole run
    )
    # The shop as deployed: its own EVENTS_WORKERS default, not order_placement's smaller one.
    shop_env.pop("EVENTS_WORKERS", None)
    if options.events_workers is not None:
        shop_env["EVENTS_WORKERS"] = str(options.events_workers)
    floor_env = {
        "PATH": os.environ.get("PATH", ""),
        "TOKEN_SECRET": shop_env["TOKEN_SECRET"],
        "DATABASE_POOL_SIZE": str(options.pool_size),
        "DATABASE_MAX_OVERFLOW": shop_env.get("DATABASE_MAX_OVERFLOW", "10"),
    }
    if postgres:
        prefix = shop_env["USER_DATABASE_SCHEMA"].rsplit("_", 1)[0]
        floor_env.update(FLOOR_DATABASE_URL=postgres, FLOOR_DATABASE_SCHEMA=f"{prefix}_floor")
    else:
        floor_env["FLOOR_DATABASE_URL"] = f"sqlite:///{folder / 'floor' / 'floor.db'}"
        (folder / "floor").mkdir()
    return Setup(folder=folder, shop_env=shop_env, floor_env=floor_env)


def drop_databases(setup: Setup) -> None:
    """Drop the throwaway PostgreSQL schemas of both apps (SQLite files go with the folder)."""
    drop_schemas(setup.shop_env)
    if "FLOOR_DATABASE_SCHEMA" in setup.floor_env:
        floor = setup.floor_env
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


def floor_server(options: Options, setup: Setup) -> Server:
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
    return Server("floor", command, setup.floor_env, setup.folder, port)


def floor_config(setup: Setup) -> floor_app.FloorConfig:
    return floor_app.FloorConfig.from_env(setup.floor_env)


def load_data(options: Options, setup: Setup, shop_url: str) -> None:
    """The products through the shop's admin API, then the same rows (same ids) into the floor's
    tables; one customer registered with the shop, whose token the floor accepts as well."""
    with httpx.Client(base_url=shop_url, timeout=60) as client:
        admin = bearer(client, *ADMIN)
        seeds = []
        for n in range(options.products):
            body = {
                "sku": f"BENCH-{n:03d}",
                "name": f"Bench product {n}",
                "description": f"Product number {n} of the benchmark",
                "price": f"{1 + n % 40}.{(n * 7) % 100:02d}",
                "currency": "USD",
                "initial_stock": STOCK,
            }
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
    floor_app.seed(floor_config(setup), seeds)


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


# --- the shop's deliveries -------------------------------------------------------------------


class Deliveries:
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

    def wait_until_drained(self, timeout: float) -> tuple[float, bool]:
        """Seconds waited until nothing was pending, and whether that happened within ``timeout``."""
        started = time.monotonic()
        while self.pending():
            if time.monotonic() - started > timeout:
                return time.monotonic() - started, False
            time.sleep(0.1)
        return time.monotonic() - started, True

    def since(self, moment: datetime) -> tuple[list[float], int]:
        """Lags in seconds of the deliveries done that were recorded since ``moment``; and how many died."""
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
    settled: bool = True  # False: the shop's backlog was still pending when the round began
    drain_s: float | None = None  # order-e2e: after the round, until nothing is pending
    drained: bool = True
    lag_p95_ms: float | None = None
    dead: int = 0

    @property
    def rate(self) -> float:
        """Successful requests/s; for order-e2e orders/s over wrk's time plus the drain (an upper
        bound if the drain timed out)."""
        if self.drain_s is None:
            return self.wrk.rate
        return self.wrk.ok / (self.wrk.duration_s + self.drain_s)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    options: Options, kind: str, number: int, app: str, url: str, script: Path, deliveries: Deliveries | None
) -> Round:
    """One wrk round; with the shop's delivery on, first wait for its backlog, and for order-e2e
    time the drain after it."""
    settled = deliveries.wait_until_drained(options.drain_timeout)[1] if deliveries else True
    began = datetime.now(timezone.utc)
    result = Round(kind, number, app, run_wrk(options, url, script, options.duration), settled=settled)
    if kind == "order-e2e" and app == "shop" and deliveries is not None:
        result.drain_s, result.drained = deliveries.wait_until_drained(options.drain_timeout)
        lags, result.dead = deliveries.since(began)
        result.lag_p95_ms = percentile(lags, 0.95) * 1000 if lags else None
    return result


def run_kind(
    options: Options, setup: Setup, kind: str, urls: dict[str, str], deliveries: Deliveries | None
) -> list[Round]:
    """Warm-up, then rounds alternating floor and shop, each printed as soon as it is done."""
    script = write_script(setup, kind)
    for url in urls.values():
        run_wrk(options, url, script, options.warmup)
    print_header(options, kind)
    rounds: list[Round] = []
    for number in range(1, options.rounds + 1):
        pair = [measure(options, kind, number, app, urls[app], script, deliveries) for app in ("floor", "shop")]
        print_round(*pair)
        rounds += pair
    return rounds


# --- output ----------------------------------------------------------------------------------


def print_header(options: Options, kind: str) -> None:
    what = {
        "read": "GET /api/v1/products/<id>",
        "order": "POST /api/v1/orders, delivery on",
        "order-e2e": "POST /api/v1/orders, orders/s until every delivery is done",
        "order-nodelivery": "POST /api/v1/orders, EVENTS_DISPATCH_IN_WEB=false",
    }[kind]
    print(f"\n{kind}: {what}")
    extra = "  drain s  lag p95 ms dead" if kind == "order-e2e" else ""
    print(
        f"{'round':>5} | {'floor /s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} | "
        f"{'shop /s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}{extra} | shop/floor"
    )


def describe_errors(wrk: Wrk) -> str:
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(wrk.statuses.items()) if not code.startswith("2"))
    socket = f"socket errors: {wrk.socket_errors}, timeouts: {wrk.timeouts}"
    return f"{codes}; {socket}" if codes else socket


def print_round(floor: Round, shop: Round) -> None:
    def columns(result: Round) -> str:
        wrk = result.wrk
        return f"{result.rate:9.1f} {wrk.p50_ms:7.1f} {wrk.p99_ms:7.1f} {wrk.errors:6d}"

    extra = ""
    if shop.kind == "order-e2e":
        drain = f"{shop.drain_s:8.1f}" if shop.drained else " timeout"
        lag = f"{shop.lag_p95_ms:11.0f}" if shop.lag_p95_ms is not None else f"{'-':>11}"
        extra = f" {drain} {lag} {shop.dead:4d}"
    line = f"{shop.number:5d} | {columns(floor)} | {columns(shop)}{extra} | {ratio(shop, floor):10.3f}"
    for result in (floor, shop):
        if result.wrk.errors:
            line += f"\n      ! {result.app}: {result.wrk.errors} errors ({describe_errors(result.wrk)})"
        if not result.settled:
            line += f"\n      ! {result.app}: the shop's deliveries were still pending when this round began"
        if not result.drained:
            line += (
                f"\n      ! {result.app}: deliveries still pending after the drain timeout; orders/s is an upper bound"
            )
    print(line, flush=True)


def ratio(shop: Round, floor: Round) -> float:
    return shop.rate / floor.rate if floor.rate else float("nan")


def median_ratios(rounds: list[Round]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        floors = [r for r in rounds if r.kind == kind and r.app == "floor"]
        shops = [r for r in rounds if r.kind == kind and r.app == "shop"]
        if floors:
            ratios = [ratio(shop, floor) for floor, shop in zip(floors, shops, strict=True)]
            errors = sum(r.wrk.errors for r in floors + shops)
            summary[kind] = {"ratios": ratios, "median": statistics.median(ratios), "errors": errors}
    return summary


def print_summary(options: Options, summary: dict[str, dict[str, Any]]) -> None:
    print(f"\nshop/floor throughput ({options.db}, {options.workers} workers x {options.threads} threads)")
    for kind, figures in summary.items():
        per_round = " ".join(f"{value:.3f}" for value in figures["ratios"])
        errors = f"   ! {figures['errors']} errors" if figures["errors"] else ""
        print(f"  {kind:<17} median {figures['median']:.3f}   rounds {per_round}{errors}")


def write_json(options: Options, rounds: list[Round], summary: dict[str, dict[str, Any]]) -> None:
    if options.json_path is None:
        return
    config = {name: str(value) if isinstance(value, Path) else value for name, value in asdict(options).items()}
    records = [{**asdict(r), "rate": r.rate, "wrk_rate": r.wrk.rate, "errors": r.wrk.errors} for r in rounds]
    options.json_path.write_text(json.dumps({"config": config, "rounds": records, "summary": summary}, indent=2))
    print(f"raw results: {options.json_path}")


# --- main ------------------------------------------------------------------------------------


def run(options: Options, folder: Path) -> list[Round]:
    """Start both servers, load the data, check sanity, then measure kind after kind; the shop is
    restarted once, with delivery off, for order-nodelivery."""
    setup = make_setup(options, folder)
    rounds: list[Round] = []
    with ExitStack() as stack:
        stack.callback(drop_databases, setup)
        stack.callback(report_logs, options, folder)
        shop_command(options, "db", "upgrade", setup=setup)
        shop_command(options, "users", "create-admin", ADMIN[0], "--password", ADMIN[1], setup=setup)
        floor_app.init_db(floor_config(setup))
        floor = stack.enter_context(running(floor_server(options, setup)))
        kinds = [kind for kind in RUN_ORDER if kind in options.kinds]
        for delivery in (True, False):
            group = [kind for kind in kinds if (kind != "order-nodelivery") == delivery]
            if not group:
                continue
            with running(shop_server(options, setup, delivery=delivery)) as shop:
                if not setup.product_ids:
                    load_data(options, setup, shop.url)
                    check_sanity(setup, shop.url, floor.url)
                    print(f"sanity: both apps placed an order, the floor wrote its rows ({options.db})")
                deliveries = Deliveries(setup) if delivery else None
                try:
                    for kind in group:
                        rounds += run_kind(options, setup, kind, {"floor": floor.url, "shop": shop.url}, deliveries)
                finally:
                    if deliveries is not None:
                        deliveries.dispose()
    return rounds


def report_logs(options: Options, folder: Path) -> None:
    """The servers log errors only (LOG_LEVEL=ERROR): say how much they logged, keep it if asked."""
    for log in sorted(folder.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        print(f"{log.name}: {len(lines)} lines logged" + (f", last: {lines[-1][:200]}" if lines else ""))
        if options.logs is not None:
            options.logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, options.logs / log.name)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SHOP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        help="server for the throwaway schemas (default: $SHOP_TEST_POSTGRES_URL, else %(default)s)",
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--rounds", type=int, default=3, help="rounds per app and kind (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per round (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per app and kind (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of each app (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--pool-size", type=int, help="DATABASE_POOL_SIZE of both apps (default: --threads)")
    parser.add_argument("--events-workers", type=int, help="the shop's EVENTS_WORKERS (default: the shop's own)")
    parser.add_argument("--products", type=int, default=100, help="products ordered at random (default 100)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="longest wait for the shop's deliveries")
    parser.add_argument("--shop", type=Path, default=REPO, help="checkout whose .venv/bin/shop is measured")
    parser.add_argument("--json", type=Path, dest="json_path", help="write the raw results here")
    parser.add_argument("--logs", type=Path, help="copy both servers' logs into this folder at the end")
    args = parser.parse_args(argv)
    args.pool_size = args.pool_size or args.threads
    args.kinds = tuple(args.kinds)
    args.shop = args.shop.resolve()
    return Options(**vars(args))


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
    summary = median_ratios(rounds)
    print_summary(options, summary)
    write_json(options, rounds, summary)


if __name__ == "__main__":
    main()
