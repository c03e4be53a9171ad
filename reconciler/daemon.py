"""The daemon: APScheduler drives connector pulls on their schedules and reconciles after
fresh data and on its own schedule.

Choices made on purpose:

* one worker thread — a pull and a reconcile never run at the same time in one process,
  and SQLite never sees two writers of ours;
* ``coalesce`` — a job that missed several runs (the machine slept) runs once, not N times;
* ``misfire_grace_time`` of 10 minutes — a run late by less still happens; later, it waits
  for its next slot;
* the outbox relay runs every ``bus.interval_seconds`` while Kafka is configured and backs
  off (doubling, up to ``bus.max_backoff_seconds``) while the broker is unreachable;
* the notifier plans digests after each reconcile and delivers what is due every
  ``notify.interval_seconds`` (retries follow each notification's own backoff);
* SIGTERM / SIGINT finish the unit of work in progress, then exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connectors import build_connector
from reconciler.bus.relay import Backoff, OutboxRelay
from reconciler.config import Schedule
from reconciler.health import SchedulerRole
from reconciler.ingest import pull_connector
from reconciler.metrics import Metrics, create_metrics
from reconciler.observability import create_ops_app
from reconciler.pipeline import Progress, Reconciler
from reconciler.web.server import DeskServer
from reconciler.web.settings import load_web_settings

log = logging.getLogger(__name__)


def _trigger(schedule: Schedule) -> CronTrigger | IntervalTrigger:
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    assert schedule.interval_seconds is not None
    return IntervalTrigger(seconds=schedule.interval_seconds, timezone=UTC)


class Daemon:
    def __init__(self, app: Reconciler) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
            timezone=UTC,
        )
        self.relay: OutboxRelay | None = app.outbox_relay()
        bus = app.settings.bus
        self.relay_backoff = Backoff(bus.interval_seconds, bus.max_backoff_seconds)
        self.notifier = app.notifier()
        if app.metrics is None:
            app.metrics = create_metrics(app.engine, [c.name for c in app.settings.connectors],
                                         self.scheduler_state)
        self.metrics: Metrics = app.metrics
        self.web: DeskServer | None = None

    def scheduler_state(self) -> SchedulerRole:
        """For /readyz and the metrics: one scheduler per process until the database lease
        (operations issue) makes replicas leader or standby."""
        return "leader" if self.scheduler.running and not self.stopping.is_set() else "none"

    def pull(self, name: str) -> None:
        declared = next(c for c in self.app.settings.connectors if c.name == name)
        connector = build_connector(declared, self.app.settings.inbox)
        started = time.perf_counter()
        stats = pull_connector(self.app.engine.begin, connector,
                               self.app.settings.identity.profile)
        for delivery in stats:
            self.metrics.observe_delivery(delivery)
        self.metrics.observe_pull(name, time.perf_counter() - started)
        if any(s.rows_new for s in stats) and not self.stopping.is_set():
            # fresh data: reconcile soon, once, after the pulls already queued
            self.scheduler.add_job(self.reconcile, id="reconcile-after-pull",
                                   replace_existing=True, next_run_time=datetime.now(UTC))

    def reconcile(self) -> None:
        progress = Progress(False)
        report = self.app.reconcile(self.app.settings.today(), progress, incremental=True)
        report.timings = progress.timings
        self.metrics.observe_run(report)
        log.info("reconciled", extra={"findings": report.findings,
                                      "identity": report.identity})
        if self.notifier.enabled:
            self.notifier.run(self.app.settings.today())
        if self.relay is not None and not self.stopping.is_set():
            self.scheduler.modify_job("relay", next_run_time=datetime.now(UTC))

    def relay_outbox(self) -> None:
        """One relay pass; reschedule itself sooner or later depending on the broker."""
        assert self.relay is not None
        result = self.relay.relay()
        delay = self.relay_backoff.failure() if result.error else self.relay_backoff.success()
        if not self.stopping.is_set():
            self.scheduler.modify_job(
                "relay", next_run_time=datetime.now(UTC) + timedelta(seconds=delay))

    def deliver_notifications(self) -> None:
        self.notifier.deliver_due()

    def start(self) -> None:
        now = datetime.now(UTC)
        for declared in self.app.settings.connectors:
            self.scheduler.add_job(self.pull, _trigger(declared.schedule), args=[declared.name],
                                   id=f"pull:{declared.name}", next_run_time=now)
        self.scheduler.add_job(self.reconcile, _trigger(self.app.settings.reconcile_schedule),
                               id="reconcile")
        if self.relay is not None:
            # the trigger is a ceiling; each pass sets its own next run (backoff)
            self.scheduler.add_job(self.relay_outbox, IntervalTrigger(
                seconds=self.app.settings.bus.max_backoff_seconds, timezone=UTC),
                id="relay", next_run_time=now)
        if self.notifier.enabled:
            self.scheduler.add_job(self.deliver_notifications, IntervalTrigger(
                seconds=self.app.settings.notify.interval_seconds, timezone=UTC),
                id="notify", next_run_time=now)
        self.scheduler.start()
        web = load_web_settings(sla_days=self.app.catalogue.sla_days())
        self.web = DeskServer(web, self.app, ops=create_ops_app(
            self.app.engine, self.metrics, self.scheduler_state))
        self.web.start()
        log.info("daemon started", extra={"jobs": [j.id for j in self.scheduler.get_jobs()]})

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run_forever(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.start()
        self.stopping.wait()
        log.info("stopping: finishing the unit of work in progress")
        self.scheduler.shutdown(wait=True)
        if self.web is not None:
            self.web.stop()
        if self.relay is not None:
            self.relay.close()
        self.app.engine.dispose()
        log.info("stopped")
        return 0
