"""``deploy/observability/`` as the real tools read it, and held to the shop it observes.

promtool checks each topology's scrape configuration (with the rule file it loads), the alerting
rules, and runs their unit tests (``alerts_test.yml``); every alert is tested firing and not.
The dashboard's expressions go through promtool's parser too (as recording rules), and its
context rows are checked against the app itself: each row selects exactly that context's route
templates (public and internal) and subscribers, and shows calls, events and deliveries where
the registry says the context has them. Last, every metric an alert or a panel uses must be one
the shop exposes: scraped from an app built in process, where ``# TYPE`` lines name even the
labelled metrics that have no sample yet.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from app.placement import RELAY
from app.public_api import context_of_endpoint, http_modules, whole_api
from app.registry import CONTEXTS, SUBSCRIPTIONS, callers_of, publishing
from tests.deploy.observability import (
    ALERTS,
    ALERTS_TEST,
    DASHBOARD,
    DASHBOARD_GENERATOR,
    PROMETHEUS_FOLDER,
    PROMETHEUS_OWN,
    SCRAPE_CONFIGS,
    TOKEN_FILE,
    DashboardPanel,
    alerting_rules,
    dashboard,
    dashboard_expressions,
    dashboard_panels,
    exposed_names,
    load_yaml,
    metric_names,
    promtool,
    promtool_or_skip,
)
from tests.e2e.topology import TOPOLOGIES

CONTEXT_ROW = "Context: {}"
SHARED_ROWS = ("Overview", "HTTP", "Events and broker", "Database pools", "Remote calls")
ANNOTATIONS = ("summary", "description", "runbook")


def _processes(topology: str) -> list[str]:
    """The processes of ``topology`` as tests/e2e/topology.py names them: ``monolith``; ``product``
    and ``rest``; each context's name."""
    layout = TOPOLOGIES[topology]
    if len(layout) == 1:
        return ["monolith"]
    return [contexts[0] if len(contexts) == 1 else "rest" for contexts in layout]


# --- the scrape configurations ---------------------------------------------------------------


@pytest.mark.parametrize("topology", sorted(SCRAPE_CONFIGS))
def test_each_topology_scrapes_every_process_of_it_at_metrics_with_the_token(topology: str) -> None:
    config = load_yaml(SCRAPE_CONFIGS[topology])
    assert config["rule_files"] == [ALERTS.name]
    jobs = config["scrape_configs"]
    services = [static["labels"]["service"] for job in jobs for static in job["static_configs"]]
    assert sorted(services) == sorted(_processes(topology))
    for job in jobs:
        (static,) = job["static_configs"]
        assert job["job_name"] == f"shop-{static['labels']['service']}", "the alerts select the jobs shop-*"
        assert job.get("metrics_path") == "/metrics"
        assert job["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_FILE}


@pytest.mark.parametrize("topology", sorted(SCRAPE_CONFIGS))
def test_promtool_checks_each_topology_s_scrape_configuration(topology: str, tmp_path: Path) -> None:
    """promtool opens the credentials file a configuration names and the rule files it loads,
    relative to the configuration: the shipped folder copied, beside a token as an operator
    would put it."""
    promtool_or_skip()
    folder = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_FOLDER, folder)
    (folder / TOKEN_FILE).write_text("a-metrics-token-of-the-operator's-choosing\n")
    output = promtool("check", "config", SCRAPE_CONFIGS[topology].name, cwd=folder)
    assert "SUCCESS" in output and f"{len(alerting_rules())} rules found" in output, output


# --- the alerting rules ----------------------------------------------------------------------


def test_promtool_checks_the_alerting_rules() -> None:
    output = promtool("check", "rules", ALERTS.name, cwd=ALERTS.parent)
    assert f"SUCCESS: {len(alerting_rules())} rules found" in output, output


def test_the_alerting_rules_pass_their_unit_tests() -> None:
    output = promtool("test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert "SUCCESS" in output, output


def test_every_alert_says_what_happened_and_what_to_do() -> None:
    rules = alerting_rules()
    assert rules and all("alert" in rule for rule in rules), "alerts.yml holds alerts only"
    for rule in rules:
        missing = [name for name in ANNOTATIONS if not rule.get("annotations", {}).get(name, "").strip()]
        assert not missing, f"{rule['alert']}: no {', '.join(missing)}"
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tested = [case for test in load_yaml(ALERTS_TEST)["tests"] for case in test.get("alert_rule_test", [])]
    for rule in alerting_rules():
        cases = [case for case in tested if case["alertname"] == rule["alert"]]
        assert any(case.get("exp_alerts") for case in cases), f"{rule['alert']} is never tested firing"
        assert any(not case.get("exp_alerts") for case in cases), f"{rule['alert']} is never tested not firing"


def test_the_alerts_cover_what_operators_are_promised() -> None:
    """Error rate, p99 latency, dead letters, subscriber lag, breaker open, pool saturation,
    readiness (issue 14): each by the metric that tells it."""
    used = {rule["alert"]: metric_names(rule["expr"]) for rule in alerting_rules()}
    promised = {
        "shop_http_requests_total",
        "shop_http_request_duration_seconds_bucket",
        "shop_event_backlog",
        "shop_broker_consumed_total",
        "shop_event_backlog_oldest_seconds",
        "shop_remote_breaker_state",
        "shop_db_pool_connections_in_use",
        "shop_ready",
        "shop_dependency_ready",
        "up",
    }
    assert promised <= set().union(*used.values()), promised - set().union(*used.values())


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_is_what_its_generator_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator is a script, not a module of the project: loaded from its file (and known to
    ``sys.modules`` while it runs, as its dataclasses need)."""
    spec = importlib.util.spec_from_file_location("shop_dashboard", DASHBOARD_GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, generator)
    spec.loader.exec_module(generator)
    assert DASHBOARD.read_text(encoding="utf-8") == generator.rendered(), (
        f"{DASHBOARD.name} is not what {DASHBOARD_GENERATOR.name} writes: run"
        f" python {DASHBOARD_GENERATOR.relative_to(DASHBOARD.parents[3])}"
    )


def test_the_dashboard_has_a_row_per_context_and_the_shared_rows() -> None:
    rows = [panel["title"] for panel in dashboard()["panels"] if panel["type"] == "row"]
    assert sorted(rows) == sorted([*SHARED_ROWS, *(CONTEXT_ROW.format(context) for context in CONTEXTS)])
    assert [row for row in rows if row.startswith("Context: ")] == [CONTEXT_ROW.format(c) for c in CONTEXTS]
    assert all(panel.expressions for panel in dashboard_panels()), "a panel without a query"


def test_every_panel_queries_the_chosen_prometheus_for_the_chosen_processes() -> None:
    board = dashboard()
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "service"} <= variables
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"]), "panel ids repeat"
    for panel in panels:
        assert panel["datasource"] == chosen, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == chosen, panel["title"]
            assert 'service=~"$service"' in target["expr"], f"{panel['title']}: not filtered by $service"


def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    """Each expression as a recording rule of a file of its own: promtool parses them all."""
    rules = [
        {"record": f"dashboard_expression_{number}", "expr": expr}
        for number, expr in enumerate(dashboard_expressions(), start=1)
    ]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in output, output


def _row_panels(context: str) -> list[DashboardPanel]:
    return [panel for panel in dashboard_panels() if panel.row == CONTEXT_ROW.format(context)]


def _matchers(panels: list[DashboardPanel], label: str, operator: str) -> set[str]:
    """The regular expressions ``label`` is matched with (``=~``) or against (``!~``) in the panels,
    unquoted as PromQL reads them."""
    pattern = re.compile(rf'\b{label}{re.escape(operator)}"((?:[^"\\]|\\.)*)"')
    expressions = [expr for panel in panels for expr in panel.expressions]
    return {json.loads(f'"{found}"') for expr in expressions for found in pattern.findall(expr)}


def _selected(names: list[str], panels: list[DashboardPanel], label: str) -> set[str]:
    """Of ``names``, those every ``label`` matcher of the panels lets through (Prometheus
    anchors its regular expressions: a full match)."""
    included, excluded = _matchers(panels, label, "=~"), _matchers(panels, label, "!~")
    assert len(included) <= 1 and len(excluded) <= 1, f"{label}: one selection per row, not {included} {excluded}"
    if not included:
        return set()
    (include,) = included
    return {
        name
        for name in names
        if re.fullmatch(include, name) and not any(re.fullmatch(exclude, name) for exclude in excluded)
    }


def _route_templates() -> list[tuple[str, str | None]]:
    """Every route template a process may count (``route``), with the context it belongs to:
    the public endpoints, the operations ones (no context), and the internal endpoints a
    context serves other processes when it runs apart."""
    rules = [(rule.rule, context_of_endpoint(rule.endpoint)) for rule in whole_api().url_map.iter_rules()]
    for context, module in http_modules().items():
        internal = getattr(module, "internal_bp", None)
        if internal is not None:
            app = Flask(__name__)
            app.register_blueprint(internal)
            rules += [(rule.rule, context) for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    return rules


@pytest.mark.parametrize("context", CONTEXTS)
def test_each_context_row_shows_exactly_that_context_s_routes(context: str) -> None:
    rules = _route_templates()
    templates = sorted({template for template, _ in rules} | {"unmatched"})
    own = {template for template, owner in rules if owner == context}
    assert _selected(templates, _row_panels(context), "route") == own


@pytest.mark.parametrize("context", CONTEXTS)
def test_each_context_row_shows_exactly_that_context_s_subscribers(context: str) -> None:
    names = sorted({subscription.name for subscription in SUBSCRIPTIONS} | {RELAY})
    own = {subscription.name for subscription in SUBSCRIPTIONS if subscription.subscriber == context}
    panels = _row_panels(context)
    assert _selected(names, panels, "subscriber") == own
    # The broker queues are <prefix>.<subscriber>, whatever the prefix.
    queues = [f"shop.{name}" for name in names] + [f"t0123.{name}" for name in names]
    assert _selected(queues, panels, "queue") == {f"{prefix}.{name}" for prefix in ("shop", "t0123") for name in own}


@pytest.mark.parametrize("context", CONTEXTS)
def test_each_context_row_shows_its_interface_calls_and_events_where_it_has_them(context: str) -> None:
    used = set().union(*(metric_names(expr) for panel in _row_panels(context) for expr in panel.expressions))
    assert ("shop_api_calls_total" in used) == bool(callers_of(context)), "calls to its interface"
    assert ("shop_events_recorded_total" in used) == (context in publishing()), "events it records"
    subscribes = any(subscription.subscriber == context for subscription in SUBSCRIPTIONS)
    assert ("shop_event_deliveries_total" in used) == subscribes, "deliveries to its subscribers"


# --- every metric used is one the shop exposes -----------------------------------------------


def test_metric_names_are_read_out_of_promql() -> None:
    """The reading the next test relies on, on the forms the rules and the dashboard use."""
    expr = (
        'histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{route=~"x{1}"}[5m]))) > 1'
        " and sum without (le) (increase(b_total[1h] offset 1h)) / on (job) group_left (x) c unless d"
        " or clamp_min(e, 0) == bool 2"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d", "e"}


def _used_metrics() -> dict[str, set[str]]:
    """Each metric an alert or a panel selects → where."""
    used: dict[str, set[str]] = {}
    for rule in alerting_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    for expr in dashboard_expressions():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("the dashboard")
    return used


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_metric_the_alerts_and_the_dashboard_use_is_exposed(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200, f"GET /metrics answered {response.status_code}: is it wired into the app?"
    exposed = exposed_names(response.get_data(as_text=True)) | PROMETHEUS_OWN
    unknown = {name: sorted(where) for name, where in _used_metrics().items() if name not in exposed}
    assert not unknown, f"metrics the shop does not expose: {unknown}"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_dashboard_shows_every_metric_the_shop_exposes(client: FlaskClient) -> None:
    """A metric nobody looks at is a metric nobody notices: each one the shop exposes has a panel
    (a histogram: by its buckets or its count). Not the ``_created`` gauges prometheus-client
    writes beside a counter's or a histogram's children: when each series began."""
    response = client.get("/metrics")
    assert response.status_code == 200, f"GET /metrics answered {response.status_code}: is it wired into the app?"
    families = dict(
        line.split(" ", 3)[2:] for line in response.get_data(as_text=True).splitlines() if line.startswith("# TYPE ")
    )
    created = {f"{name.removesuffix('_total')}_created" for name, kind in families.items() if kind != "gauge"}
    on_dashboard = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    missing = []
    for name, kind in families.items():
        shown = {f"{name}_bucket", f"{name}_count"} if kind == "histogram" else {name}
        if name.startswith("shop_") and name not in created and not shown & on_dashboard:
            missing.append(name)
    assert not missing, f"no panel shows {missing}: add one to {DASHBOARD_GENERATOR.name} and run it"
