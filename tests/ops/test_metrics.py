"""Metrics after a real ``run --once`` (``Reconciler.run_once``, what the command calls) over
the contract's example inbox, on both databases.

The example inbox has one file per connector: 3 contributors, 3 engagements, 2 employers,
4 contracts, 3 permits, 4 payroll lines — 19 rows, none malformed. The run opens two
findings (Maria's missing_registration, auto-registered and so resolved at once; Imran's
wage_underdeclared, open) and writes three events (two finding.opened, one
registration.auto_registered), which stay pending with no Kafka configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from connectors import build_connector
from reconciler.config import load_settings
from reconciler.health import SchedulerStatus
from reconciler.ingest import DeliveryStats, pull_connector
from reconciler.metrics import Metrics, create_metrics, stage_name
from reconciler.migrate import upgrade
from reconciler.observability import create_ops_app
from reconciler.pipeline import Progress, Reconciler, RunReport

EXAMPLE_ROWS = {"registry-contributors": 3, "registry-engagements": 3, "employers": 2,
                "contracts": 4, "permits": 3, "payroll": 4}


@dataclass
class ExampleRun:
    app: Reconciler
    pulled: list[DeliveryStats]
    report: RunReport

    def metrics(self, scheduler_role: str | None = "leader") -> Metrics:
        """A fresh process's metrics fed with this run, as the wired pipeline would."""
        connectors = [c.name for c in self.app.settings.connectors]
        state = (lambda: scheduler_role) if scheduler_role else None
        metrics = create_metrics(self.app.engine, connectors, state)  # type: ignore[arg-type]
        for stats in self.pulled:
            metrics.observe_delivery(stats)
        metrics.observe_run(self.report)
        return metrics


def run_example(app: Reconciler | None = None) -> ExampleRun:
    """``run --once`` in process, keeping the per-delivery stats ``pull`` returns."""
    app = app or Reconciler.from_settings(load_settings(None), migrate=True)
    pulled: list[DeliveryStats] = []
    real_pull = app.pull

    def pull(progress: Progress | None = None) -> list[DeliveryStats]:
        out = real_pull(progress)
        pulled.extend(out)
        return out

    app.pull = pull  # type: ignore[method-assign]
    report = app.run_once(Progress(False))
    app.pull = real_pull  # type: ignore[method-assign]
    return ExampleRun(app, pulled, report)


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by (sample name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def by_label(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
             label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (sample, labels), value in samples.items()
            if sample == name}


def test_a_real_run_is_counted_per_connector_rule_and_stage(env: dict[str, str]) -> None:
    run = run_example()
    samples = scrape(run.metrics())
    assert by_label(samples, "reconciler_rows_pulled_total", "connector") == EXAMPLE_ROWS
    assert set(by_label(samples, "reconciler_rows_quarantined_total", "connector").values()) \
        == {0.0}
    assert by_label(samples, "reconciler_deliveries_total", "connector") == \
        dict.fromkeys(EXAMPLE_ROWS, 1.0)
    # every row is new on a fresh database
    new = {dict(k)["connector"]: v for (n, k), v in samples.items()
           if n == "reconciler_rows_staged_total" and dict(k)["outcome"] == "new"}
    assert new == EXAMPLE_ROWS
    # the pipeline's own per-feed summary agrees with the per-connector counters
    assert sum(f["rows"] for f in run.report.ingest.values()) == sum(EXAMPLE_ROWS.values())

    assert by_label(samples, "reconciler_findings_opened_total", "rule") == {
        "missing_registration": 1, "wage_underdeclared": 1}
    assert by_label(samples, "reconciler_findings_resolved_total", "rule") == {
        "missing_registration": 1}  # auto-registered in the same run
    assert samples[("reconciler_findings", (("rule", "wage_underdeclared"),
                                            ("status", "open")))] == 1
    assert samples[("reconciler_auto_registrations_total", ())] == 1
    assert samples[("reconciler_outbox_pending", ())] == 3
    assert samples[("reconciler_outbox_oldest_pending_age_seconds", ())] > 0
    assert samples[("reconciler_notifications", (("channel", "email"), ("status", "dead")))] \
        == 0
    assert samples[("reconciler_identity_records_resolved_total", ())] == \
        run.report.identity["records"] > 0
    assert samples[("reconciler_identity_persons", ())] == run.report.identity["persons"]

    assert samples[("reconciler_runs_total", (("status", "succeeded"),))] == 1
    assert samples[("reconciler_run_duration_seconds_count", ())] == 1
    stages = by_label(samples, "reconciler_stage_duration_seconds_count", "stage")
    assert stages == dict.fromkeys(["pull", "load", "resolve_identities", "check_signs", "act",
                                    "notify_employers", "publish_events"], 1.0)
    assert set(by_label(samples, "reconciler_connector_pull_duration_seconds_count",
                        "connector")) == set(EXAMPLE_ROWS)

    last = by_label(samples, "reconciler_connector_last_success_timestamp_seconds",
                    "connector")
    assert set(last) == set(EXAMPLE_ROWS) and min(last.values()) > 1.7e9
    assert samples[("reconciler_last_reconcile_success_timestamp_seconds", ())] > 1.7e9
    assert samples[("reconciler_database_up", ())] == 1
    assert by_label(samples, "reconciler_scheduler_role", "role") == {
        "leader": 1, "standby": 0, "none": 0}


def test_database_backed_series_survive_a_restart_and_a_rerun(
        env: dict[str, str]) -> None:
    run = run_example()
    before = scrape(run.metrics())
    run_example(run.app)  # nothing new in the inbox: nothing delivered, nothing decided
    after = scrape(create_metrics(run.app.engine))  # a restarted process, nothing observed
    for name in ("reconciler_connector_last_success_timestamp_seconds",
                 "reconciler_findings_opened_total", "reconciler_findings_resolved_total"):
        assert by_label(after, name, "connector" if "connector" in name else "rule") == \
            by_label(before, name, "connector" if "connector" in name else "rule"), name
    assert after[("reconciler_last_reconcile_success_timestamp_seconds", ())] >= \
        before[("reconciler_last_reconcile_success_timestamp_seconds", ())]
    assert ("reconciler_rows_pulled_total", (("connector", "contracts"),
                                             ("feed", "contracts"))) not in after


def test_quarantined_rows_are_counted_per_connector(
        env: dict[str, str], example_inbox: Path) -> None:
    # two broken contracts (an impossible birth date; no identifier) beside a good one
    (example_inbox / "contracts" / "contracts-2026-11.csv").write_text(
        "contract_id,employer_id,residence_id,nationality,name_en,date_of_birth,start_date,"
        "status,basic_wage,updated_at\n"
        "C1,7000000017,2398145710,IND,Suresh Kumar Nair,1987-02-30,2023-05-01,ACTIVE,5000,"
        "2026-11-01T00:00:00Z\n"
        "C2,7000000017,,IND,Nobody,1987-01-01,2023-05-01,ACTIVE,5000,2026-11-01T00:00:00Z\n"
        "C4,7000000017,2398145710,IND,Suresh Kumar Nair,1987-03-14,2023-05-01,ACTIVE,5000,"
        "2026-11-01T00:00:00Z\n", encoding="utf-8")
    samples = scrape(run_example().metrics())
    quarantined = by_label(samples, "reconciler_rows_quarantined_total", "connector")
    assert quarantined["contracts"] == 2
    assert sum(quarantined.values()) == 2
    assert by_label(samples, "reconciler_rows_pulled_total", "connector")["contracts"] == 4 + 3


def test_a_configured_connector_that_never_delivered_reads_zero(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    upgrade(engine)
    samples = scrape(create_metrics(engine, ["contracts"], lambda: "standby"))
    assert by_label(samples, "reconciler_connector_last_success_timestamp_seconds",
                    "connector") == {"contracts": 0}
    assert samples[("reconciler_last_reconcile_success_timestamp_seconds", ())] == 0
    assert by_label(samples, "reconciler_scheduler_role", "role")["standby"] == 1
    engine.dispose()


def test_a_scrape_survives_an_unreachable_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    metrics = create_metrics(engine, ["contracts"])
    metrics.observe_run_failed()
    response = TestClient(create_ops_app(engine, metrics)).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert "reconciler_runs" in families  # the process's own series are still there
    assert "reconciler_outbox_pending" not in families
    assert "reconciler_database_up 0.0" in response.text


def test_no_global_registry_and_no_clash_between_instances(tmp_path: Path) -> None:
    before = set(REGISTRY._names_to_collectors)
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    first, second = create_metrics(engine), create_metrics(engine)
    first.auto_registrations.inc()
    assert second.auto_registrations._value.get() == 0
    assert set(REGISTRY._names_to_collectors) == before
    assert not any(n.startswith("reconciler_") for n in REGISTRY._names_to_collectors)


@pytest.mark.parametrize(("progress_name", "expected"), [
    ("pull registry-contributors", ("pull", "registry-contributors")),
    ("resolve identities", ("resolve_identities", None)),
    ("act", ("act", None)),
])
def test_stage_names(progress_name: str, expected: tuple[str, str | None]) -> None:
    assert stage_name(progress_name) == expected


def test_a_daemon_pass_is_observed_as_the_daemon_will_be_wired(env: dict[str, str]) -> None:
    # the daemon pulls each connector as its own job, then reconciles without a pull stage
    app = Reconciler.from_settings(load_settings(None), migrate=True)
    metrics = create_metrics(app.engine, [c.name for c in app.settings.connectors])
    for declared in app.settings.connectors:
        for stats in pull_connector(app.engine.begin,
                                    build_connector(declared, app.settings.inbox),
                                    app.settings.identity.profile):
            metrics.observe_delivery(stats)
        metrics.observe_pull(declared.name, 0.01)
    progress = Progress(False)
    report = app.reconcile(app.settings.today(), progress)
    report.timings = progress.timings
    metrics.observe_run(report)
    samples = scrape(metrics)
    assert by_label(samples, "reconciler_rows_pulled_total", "connector") == EXAMPLE_ROWS
    assert set(by_label(samples, "reconciler_stage_duration_seconds_count", "stage")) == {
        "load", "resolve_identities", "check_signs", "act"}
    assert set(by_label(samples, "reconciler_connector_pull_duration_seconds_count",
                        "connector")) == set(EXAMPLE_ROWS)
    assert samples[("reconciler_auto_registrations_total", ())] == 1
    assert samples[("reconciler_last_reconcile_success_timestamp_seconds", ())] > 1.7e9


@pytest.mark.parametrize(("status", "role", "epoch"), [
    (SchedulerStatus("leader", None, "h:1:a", 4, "h:1:a"), "leader", 4.0),
    (SchedulerStatus("standby", None, "h:1:a", None, "h:2:b"), "standby", 0.0),
    (SchedulerStatus("none", "lease lost: refused", "h:1:a", None, None), "none", 0.0),
    ("leader", "leader", 0.0),  # a plain role (no lease behind it): epoch 0
])
def test_the_scheduler_series_follow_the_lease(tmp_path: Path, status: object, role: str,
                                               epoch: float) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/r.db")
    upgrade(engine)
    metrics = create_metrics(engine, [], lambda: status)  # type: ignore[arg-type,return-value]
    samples = scrape(metrics)
    assert by_label(samples, "reconciler_scheduler_role", "role") == {
        r: float(r == role) for r in ("leader", "standby", "none")}
    assert samples[("reconciler_scheduler_lease_epoch", ())] == epoch
    # every job and leadership series exists at 0 before anything happened
    jobs = {(dict(k)["job"], dict(k)["outcome"]): v for (n, k), v in samples.items()
            if n == "reconciler_scheduler_jobs_total"}
    assert len(jobs) == 16 and set(jobs.values()) == {0.0}
    metrics.observe_job("pull", "skipped")
    metrics.observe_leadership("acquired")
    samples = scrape(metrics)
    assert samples[("reconciler_scheduler_jobs_total", (("job", "pull"),
                                                        ("outcome", "skipped")))] == 1
    assert by_label(samples, "reconciler_scheduler_leadership_changes_total", "change") == {
        "acquired": 1.0, "lost": 0.0, "released": 0.0}
    engine.dispose()
