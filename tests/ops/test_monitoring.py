"""Alerts and dashboard: promtool checks and unit tests, the PrometheusRule kept equal to
the rule file, every alert tested and documented, every metric one the service exposes."""

from __future__ import annotations

import ast
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheusrule import PROMETHEUS_RULE_FILE, RULES_FILE
from prometheusrule import render as render_prometheus_rule
from support.markdown import markdown_sections
from support.ops import K8S, ROOT, only, render, require_tool, run

MONITORING = K8S / "monitoring"
DASHBOARD = MONITORING / "dashboards" / "escalator.json"
METRIC_NAME = re.compile(r"\bescalator_[a-z0-9_]+\b")
# Series Prometheus itself adds to every target; the service cannot expose them.
PROMETHEUS_SERIES = {"up"}
SUFFIXES = {"Counter": ("",), "Gauge": ("",), "Histogram": ("_bucket", "_count", "_sum")}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def exposed_metrics() -> set[str]:
    """Series names escalator/metrics.py exposes: prometheus_client's Counter adds _total
    unless the name has it (it always does here), Histogram exposes _bucket, _count and
    _sum. Multiprocess mode exposes no _created series."""
    tree = ast.parse((ROOT / "escalator" / "metrics.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in SUFFIXES and node.args
                and isinstance(node.args[0], ast.Constant)):
            name = str(node.args[0].value)
            if node.func.id == "Counter" and not name.endswith("_total"):
                name += "_total"
            names.update(name + suffix for suffix in SUFFIXES[node.func.id])
    return names


def test_the_metrics_module_is_parsed() -> None:
    exposed = exposed_metrics()
    assert {"escalator_decisions_total", "escalator_decision_duration_seconds_bucket",
            "escalator_ruleset_info"} <= exposed


def test_alerts_use_only_metrics_the_service_exposes() -> None:
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no escalator_ metric found in the alerts"
    assert used <= exposed_metrics(), f"not exposed: {sorted(used - exposed_metrics())}"


def test_the_dashboard_uses_only_metrics_the_service_exposes() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    assert used, "no escalator_ metric found in the dashboard"
    assert used <= exposed_metrics(), f"not exposed: {sorted(used - exposed_metrics())}"


def test_every_alert_says_what_happened_what_to_do_and_how_bad() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook", "runbook_url"} <= set(annotations), \
            rule["alert"]


def runbook_document(url: str) -> Path:
    """The repository file a runbook URL names: a path relative to the repository's root,
    or a hosted copy's URL (https://host/owner/repo/blob/<ref>/<path>)."""
    path = urllib.parse.urlsplit(url).path
    hosted = re.search(r"/(?:-/)?(?:blob|tree)/[^/]+/(.+)$", path)
    return ROOT / (hosted.group(1) if hosted else path)


RUNBOOKS = ROOT / "docs" / "operations"


def test_every_runbook_url_points_at_its_alerts_own_heading_in_a_runbook() -> None:
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        document = runbook_document(url)
        assert document.is_file(), f"{rule['alert']}: {url}: no such file in the repository"
        assert document.parent == RUNBOOKS and document.name.startswith("runbook"), \
            f"{rule['alert']}: {url}: not a runbook page of docs/operations"
        anchor = urllib.parse.urlsplit(url).fragment
        sections = markdown_sections(document.read_text(encoding="utf-8"))
        assert anchor in sections, f"{rule['alert']}: {url}: no such heading " \
                                   f"(there are: {', '.join(sections)})"
        # One heading per alert: the alert's name is the heading, so the anchor is its name.
        assert anchor == rule["alert"].lower(), f"{rule['alert']}: {url}: another heading"
        assert rule["alert"] in sections[anchor], f"{rule['alert']}: not named at {url}"


def test_every_alert_heading_of_the_runbooks_is_an_alert() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    for page in sorted(RUNBOOKS.glob("runbook*.md")):
        headings = re.findall(r"^## (Escalator\w+)$", page.read_text(encoding="utf-8"), re.M)
        assert set(headings) <= alerts, f"{page.name}: {sorted(set(headings) - alerts)}"
    main_page = (RUNBOOKS / "runbook.md").read_text(encoding="utf-8")
    assert re.findall(r"^## (\w+)$", main_page, re.M), "runbook.md has no alert heading"


def test_runbook_urls_resolve_like_github_anchors() -> None:
    sections = markdown_sections("# A title\n## Alerts and what to do\nrow\n"
                                 "### Deploy (k8s)\nx\n## Alerts and what to do\n")
    assert list(sections) == ["a-title", "alerts-and-what-to-do", "deploy-k8s",
                              "alerts-and-what-to-do-1"]
    assert sections["alerts-and-what-to-do"].splitlines()[1:] == ["row", "### Deploy (k8s)",
                                                                  "x"]
    assert runbook_document("https://git.example.com/o/escalator/blob/main/docs/ops.md#a") \
        == ROOT / "docs" / "ops.md"
    assert runbook_document("docs/operations/runbook.md#escalatortargetdown") \
        == RUNBOOKS / "runbook.md"


def test_every_alert_has_a_firing_and_a_silent_promtool_case() -> None:
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
    fired: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            if check["exp_alerts"]:
                fired.add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fired, f"never made to fire: {sorted(names - fired)}"
    # Each case has series for a namespace or channel that must stay silent beside the
    # one that fires, or an evaluation that expects no alert.
    for case in tests:
        silent = any(not check["exp_alerts"] for check in case["alert_rule_test"])
        firing_labels = [alert["exp_labels"] for check in case["alert_rule_test"]
                         for alert in check["exp_alerts"]]
        series = [s["series"] for s in case["input_series"]]
        others = [s for s in series if not all(
            f'{k}="{v}"' in s for labels in firing_labels
            for k, v in labels.items() if k not in ("severity",))]
        assert silent or others, f"{case['name']}: no non-firing case"


def test_the_prometheus_rule_wraps_the_same_groups() -> None:
    generated = render_prometheus_rule(RULES_FILE.read_text())
    assert PROMETHEUS_RULE_FILE.read_text() == generated, \
        "k8s/monitoring/prometheusrule.yaml is stale: python tests/ops/prometheusrule.py"
    wrapped = yaml.safe_load(PROMETHEUS_RULE_FILE.read_text())
    assert wrapped["spec"] == yaml.safe_load(RULES_FILE.read_text())


def test_promtool_checks_the_rules() -> None:
    promtool = require_tool("promtool", "checks Prometheus rules")
    result = run([promtool, "check", "rules", str(RULES_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool", "runs the alert unit tests")
    result = run([promtool, "test", "rules", "alerts.test.yaml"], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses expressions only inside rule files: wrap each query in a recording
    # rule, with Grafana's variables replaced by values.
    promtool = require_tool("promtool", "parses the dashboard's PromQL")
    rules = [{"record": f"dashboard:query_{i}",
              "expr": expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")}
             for i, expr in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_tidy() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    titles = {panel["title"] for panel in dashboard["panels"]}
    # What SREs asked to see.
    assert {"Escalation rate by channel", "Rule matches by rule", "Decision latency",
            "Degraded decisions and state errors", "HTTP 5xx ratio (API routes)",
            "Active rule set", "Rule set reloads", "State store circuit breaker"} <= titles
    for expr in dashboard_exprs():
        assert 'namespace=~"$namespace"' in expr, expr


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/production"])
def test_the_service_monitor_scrapes_the_service(overlay: str) -> None:
    monitoring = render("monitoring")
    monitor = only(monitoring, "ServiceMonitor", "escalator")["spec"]
    service = only(render(overlay), "Service", "escalator")
    labels = service["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert service["metadata"]["namespace"] in monitor["namespaceSelector"]["matchNames"]
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"


def test_the_dashboard_ships_as_a_labelled_config_map() -> None:
    config_map = only(render("monitoring"), "ConfigMap", "escalator-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["escalator.json"]) == json.loads(DASHBOARD.read_text())
    rule = only(render("monitoring"), "PrometheusRule", "escalator")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())


def test_the_alerts_watch_the_job_the_service_monitor_creates() -> None:
    # The Prometheus Operator names the job after the Service.
    target_down = next(r for r in alert_rules() if r["alert"] == "EscalatorTargetDown")
    service = only(render("base"), "Service", "escalator")
    assert f'job="{service["metadata"]["name"]}"' in target_down["expr"]
    for rule in alert_rules():
        for name in re.findall(r"\b([a-z_]+)\{", rule["expr"]):
            assert name.startswith("escalator_") or name in PROMETHEUS_SERIES, name
