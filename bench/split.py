"""What the split costs: the shop in three placements behind the generated nginx gateway, same run.

Starts the shop on PostgreSQL (throwaway schemas, one set per topology) in the three topologies
of the end-to-end tests (``tests/e2e/topology.py``, whose code starts every process here):

- ``monolith``: one process serves every context;
- ``product_extracted``: the product context in a process of its own, the rest in another;
- ``all_apart``: each of the six contexts in its own process;

each process ``shop serve --prod`` with the same ``--workers`` x ``--threads`` (``--split-workers``:
another number of workers for each process of the split topologies), each topology
behind a real nginx running what ``shop gateway nginx`` generates for it, events crossing
RabbitMQ where they leave a process. Loads the same products (ample stock) and one customer
into each, then drives each gateway with wrk (``bench/compare.py``'s scripts and runner), the
topologies interleaved round by round (A B C A B C ...), every round starting once no topology
has a delivery pending or a message queued. Prints each round's requests/s and p50/p99 and the
CPU time each service's processes (gunicorn master and workers) spent per successful request,
then the median ratio of each topology to the monolith. The CPU of nginx, PostgreSQL and
RabbitMQ is not counted.

Before the rounds, a remote call's own cost (``bench/split_calls.py``, with the measured
checkout's interpreter): the published ProductApi in process against the product-extracted
topology's product service over loopback HTTP, call after call alternately.

    flock /tmp/bench.lock .venv/bin/python bench/split.py [--postgres-url URL] [--amqp-url URL]
        [--rounds 3] [--duration 5] [--workers 2 --threads 4] [--split-workers 1] [--shop /path/to/checkout]
        [--profile bench/profiles] [--py-spy bench/profiles] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compare import Setup, Wrk, add_load_options, describe_errors, product_body, run_wrk, write_script
from tests.conftest import PostgresBackend, on_backend
from tests.e2e.server import API, EXECUTABLE_VARIABLE, bearer, register
from tests.e2e.topology import ADMIN_EMAIL, ADMIN_PASSWORD, Topology, running_topology

REPO = Path(__file__).resolve().parents[1]
TOPOLOGIES = ("monolith", "product_extracted", "all_apart")
KINDS = ("order", "read")
TARGETS = {"product_extracted": 0.85, "all_apart": 0.7}
OVERHEAD_TARGET_MS = 1.5
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
CUSTOMER = ("split-customer@example.com", "split customer password")
STARTUP_TIMEOUT = 180.0  # nine gunicorn masters and their workers starting on two loaded cores
SETTLE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Options:
    postgres_url: str
    amqp_url: str
    topologies: tuple[str, ...]
    kinds: tuple[str, ...]
    rounds: int
    duration: int
    warmup: int
    workers: int
    split_workers: int | None
    threads: int
    connections: int
    wrk_threads: int
    products: int
    calls: int
    shop: Path
    profile: Path | None
    py_spy: Path | None
    json_path: Path | None
    logs: Path | None


def process_settings(options: Options, topology: str) -> dict[str, str]:
    """What every process of ``topology`` gets beyond the topology's own: gunicorn's size, quiet
    logs, and the shop's default dispatcher polling (the e2e tests poll faster). The database
    pool stays the shop's default in every topology: a worker holds its request threads and its
    delivery workers' connections at once, and a pool smaller than that closes and reopens
    PostgreSQL connections all through a round (bench/README.md, "Pool churn")."""
    return {
        "WEB_WORKERS": str(workers_of(options, topology)),
        "WEB_THREADS": str(options.threads),
        "LOG_LEVEL": "ERROR",
        "EVENTS_POLL_SECONDS": "1",
        "TOKEN_TTL_SECONDS": "86400",
    }


def workers_of(options: Options, topology: str) -> int:
    """The gunicorn workers of each of ``topology``'s processes: ``--split-workers`` in the split
    topologies when given, else ``--workers``."""
    if topology != "monolith" and options.split_workers is not None:
        return options.split_workers
    return options.workers


def sizing(options: Options) -> str:
    """How the processes are sized, for the headers of what is printed."""
    if options.split_workers is None:
        return f"each process {options.workers} workers x {options.threads} threads"
    return (
        f"the monolith {options.workers} workers, each process of a split topology {options.split_workers},"
        f" x {options.threads} threads"
    )


# --- data ------------------------------------------------------------------------------------


def load_data(options: Options, topology: Topology, folder: Path) -> Setup:
    """Products through the admin API and one customer, through the gateway; what wrk's scripts need."""
    setup = Setup(folder=folder, shop_env={}, floor_env={}, guarded_env={})
    with httpx.Client(base_url=topology.url, timeout=60) as client:
        admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        for n in range(options.products):
            response = client.post(f"{API}/products", json=product_body("SPLIT", n), headers=admin)
            assert response.status_code == 201, (response.status_code, response.text)
            setup.product_ids.append(response.json()["id"])
        setup.token = register(client, *CUSTOMER)["Authorization"].removeprefix("Bearer ")
        placed = client.post(
            f"{API}/orders",
            json={"items": [{"product_id": setup.product_ids[0], "quantity": 1}]},
            headers={"Authorization": f"Bearer {setup.token}"},
        )
        assert placed.status_code == 201, (topology.name, placed.status_code, placed.text)
    return setup


def settled(topology: Topology) -> bool:
    """No delivery pending in any outbox, no message waiting on the topology's broker queues."""
    pending = topology.deliveries().get("pending", 0)
    return not pending and not any(topology.broker_messages().values())


def wait_until_settled(topologies: Sequence[Topology]) -> bool:
    """Whether every topology settled within ``SETTLE_TIMEOUT``: one round's backlog must not
    compete with the next round's load."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not all(settled(topology) for topology in topologies):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# --- a remote call's own cost -----------------------------------------------------------------


def measure_calls(options: Options, topology: Topology, setup: Setup) -> dict[str, Any]:
    """``split_calls.py`` with the measured checkout's interpreter, in the product service's
    environment, against that service."""
    product = topology.service_for("product")
    command = [
        str(options.shop / ".venv" / "bin" / "python"),
        str(REPO / "bench" / "split_calls.py"),
        "--product-url",
        product.url,
        "--product-ids",
        ",".join(setup.product_ids),
        "--calls",
        str(options.calls),
    ]
    if options.profile is not None:
        command += ["--profile", str(options.profile.resolve())]
    env = {**product.env, "LOG_LEVEL": "ERROR"}
    result = subprocess.run(command, env=env, cwd=product.folder, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"split_calls.py exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("{"))
    figures: dict[str, Any] = json.loads(line)
    return figures


def print_calls(figures: dict[str, Any]) -> None:
    print("\nremote call's own cost (p50 of alternate calls; ms)")
    print(f"{'operation':<16} {'in process':>10} {'remote':>8} {'overhead':>9} | p90: {'in process':>10} {'remote':>8}")
    for name, row in figures.items():
        mark = "" if name == "order_flow" else (" ✔" if row["overhead_p50_ms"] <= OVERHEAD_TARGET_MS else " ✘")
        print(
            f"{name:<16} {row['in_process_p50_ms']:10.2f} {row['remote_p50_ms']:8.2f} {row['overhead_p50_ms']:9.2f}"
            f" | {row['in_process_p90_ms']:15.2f} {row['remote_p90_ms']:8.2f}{mark}"
        )


# --- CPU per process ---------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def cpu_seconds() -> dict[int, tuple[int, float]]:
    """Every process's parent and the CPU seconds (user + system, all its threads) it has used."""
    found: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def service_cpu(topology: Topology) -> dict[str, float]:
    """CPU seconds used so far by each service: its gunicorn master and every worker under it."""
    processes = cpu_seconds()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    used: dict[str, float] = {}
    for service in topology.services:
        process = service.server.process
        family = [process.pid] if process is not None else []
        for pid in family:
            family += children.get(pid, [])
        used[service.name] = sum(processes[pid][1] for pid in family if pid in processes)
    return used


# --- rounds ----------------------------------------------------------------------------------


@dataclass
class Round:
    kind: str
    number: int
    topology: str
    wrk: Wrk
    settled: bool
    cpu_ms: dict[str, float]  # per successful request, by service: its processes' CPU time


def measure(options: Options, topology: Topology, script: Path, calm: bool, kind: str, number: int) -> Round:
    """One wrk round through the topology's gateway, and the CPU its services spent on it; with
    ``--py-spy``, the first order round of each topology is sampled too."""
    spies = spy(options, topology) if options.py_spy is not None and kind == "order" and number == 1 else []
    before = service_cpu(topology)
    wrk = run_wrk(options, topology.url, script, options.duration)
    after = service_cpu(topology)
    for process in spies:
        process.wait(timeout=60)
    cpu_ms = {name: (after[name] - before[name]) * 1000 / max(1, wrk.ok) for name in after}
    return Round(kind, number, topology.name, wrk, calm, cpu_ms)


def spy(options: Options, topology: Topology) -> list[subprocess.Popen[bytes]]:
    """py-spy on every service of ``topology`` (master and workers), sampling the thread that
    holds the GIL (Python's CPU) for the round's duration, as collapsed stacks."""
    assert options.py_spy is not None
    options.py_spy.mkdir(parents=True, exist_ok=True)
    started = []
    for service in topology.services:
        assert service.server.process is not None
        output = options.py_spy / f"split-{topology.name}-{service.name}.txt"
        command = [PY_SPY, "record", "--pid", str(service.server.process.pid), "--subprocesses", "--gil"]
        command += ["--duration", str(options.duration), "--rate", "100", "--format", "raw", "--output", str(output)]
        started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return started


def run_rounds(options: Options, topologies: Sequence[Topology], setups: dict[str, Setup]) -> list[Round]:
    rounds: list[Round] = []
    for kind in options.kinds:
        scripts = {topology.name: write_script(setups[topology.name], kind) for topology in topologies}
        for topology in topologies:
            run_wrk(options, topology.url, scripts[topology.name], options.warmup)
        print(f"\n{kind}: {'POST /api/v1/orders' if kind == 'order' else 'GET /api/v1/products/<id>'}, through nginx")
        print(f"{'round':>5} | " + " | ".join(f"{name:>17} /s  p50  p99" for name in options.topologies))
        for number in range(1, options.rounds + 1):
            batch = []
            for topology in topologies:
                calm = wait_until_settled(topologies)
                batch.append(measure(options, topology, scripts[topology.name], calm, kind, number))
            print_round(number, batch)
            rounds += batch
    return rounds


def print_round(number: int, batch: Sequence[Round]) -> None:
    monolith = next((r for r in batch if r.topology == "monolith"), None)
    cells = []
    for result in batch:
        ratio = f" ({result.wrk.rate / monolith.wrk.rate:.2f}x)" if monolith and result is not monolith else ""
        cells.append(f"{result.wrk.rate:9.1f}{ratio:>9} {result.wrk.p50_ms:5.1f} {result.wrk.p99_ms:5.0f}")
    line = f"{number:5d} | " + " | ".join(cells)
    line += "\n      CPU ms per request: " + " | ".join(
        f"{result.topology} " + " ".join(f"{name} {ms:.1f}" for name, ms in result.cpu_ms.items()) for result in batch
    )
    for result in batch:
        if result.wrk.errors:
            line += f"\n      ! {result.topology}: {result.wrk.errors} errors ({describe_errors(result.wrk)})"
        if not result.settled:
            line += f"\n      ! {result.topology}: deliveries or messages still pending when the round began"
    print(line, flush=True)


def summary(rounds: Sequence[Round]) -> dict[str, dict[str, Any]]:
    """Per kind and topology: the median ratio to the monolith's round, every round's, and the
    medians of p50 and p99."""
    result: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        monolith = {r.number: r for r in rounds if r.kind == kind and r.topology == "monolith"}
        for name in TOPOLOGIES:
            mine = [r for r in rounds if r.kind == kind and r.topology == name]
            if not mine:
                continue
            ratios = [r.wrk.rate / monolith[r.number].wrk.rate for r in mine if r.number in monolith]
            result.setdefault(kind, {})[name] = {
                "rate_median": statistics.median(r.wrk.rate for r in mine),
                "p50_median_ms": statistics.median(r.wrk.p50_ms for r in mine),
                "p99_median_ms": statistics.median(r.wrk.p99_ms for r in mine),
                "ratios": ratios,
                "ratio_median": statistics.median(ratios) if ratios else None,
                "errors": sum(r.wrk.errors for r in mine),
                "cpu_ms_median": {
                    service: statistics.median(r.cpu_ms[service] for r in mine) for service in mine[0].cpu_ms
                },
            }
    return result


def print_summary(options: Options, figures: dict[str, dict[str, Any]]) -> None:
    print(f"\n{options.shop}: {sizing(options)}")
    for kind, by_topology in figures.items():
        print(f"{kind}:")
        for name, row in by_topology.items():
            target = TARGETS.get(name) if kind == "order" else None
            median = row["ratio_median"]
            mark = "" if target is None or median is None else (" ✔" if median >= target else " ✘")
            per_round = " ".join(f"{r:.2f}" for r in row["ratios"])
            shown = median is not None and name != "monolith"
            ratio = f"  /monolith median {median:.2f}{mark} ({per_round})" if shown else ""
            errors = f"   ! {row['errors']} errors" if row["errors"] else ""
            print(
                f"  {name:<18} {row['rate_median']:8.1f}/s  p50 {row['p50_median_ms']:6.1f} ms  "
                f"p99 {row['p99_median_ms']:6.0f} ms{ratio}{errors}"
            )
            cpu = row["cpu_ms_median"]
            total = f"{sum(cpu.values()):.1f}"
            print(f"  {'':<18} CPU ms per request {total} = " + " + ".join(f"{s} {ms:.1f}" for s, ms in cpu.items()))


# --- main ------------------------------------------------------------------------------------


def run(options: Options, folder: Path) -> tuple[dict[str, Any] | None, list[Round]]:
    calls: dict[str, Any] | None = None
    with on_backend(PostgresBackend(options.postgres_url)), ExitStack() as stack:
        topologies = []
        for name in options.topologies:
            topology = stack.enter_context(
                running_topology(
                    name,
                    folder / name,
                    amqp_url=options.amqp_url,
                    settings=process_settings(options, name),
                    front="nginx",
                    serve_options=("--prod",),
                    startup_timeout=STARTUP_TIMEOUT,
                )
            )
            if options.logs is not None:
                stack.callback(keep_logs, folder / name / "logs", options.logs / name)
            topologies.append(topology)
            print(f"{name}: {len(topology.services)} process(es) behind nginx at {topology.url}", flush=True)
        setups = {t.name: load_data(options, t, folder / t.name) for t in topologies}
        extracted = next((t for t in topologies if t.name == "product_extracted"), None)
        if extracted is not None and options.calls:
            calls = measure_calls(options, extracted, setups[extracted.name])
            print_calls(calls)
        rounds = run_rounds(options, topologies, setups)
    return calls, rounds


def keep_logs(source: Path, target: Path) -> None:
    if source.exists():
        shutil.copytree(source, target, dirs_exist_ok=True)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SHOP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        help="server for the throwaway schemas (default: $SHOP_TEST_POSTGRES_URL, else %(default)s)",
    )
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("SHOP_TEST_AMQP_URL") or DEFAULT_AMQP_URL,
        help="RabbitMQ for the split topologies' events (default: $SHOP_TEST_AMQP_URL, else %(default)s)",
    )
    parser.add_argument("--topologies", nargs="+", choices=TOPOLOGIES, default=list(TOPOLOGIES))
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    add_load_options(parser, "topology")
    parser.add_argument(
        "--split-workers",
        type=int,
        help="gunicorn workers of each process of the split topologies (default: --workers, as the monolith's):"
        " the machine's cores shared out among more processes",
    )
    parser.add_argument("--products", type=int, default=100, help="products ordered at random (default 100)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per operation and side; 0: none")
    parser.add_argument("--shop", type=Path, default=REPO, help="checkout whose .venv/bin/shop is measured")
    parser.add_argument("--profile", type=Path, help="write cProfile dumps of the remote calls into this folder")
    parser.add_argument(
        "--py-spy", type=Path, help="sample every service with py-spy in the first order round, into this folder"
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="write the raw results here")
    parser.add_argument("--logs", type=Path, help="copy every process's log into this folder at the end")
    args = parser.parse_args(argv)
    if args.split_workers is not None and args.split_workers < 1:
        parser.error("--split-workers must be at least 1")
    args.topologies = tuple(name for name in TOPOLOGIES if name in args.topologies)
    args.kinds = tuple(args.kinds)
    args.shop = args.shop.resolve()
    return Options(**vars(args))


def _interrupt(_signal: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks: processes stopped, schemas dropped


def main() -> None:
    options = parse_options()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"split.py needs {tool}: apt-get install {tool}")
    if not (options.shop / ".venv" / "bin" / "shop").exists():
        sys.exit(f"no {options.shop}/.venv/bin/shop: run `make venv` in {options.shop}")
    # Every process, migration and the gateway's generation run the measured checkout's shop.
    os.environ[EXECUTABLE_VARIABLE] = str(options.shop / ".venv" / "bin" / "shop")
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _interrupt)
    print(
        f"shop: {options.shop}; {', '.join(options.topologies)}; {sizing(options)};"
        f" wrk {options.wrk_threads} threads, {options.connections} connections; "
        f"{options.rounds} rounds of {options.duration} s; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="shop-split-") as folder:
        try:
            calls, rounds = run(options, Path(folder))
        except KeyboardInterrupt:
            sys.exit("interrupted: processes stopped")
    figures = summary(rounds)
    print_summary(options, figures)
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    if options.json_path is not None:
        config = {name: str(value) if isinstance(value, Path) else value for name, value in asdict(options).items()}
        records = [{**asdict(r), "rate": r.wrk.rate, "errors": r.wrk.errors} for r in rounds]
        payload = {"config": config, "calls": calls, "rounds": records, "summary": figures}
        options.json_path.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
