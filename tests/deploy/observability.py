"""What ``deploy/observability/`` ships, read the way Prometheus and Grafana read it, and the real
``prometheus`` and ``promtool`` to check it with.

The tests skip, saying how to get them, where the binaries are missing (Debian's ``prometheus``
package has both; ``.ci/run`` installs it), like the nginx tests. Metric names are taken out of
PromQL here rather than by a parser: neither promtool 2.42 nor the test tool chain has one, and
the expressions this checks are the shop's own, written in the plain subset this handles
(selectors, functions, aggregations with ``by``/``without``, binary operators with
``on``/``ignoring``, ranges, ``offset``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import HOST, free_port, stop_process, wait_until_answering

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
PROMETHEUS_FOLDER = DEPLOY / "prometheus"
ALERTS = PROMETHEUS_FOLDER / "alerts.yml"
ALERTS_TEST = PROMETHEUS_FOLDER / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "shop-dashboard.json"
DASHBOARD_GENERATOR = DEPLOY / "grafana" / "dashboard.py"
# Where each scrape configuration reads METRICS_TOKEN from, relative to it.
TOKEN_FILE = "shop-metrics-token"
# The topologies of tests/e2e/topology.py, and their scrape configurations.
SCRAPE_CONFIGS = {
    "monolith": PROMETHEUS_FOLDER / "prometheus-monolith.yml",
    "product_extracted": PROMETHEUS_FOLDER / "prometheus-product-extracted.yml",
    "all_apart": PROMETHEUS_FOLDER / "prometheus-all-apart.yml",
}
# Series Prometheus makes itself for each target, beside what the target exposes.
PROMETHEUS_OWN = frozenset({"up"})
# What Grafana replaces in an expression before Prometheus sees it, as it would.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$service": ".*"}

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
STARTUP_TIMEOUT = 15.0


def promtool_or_skip() -> str:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run installs it)")
    return PROMTOOL


def prometheus_or_skip() -> str:
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run installs it)")
    return PROMETHEUS


def promtool(*arguments: str, cwd: Path) -> str:
    """``promtool ARGUMENTS`` in ``cwd``; fails with its output unless it exits 0."""
    result = subprocess.run(
        [promtool_or_skip(), *arguments], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(arguments)} exited {result.returncode}:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- the alerting rules ----------------------------------------------------------------------


def alerting_rules() -> list[dict[str, Any]]:
    """Every rule of ``alerts.yml`` (all are alerts), in file order."""
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def rule_groups() -> list[str]:
    return [group["name"] for group in load_yaml(ALERTS)["groups"]]


# --- the dashboard ---------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


@dataclass(frozen=True)
class DashboardPanel:
    row: str
    title: str
    expressions: tuple[str, ...]


def dashboard_panels() -> list[DashboardPanel]:
    """Each panel with the title of the row above it and its queries' expressions."""
    found = []
    row = ""
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        found.append(DashboardPanel(row, panel["title"], tuple(t["expr"] for t in panel.get("targets", []))))
    return found


_LABEL_VALUES = re.compile(r"label_values\((?P<expr>.*),\s*(?P<label>[A-Za-z_]\w*)\)")


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard, as Prometheus gets it: the panels' queries and
    the template variables' (``label_values(EXPR, label)`` asks Prometheus for ``EXPR``)."""
    expressions = [expr for panel in dashboard_panels() for expr in panel.expressions]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            matched = _LABEL_VALUES.fullmatch(variable["definition"])
            assert matched, f"variable {variable['name']}: not label_values(EXPR, label): {variable['definition']}"
            expressions.append(matched["expr"])
    return [as_prometheus_gets_it(expr) for expr in expressions]


def as_prometheus_gets_it(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable left in {expr!r}"
    return expr


# --- metric names in PromQL and in the exposition format -------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_OFFSETS = re.compile(r"\boffset\s+-?[0-9][0-9a-z]*")
# A whole identifier (not the tail of a number or a longer name) that is not a function's name.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "inf", "nan", "offset"})


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left once strings, label matchers,
    grouping clauses, ranges and offsets are taken out, other than functions and keywords."""
    stripped = _STRINGS.sub('""', expr)
    stripped = _MATCHERS.sub("", stripped)
    stripped = _GROUPING.sub("", stripped)
    stripped = _RANGES.sub("", stripped)
    stripped = _OFFSETS.sub("", stripped)
    return {name for name in _IDENTIFIER.findall(stripped) if name.lower() not in _KEYWORDS}


def exposed_names(exposition: str) -> set[str]:
    """The names a query may select from a scrape of this text: each family's ``# TYPE`` line
    (written even for a labelled metric without samples yet), a histogram's as its ``_bucket``,
    ``_sum`` and ``_count`` series."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(" ", 3)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "summary":
            names |= {name, f"{name}_sum", f"{name}_count"}
        elif kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")  # OpenMetrics names the family without its suffix
        else:
            names.add(name)
    return names


# --- a real Prometheus -----------------------------------------------------------------------


def local_scrape_config(
    topology: str, targets: Mapping[str, str], token_file: Path, *, interval: str = "1s"
) -> dict[str, Any]:
    """``topology``'s shipped scrape configuration pointed at processes on this machine: each job's
    target replaced (``targets``: job → host:port), the token read from ``token_file``, the
    shipped rules loaded, scraped and evaluated every ``interval``. Everything else as shipped."""
    config: dict[str, Any] = load_yaml(SCRAPE_CONFIGS[topology])
    config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    config["rule_files"] = [str(ALERTS)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"jobs {sorted(jobs)}, targets for {sorted(targets)}"
    for name, job in jobs.items():
        (static,) = job["static_configs"]
        static["targets"] = [targets[name]]
        job["authorization"]["credentials_file"] = str(token_file)
    return config


@contextmanager
def running_prometheus(config: Mapping[str, Any], folder: Path) -> Iterator[str]:
    """The real ``prometheus`` with ``config``, its data and log in ``folder``, on a free loopback
    port; yields its URL once it says it is ready, and stops it on leaving."""
    binary = prometheus_or_skip()
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    url = f"http://{HOST}:{free_port()}"
    log_path = folder / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_answering(
                process,
                url,
                "/-/ready",
                timeout=STARTUP_TIMEOUT,
                name="prometheus",
                log_tail=lambda: log_path.read_text(errors="replace"),
            )
            yield url
        finally:
            stop_process(process)


def api(url: str, path: str, **parameters: str) -> Any:
    """``GET {url}/api/v1/{path}``'s ``data``; fails with Prometheus' error otherwise."""
    response = httpx.get(f"{url}/api/v1/{path}", params=parameters, timeout=10.0)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (path, parameters, body)
    return body["data"]


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector ``expr`` evaluates to now."""
    data = api(url, "query", query=expr)
    assert data["resultType"] == "vector", data
    result: list[dict[str, Any]] = data["result"]
    return result
