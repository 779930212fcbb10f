"""docker/ monitoring files: promtool accepts them, alerts fire as intended, and every query of
the dashboard and the alerts names a metric the app exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.monitoring import metrics
from app.settings import PROJECT_ROOT, Settings

DOCKER = PROJECT_ROOT / "docker"
PROMETHEUS = DOCKER / "prometheus"
GRAFANA = DOCKER / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "healthpredict.json"
INSTALL_HINT = "install it with `make install-system` (apt-get install -y prometheus)"
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool not found: {INSTALL_HINT}")
    return path


def run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts_the_files(promtool: str, args: tuple[str, ...]) -> None:
    result = run(promtool, *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: a rule with invalid PromQL is refused."""
    bad = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum(rate(foo[5m]"}]}]}
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    assert run(promtool, "check", "rules", "bad.yml", cwd=tmp_path).returncode != 0


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Sample names the running app's `/metrics` can expose (every registered family)."""
    metrics.reset_for_tests()
    client = TestClient(create_app(Settings(environment="test")))
    response = client.get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (labels, ranges, strings and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"(?<![A-Za-z0-9_:])\d[\d.]*(?:[eE][+-]?\d+)?", " ", text)  # numbers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name, rest = match.group(), text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_metric_name_parser(exported: set[str]) -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_b_bucket{x="y{z}"}[5m]))) / up > 1e-9'
    assert metric_names(expr) == {"a_b_bucket", "up"}
    assert metric_names("rate(healthpredict_typo_total[5m])") - exported  # would be caught


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_query_names_an_exported_metric(source: str, exported: set[str]) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        unknown = names - exported - {"up"}
        assert not unknown, f"{expr!r} uses metrics the app does not export: {unknown}"


def test_dashboard_covers_what_the_design_asks(exported: set[str]) -> None:
    used = {n for e in dashboard_exprs() for n in metric_names(e)}
    for name in (
        "healthpredict_http_requests_total",
        "healthpredict_http_request_duration_seconds_bucket",
        "healthpredict_predictions_total",
        "healthpredict_prediction_quality_total",
        "healthpredict_model_info",
        "healthpredict_drift_share",
        "healthpredict_audit_queue_depth",
    ):
        assert name in used, name
    assert any("histogram_quantile" in e for e in dashboard_exprs())


def test_dashboard_uses_the_provisioned_datasource_and_a_valid_grid() -> None:
    dash = json.loads(DASHBOARD.read_text())
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = sources["datasources"][0]["uid"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"])


def test_compose_mounts_match_the_provisioning() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/healthpredict.yml").read_text())
    assert (
        grafana_mounts["./docker/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    )
    assert "./docker/grafana/provisioning" in grafana_mounts
    prom_mounts = [v.split(":")[0] for v in services["prometheus"]["volumes"]]
    for mount in prom_mounts:
        assert (PROJECT_ROOT / mount).is_file(), mount
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["api:8000"]
    assert "api" in services
