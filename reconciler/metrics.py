"""Prometheus metrics: one :class:`Metrics` per process, on its own registry.

Two kinds of series (the catalogue is ``docs/metrics.md``):

* **observed** — counters and histograms the pipeline feeds as it works
  (:meth:`Metrics.observe_delivery`, :meth:`Metrics.observe_run`, …). They live in this
  process and start from zero when it restarts, as Prometheus counters do.
* **read at scrape time** from the database — the outbox backlog
  (:class:`~reconciler.bus.relay.OutboxCollector`), notifications by status
  (:class:`~reconciler.notify.NotificationCollector`), and :class:`StateCollector`: the last
  delivery per connector, findings opened and resolved per rule, the last successful run.
  These survive restarts and every replica reports the same values, so dashboards and alerts
  aggregate them with ``max``, never ``sum``.

Nothing here touches a global registry or starts anything: :func:`create_metrics` builds it
all and the caller decides where ``/metrics`` is served (``reconciler.observability``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from reconciler.bus.relay import OutboxCollector
from reconciler.health import SCHEDULER_ROLES, SchedulerState, scheduler_status
from reconciler.notify import NotificationCollector
from reconciler.storage import cursors, deliveries, finding_history, findings, runs

if TYPE_CHECKING:
    from reconciler.ingest import DeliveryStats
    from reconciler.pipeline import RunReport

log = logging.getLogger(__name__)

# A run is seconds on the example inbox and tens of minutes on a national payroll.
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
STAGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
ROW_OUTCOMES = ("new", "duplicate", "superseded")
SCHEDULER_JOBS = ("pull", "reconcile", "relay", "notify")
JOB_OUTCOMES = ("succeeded", "failed", "skipped", "fenced")
LEADERSHIP_CHANGES = ("acquired", "lost", "released")


def stage_name(progress_name: str) -> tuple[str, str | None]:
    """``Progress`` names a pull stage per connector (``pull contracts``); the histogram has
    one ``pull`` stage and keeps the connector apart, so the label set stays small."""
    if progress_name.startswith("pull "):
        return "pull", progress_name.removeprefix("pull ")
    return progress_name.replace(" ", "_"), None


def _timestamp(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Metrics:
    """The process's metrics. Build it with :func:`create_metrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self.last_reconcile_at: float | None = None
        self.rows_pulled = Counter(
            "reconciler_rows_pulled", "Rows read from deliveries, per connector",
            ["connector", "feed"], registry=registry)
        self.rows_quarantined = Counter(
            "reconciler_rows_quarantined",
            "Rows rejected by the contract and quarantined, per connector",
            ["connector", "feed"], registry=registry)
        self.rows_staged = Counter(
            "reconciler_rows_staged", "Valid rows, per connector and outcome "
            "(new, duplicate, superseded)", ["connector", "outcome"], registry=registry)
        self.deliveries = Counter(
            "reconciler_deliveries", "Deliveries (files) staged, per connector",
            ["connector"], registry=registry)
        self.connector_errors = Counter(
            "reconciler_connector_errors", "Pulls a connector stopped on, per connector and "
            "kind (fatal, retriable, skippable)", ["connector", "kind"], registry=registry)
        self.runs = Counter(
            "reconciler_runs", "Runs finished, by status (succeeded, failed)",
            ["status"], registry=registry)
        self.run_duration = Histogram(
            "reconciler_run_duration_seconds", "Duration of a whole run (pull to publish)",
            buckets=RUN_BUCKETS, registry=registry)
        self.stage_duration = Histogram(
            "reconciler_stage_duration_seconds",
            "Duration of one stage of a run (pull is all connectors together)",
            ["stage"], buckets=STAGE_BUCKETS, registry=registry)
        self.pull_duration = Histogram(
            "reconciler_connector_pull_duration_seconds",
            "Duration of one connector's pull within a run", ["connector"],
            buckets=STAGE_BUCKETS, registry=registry)
        self.auto_registrations = Counter(
            "reconciler_auto_registrations",
            "Engagements the reconciler registered on the employer's behalf",
            registry=registry)
        self.identity_records = Counter(
            "reconciler_identity_records_resolved",
            "Records resolved to persons (every record, every reconcile)", registry=registry)
        self.identity_seconds = Counter(
            "reconciler_identity_resolve_seconds",
            "Seconds spent resolving identities; records_resolved / this = throughput",
            registry=registry)
        self.identity_throughput = Gauge(
            "reconciler_identity_throughput_records_per_second",
            "Records resolved per second in the last reconcile", registry=registry)
        self.identity_persons = Gauge(
            "reconciler_identity_persons", "Persons after the last reconcile",
            registry=registry)
        self.scheduler_jobs = Counter(
            "reconciler_scheduler_jobs", "Scheduled job runs in this process, per job (pull, "
            "reconcile, relay, notify) and outcome (succeeded, failed, skipped: not the "
            "leader, fenced: the lease was lost before the commit)", ["job", "outcome"],
            registry=registry)
        self.leadership_changes = Counter(
            "reconciler_scheduler_leadership_changes", "This process became the scheduler "
            "leader (acquired), stepped down (lost) or released the lease at shutdown",
            ["change"], registry=registry)
        # every series exists from the start, at 0, so rate() and alerts see the first one
        for job in SCHEDULER_JOBS:
            for outcome in JOB_OUTCOMES:
                self.scheduler_jobs.labels(job, outcome)
        for change in LEADERSHIP_CHANGES:
            self.leadership_changes.labels(change)

    # -- what the pipeline calls ----------------------------------------------------------

    def observe_delivery(self, stats: DeliveryStats) -> None:
        """One staged delivery (``pull_connector`` returns one ``DeliveryStats`` each, and a
        last one with ``error`` set when the connector stopped)."""
        if stats.error:
            self.connector_errors.labels(stats.connector, stats.error_kind or "fatal").inc()
            return
        self.deliveries.labels(stats.connector).inc()
        self.rows_pulled.labels(stats.connector, stats.feed).inc(stats.rows_total)
        self.rows_quarantined.labels(stats.connector, stats.feed).inc(stats.rows_quarantined)
        for outcome in ROW_OUTCOMES:
            self.rows_staged.labels(stats.connector, outcome).inc(getattr(stats, f"rows_{outcome}"))

    def observe_pull(self, connector: str, seconds: float) -> None:
        """One connector's pull, however many deliveries it found."""
        self.pull_duration.labels(connector).observe(seconds)

    def observe_reconcile(self, report: RunReport, resolve_seconds: float | None = None
                          ) -> None:
        """A reconcile that committed: auto-registrations, identity throughput (over
        ``resolve_seconds``, default the report's ``resolve identities`` timing). Findings
        per rule are read from the database (:class:`StateCollector`)."""
        self.auto_registrations.inc(int(report.findings.get("auto_registered", 0)))
        records = int(report.identity.get("records", 0))
        self.identity_records.inc(records)
        if "persons" in report.identity:
            self.identity_persons.set(report.identity["persons"])
        took = (resolve_seconds if resolve_seconds is not None
                else report.timings.get("resolve identities"))
        if took is not None:
            self.identity_seconds.inc(took)
            if took > 0:
                self.identity_throughput.set(records / took)
        with self._lock:
            self.last_reconcile_at = time.time()

    def observe_run(self, report: RunReport, seconds: float | None = None) -> None:
        """A successful run: everything :meth:`observe_reconcile` records, plus the run and
        stage durations from ``report.timings`` (``seconds`` defaults to their sum). The
        daemon's reconcile pass counts as a run too (its pulls are separate jobs: it has no
        ``pull`` stage; those report through :meth:`observe_pull`)."""
        self.observe_reconcile(report)
        stages: dict[str, float] = {}
        for name, took in report.timings.items():
            stage, connector = stage_name(name)
            stages[stage] = stages.get(stage, 0.0) + took
            if connector is not None:
                self.observe_pull(connector, took)
        for stage, took in stages.items():
            self.stage_duration.labels(stage).observe(took)
        self.run_duration.observe(seconds if seconds is not None
                                  else sum(report.timings.values()))
        self.runs.labels("succeeded").inc()

    def observe_run_failed(self) -> None:
        self.runs.labels("failed").inc()

    def observe_job(self, job: str, outcome: str) -> None:
        """One scheduled job run: ``job`` one of :data:`SCHEDULER_JOBS`, ``outcome`` one of
        :data:`JOB_OUTCOMES`."""
        self.scheduler_jobs.labels(job, outcome).inc()

    def observe_leadership(self, change: str) -> None:
        """``acquired``, ``lost`` or ``released`` (see :mod:`reconciler.lease`)."""
        self.leadership_changes.labels(change).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every series (what ``/metrics`` serves)."""
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Series read from the database at scrape time, so they survive restarts:

    * ``reconciler_connector_last_success_timestamp_seconds{connector}`` — the last delivery
      a connector staged (or its cursor moved); 0 for a configured connector that never
      delivered;
    * ``reconciler_findings_opened_total{rule}`` / ``reconciler_findings_resolved_total{rule}``
      — from the findings' history (a reopen counts as opened again);
    * ``reconciler_findings{rule,status}`` — findings now, by rule and status;
    * ``reconciler_last_reconcile_success_timestamp_seconds`` — the later of the last
      succeeded ``runs`` row and the last reconcile this process observed; 0 if none.
    """

    def __init__(self, engine: Engine, metrics: Metrics, connectors: Iterable[str] = ()
                 ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.connectors = tuple(connectors)

    def collect(self) -> Iterator[Metric]:
        with self.engine.connect() as conn:
            last = _last_success_by_connector(conn)
            opened, resolved, current = _findings_by_rule(conn)
            last_run = conn.execute(select(func.max(runs.c.finished_at))
                                    .where(runs.c.status == "succeeded")).scalar_one()
        family = GaugeMetricFamily(
            "reconciler_connector_last_success_timestamp_seconds",
            "Unix time of the last delivery a connector staged (0 = never)",
            labels=["connector"])
        for connector in sorted(set(self.connectors) | set(last)):
            family.add_metric([connector], _timestamp(last.get(connector)))
        yield family
        for name, doc, counts in (
                ("reconciler_findings_opened", "Findings opened (and reopened), per rule",
                 opened),
                ("reconciler_findings_resolved", "Findings resolved, per rule", resolved)):
            counter = CounterMetricFamily(name, doc, labels=["rule"])
            for rule, count in sorted(counts.items()):
                counter.add_metric([rule], count)
            yield counter
        gauge = GaugeMetricFamily("reconciler_findings", "Findings now, by rule and status",
                                  labels=["rule", "status"])
        for (rule, status), count in sorted(current.items()):
            gauge.add_metric([rule, status], count)
        yield gauge
        with self.metrics._lock:
            seen = self.metrics.last_reconcile_at
        yield GaugeMetricFamily(
            "reconciler_last_reconcile_success_timestamp_seconds",
            "Unix time of the last successful reconcile (0 = never)",
            value=max(_timestamp(last_run), seen or 0.0))


class SchedulerCollector(Collector):
    """Only in a process that runs a scheduler:

    * ``reconciler_scheduler_role{role}`` — 1 for this process's role (leader, standby,
      none), 0 for the others; across replicas ``sum(…{role="leader"})`` must be 1;
    * ``reconciler_scheduler_lease_epoch`` — the fencing epoch this process leads under
      (``reconciler.lease``), 0 when it does not lead; it grows by one on every takeover.
    """

    def __init__(self, scheduler_state: SchedulerState) -> None:
        self.scheduler_state = scheduler_state

    def collect(self) -> Iterator[Metric]:
        status = scheduler_status(self.scheduler_state())
        assert status is not None
        roles = GaugeMetricFamily(
            "reconciler_scheduler_role",
            "1 for this process's scheduler role (leader, standby, none)", labels=["role"])
        for candidate in SCHEDULER_ROLES:
            roles.add_metric([candidate], 1.0 if candidate == status.role else 0.0)
        yield roles
        yield GaugeMetricFamily(
            "reconciler_scheduler_lease_epoch",
            "The scheduler lease epoch this process leads under (0 = not the leader)",
            value=float(status.epoch or 0) if status.role == "leader" else 0.0)


class DatabaseCollectors(Collector):
    """Runs the collectors that read the database; if the database fails, their series are
    left out of this scrape (the process's own series are still served) and
    ``reconciler_database_up`` says 0 — a scrape never fails because the database did."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        up = 1.0
        for collector in self.collectors:
            try:
                families = list(collector.collect())
            except SQLAlchemyError:
                log.warning("a metrics collector could not read the database", exc_info=True)
                up = 0.0
                continue
            yield from families
        yield GaugeMetricFamily("reconciler_database_up",
                                "1 if the last scrape could read the database, else 0",
                                value=up)


def _last_success_by_connector(conn: Connection) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for table, column in ((deliveries, deliveries.c.received_at),
                          (cursors, cursors.c.updated_at)):
        for connector, moment in conn.execute(
                select(table.c.connector, func.max(column)).group_by(table.c.connector)):
            if moment is not None and (connector not in out or moment > out[connector]):
                out[str(connector)] = moment
    return out


def _findings_by_rule(conn: Connection) -> tuple[dict[str, int], dict[str, int],
                                                 dict[tuple[str, str], int]]:
    joined = finding_history.join(findings,
                                  finding_history.c.finding_id == findings.c.finding_id)
    opened: dict[str, int] = {}
    resolved: dict[str, int] = {}
    for target, condition in (
            (opened, and_(finding_history.c.to_status == "open",
                          or_(finding_history.c.from_status.is_(None),
                              finding_history.c.from_status.in_(("resolved", "dismissed"))))),
            (resolved, finding_history.c.to_status == "resolved")):
        for rule, count in conn.execute(select(findings.c.rule, func.count())
                                        .select_from(joined).where(condition)
                                        .group_by(findings.c.rule)):
            target[str(rule)] = int(count)
    current = {(str(rule), str(status)): int(count) for rule, status, count in conn.execute(
        select(findings.c.rule, findings.c.status, func.count())
        .group_by(findings.c.rule, findings.c.status))}
    return opened, resolved, current


def create_metrics(engine: Engine, connectors: Iterable[str] = (),
                   scheduler_state: SchedulerState | None = None) -> Metrics:
    """The process's metrics on a fresh registry, with the database-backed collectors
    (outbox, notifications, state) registered on it. ``connectors`` are the configured
    connector names (so one that never delivered shows as 0, i.e. stale);
    ``scheduler_state`` is the callable ``reconciler.health`` describes, or None in a
    process without a scheduler (the web desk alone)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    registry.register(DatabaseCollectors([
        OutboxCollector(engine), NotificationCollector(engine),
        StateCollector(engine, metrics, connectors)]))
    if scheduler_state is not None:
        registry.register(SchedulerCollector(scheduler_state))
    return metrics
