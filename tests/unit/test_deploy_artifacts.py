"""The monitoring artifacts, checked offline with the real promtool (config, rules, rule unit
tests, PromQL of every dashboard query) against the metrics the service exports.

Also: the Role in deploy/rbac/role.yaml grants exactly the Kubernetes calls the code makes
(derived from the source, not from a list kept by hand).

The Helm chart's checks need helm (built from Go once, minutes cold): they are in
tests/integration/test_chart.py; tests/integration/test_deploy_on_cluster.py applies the
chart to a real API server and scrapes a running service with Prometheus.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import yaml

from modelmedic import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "modelmedic.json"
ROLE = ROOT / "deploy" / "rbac" / "role.yaml"
SERVICE = ROOT / "service"

# The kubernetes package's API objects as the code names them, and the API group each one calls.
API_GROUPS = {"_apps": "apps", "apps": "apps", "_core": "", "_autoscaling": "autoscaling"}
VERBS = {"read": "get", "list": "list", "patch": "patch", "create": "create", "replace": "update", "delete": "delete"}
RESOURCES = {"deployment": "deployments", "deployment_scale": "deployments/scale", "replica_set": "replicasets",
             "horizontal_pod_autoscaler": "horizontalpodautoscalers", "event": "events", "pod": "pods"}


# ---------------------------------------------------------------- helpers


def exported_series() -> dict[str, str]:
    """Every series name service/metrics.py exports, mapped to its metric's Python name."""
    names: dict[str, str] = {}
    for attr, metric in vars(metrics).items():
        if isinstance(metric, metrics.TopModels):
            names.update({family.name: attr for family in metric.describe()})
        if not isinstance(metric, prometheus_client.metrics.MetricWrapperBase):
            continue
        base = metric._name  # noqa: SLF001 - the registered name; prometheus_client strips _total
        # no *_created series: service/metrics.py turns them off
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
        for suffix in suffixes[metric._type]:  # noqa: SLF001
            names[base + suffix] = attr
    return names


def referenced_metrics(expr: str) -> set[str]:
    """The modelmedic_* series a PromQL expression reads."""
    return set(re.findall(r"\bmodelmedic_[a-z0-9_]+", expr))


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: apt-get install -y prometheus (deploy/local/setup.sh does)"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dash["panels"] for target in panel.get("targets", [])]


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in, so Prometheus' parser can read it."""
    return expr.replace("$__rate_interval", "1m").replace("$job", ".*")


# ---------------------------------------------------------------- Grafana


def test_every_dashboard_query_reads_metrics_the_service_exports():
    exported = exported_series()
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for title, expr in exprs:
        used = referenced_metrics(expr)
        # the one series Prometheus itself adds: whether a replica was scraped
        assert used or re.fullmatch(r'sum\(up\{job=~"\$job"\}\)', expr), f"panel {title!r}: {expr} reads no modelmedic metric"
        unknown = used - exported.keys()
        assert not unknown, f"panel {title!r} reads {sorted(unknown)}, not in service/metrics.py"


def test_the_dashboard_covers_every_metric_and_the_asked_for_views():
    exprs = dashboard_exprs()
    used = {exported_series()[name] for _, expr in exprs for name in referenced_metrics(expr)}
    # the metrics the dashboard was built for; a metric added later needs no panel to pass
    charted = {"EVENTS", "DEAD_LETTERS", "WINDOWS", "SERIES", "ANOMALIES", "CONSUMER_LAG", "BATCH_SECONDS",
               "INCIDENTS", "OPEN_INCIDENTS", "ALERTS", "ALERT_SECONDS", "SNAPSHOTS", "PLAYBOOK_RUNS",
               "PLAYBOOK_SECONDS", "PLAYBOOK_LOAD_ERRORS"}
    assert charted <= used, f"metrics with no panel: {sorted(charted - used)}"
    by_title = {title: expr for title, expr in exprs}
    wanted = {
        "Events/s by outcome": "by (outcome)",
        "Dead letters/s by reason": "by (reason)",
        "Consumer lag by replica": "modelmedic_consumer_lag_records",
        "Batch processing time": "histogram_quantile(0.99",
        "Anomalies by class and state": "by (anomaly_class, state)",
        "Incident transitions": "by (anomaly_class, transition)",
        "Alert deliveries by sink and result": "by (sink, result)",
        "Alert delivery latency": "modelmedic_alert_delivery_seconds_bucket",
        "Playbook runs by status": "by (playbook, status)",
        "Playbook duration": "modelmedic_playbook_duration_seconds_bucket",
        "Open incidents by model": "max by (model, anomaly_class) (modelmedic_model_open_incidents",
        "Open incidents by model and class": "max by (model, anomaly_class) (modelmedic_model_open_incidents",
        # plugins load at start only: the counter is a state, counted per entry point, never summed over replicas
        "Playbook plugins skipped": "count(count by (entry_point) (modelmedic_playbook_load_errors_total",
    }
    titles = {title for title, _ in exprs}
    for title, fragment in wanted.items():
        assert title in titles, f"no panel {title!r}"
        assert any(fragment in expr for t, expr in exprs if t == title), (title, by_title[title])
    assert any("modelmedic_open_incidents" in expr for _, expr in exprs)


def test_the_dashboard_is_well_formed_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "job"}
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        for target in panel.get("targets", []):
            assert '{job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by the job variable"
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """Prometheus' own parser (promtool check rules) reads each query as a recording rule."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": as_promql(expr)} for i, (_, expr) in enumerate(dashboard_exprs())
    ]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- Prometheus


def test_promtool_accepts_the_scrape_config_and_its_rule_file():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_only_then():
    """promtool's rule unit tests (deploy/prometheus/alerts_test.yml): series in, alerts out."""
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_asked_for_alerts_exist_and_read_exported_metrics():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
    alerts = {rule["alert"]: rule for rule in rules}
    assert {"ModelmedicDown", "ModelmedicConsumerLagGrowing", "ModelmedicDeadLettersSpiking",
            "ModelmedicAlertDeliveryFailing"} <= alerts.keys()
    exported = exported_series()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert not referenced_metrics(rule["expr"]) - exported.keys(), f"{name} reads an unknown metric"
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    assert tested == alerts.keys(), f"alerts without a promtool test: {sorted(alerts.keys() - tested)}"


# ---------------------------------------------------------------- RBAC


def api_calls(path: Path) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every ``<api>.<verb>_namespaced_<resource>(...)`` call in ``path``."""
    calls = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", None)
        match = re.fullmatch(r"([a-z]+)_namespaced_(\w+)", node.func.attr)
        if name in API_GROUPS and match:
            calls.add((API_GROUPS[name], RESOURCES[match[2]], VERBS[match[1]]))
    return calls


def role_grants() -> set[tuple[str, str, str]]:
    role = next(doc for doc in yaml.safe_load_all(ROLE.read_text()) if doc and doc["kind"] == "Role")
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_role_grants_exactly_the_calls_kubeclient_makes():
    """Every KubeClient method needs its rule (playbooks, built-in or plugin, act only through it); nothing more
    is granted: the pods, watch, update and HPA list rules nobody called are gone."""
    used = api_calls(SERVICE / "kube.py")
    assert ("apps", "deployments", "patch") in used and ("", "events", "create") in used  # the scan sees calls
    assert role_grants() == used, (
        f"unused grants: {sorted(role_grants() - used)}; calls without a grant: {sorted(used - role_grants())}")


def test_playbooks_and_the_release_tools_reach_kubernetes_only_through_kubeclient():
    """The Role is derived from kube.py alone, so nothing else may call the API as modelmedic."""
    for module in [*(ROOT / "remediations").glob("*.py"), *SERVICE.rglob("*.py")]:
        if module == SERVICE / "kube.py" or module.is_relative_to(SERVICE / "testing"):
            continue
        extra = api_calls(module) - role_grants()
        if module == SERVICE / "release" / "deployment.py":
            # run_shadow / stop_shadow create and delete <model>-shadow with a release operator's
            # credentials (docs/releases.md): deliberately not modelmedic's.
            assert extra == {("apps", "deployments", "create"), ("apps", "deployments", "delete")}
        else:
            assert not extra, f"{module.relative_to(ROOT)} calls {sorted(extra)} which the Role does not grant"
