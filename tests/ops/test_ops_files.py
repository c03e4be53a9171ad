"""The deployment files parse, hang together, and name only metrics that exist.

Neither docker nor promtool is installed here, so this is what can be checked without them:
the YAML and JSON parse; the compose stack has its services and mounts folders that exist;
Prometheus loads the alert file; Grafana's provisioning points at the dashboard folder; and
every ``reconciler_*`` metric named in an alert expression or a dashboard query is a sample
of a real ``/metrics`` after a real run over the contract's example inbox. PromQL is not
parsed: metric names are picked out with a regular expression (``reconciler_[a-z0-9_]+`` —
our metrics share that prefix; Prometheus's own ``up`` is left aside on purpose).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from reconciler.observability import create_ops_app
from tests.ops.test_metrics import run_example

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
METRIC = re.compile(r"\breconciler_[a-z0-9_]+")
REQUIRED_ALERTS = {"ReconcilerConnectorStale", "ReconcilerOutboxBacklogGrowing",
                   "ReconcilerQuarantineSpike", "ReconcilerNoReconcileIn24h",
                   "ReconcilerSchedulerWithoutLeader", "ReconcilerSchedulerLeaderFlapping",
                   "ReconcilerDatabaseUnreachable"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(OPS / "prometheus" / "alerts.yml")["groups"]
            for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (OPS / "grafana" / "dashboards" / "reconciler.json").read_text(encoding="utf-8"))
    return data


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_compose_has_the_stack_and_mounts_what_exists() -> None:
    compose = load_yaml(OPS / "compose.yaml")
    services = compose["services"]
    assert {"postgres", "kafka", "prometheus", "grafana", "mailpit", "reconciler"} <= \
        set(services)
    assert "zookeeper" not in services
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka_env
    daemon_env = services["reconciler"]["environment"]
    assert daemon_env["RECONCILER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert daemon_env["RECONCILER_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert daemon_env["RECONCILER_SMTP_URL"] == "smtp://mailpit:1025"
    # secrets come from ops/.env, never from the file itself
    for value in (daemon_env["RECONCILER_WEBHOOK_SECRET"],
                  services["postgres"]["environment"]["POSTGRES_PASSWORD"],
                  services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]):
        assert value.startswith("${") and ":?" in value
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert (OPS / services["migrate"]["build"]["context"] /
            services["migrate"]["build"]["dockerfile"]).is_file()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./") and source not in ("./backups", "./inbox"):
                assert (OPS / source).exists(), volume


def test_prometheus_loads_the_alerts_and_scrapes_the_daemon() -> None:
    config = load_yaml(OPS / "prometheus" / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]  # ./prometheus mounted
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "reconciler")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["reconciler:8080"]


def test_alert_rules_are_complete_and_point_at_the_runbook() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    headings = {anchor(line.lstrip("#")) for line in
                (OPS / "runbook.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("## ")}
    for rule in rules:
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        if "runbook" in rule["annotations"]:
            target = rule["annotations"]["runbook"].split("#", 1)[1]
            assert target in headings, (rule["alert"], target)


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    compose = load_yaml(OPS / "compose.yaml")
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    sources = load_yaml(OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = sources["datasources"][0]["uid"]
    providers = load_yaml(OPS / "grafana" / "provisioning" / "dashboards" / "reconciler.yml")
    assert providers["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    board = dashboard()
    assert board["uid"] == "reconciler"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]


@pytest.fixture
def exposition(example_inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real ``/metrics`` after ``run --once`` over the example inbox (on SQLite: which
    metrics exist does not depend on the database; test_metrics runs both)."""
    for key, value in {"RECONCILER_DATABASE_URL": f"sqlite:///{tmp_path}/reconciler.db",
                       "RECONCILER_INBOX": str(example_inbox),
                       "RECONCILER_AS_OF": "2026-11-01"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RECONCILER_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("RECONCILER_CONFIG", raising=False)
    run = run_example()
    metrics = run.metrics()
    client = TestClient(create_ops_app(run.app.engine, metrics, lambda: "leader"))
    response = client.get("/metrics")
    assert response.status_code == 200
    text: str = response.text
    return text


def test_every_metric_in_alerts_and_dashboard_is_exposed(exposition: str) -> None:
    samples = {sample.name for family in text_string_to_metric_families(exposition)
               for sample in family.samples}
    named = {name for rule in alert_rules() for name in METRIC.findall(rule["expr"])}
    named |= {name for expr in dashboard_queries() for name in METRIC.findall(expr)}
    assert len(named) > 15
    assert sorted(named - samples) == []


def test_the_catalogue_documents_every_exposed_metric(exposition: str) -> None:
    # the parser names a counter's family without ``_total`` (the catalogue names what one
    # queries, ``…_total``) and gives prometheus-client's ``…_created`` samples their own
    exposed = {family.name for family in text_string_to_metric_families(exposition)
               if not family.name.endswith("_created")}
    catalogue = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = {name.removesuffix("_total") for name in
                  re.findall(r"^\| `(reconciler_[a-z0-9_]+)`", catalogue, re.MULTILINE)}
    assert sorted(exposed ^ documented) == []


def test_the_dockerfile_is_multi_stage_non_root_and_checks_health() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert any("/healthz" in line for line in lines)
