"""The daemon: APScheduler drives connector pulls on their schedules and reconciles after
fresh data and on its own schedule — in one replica at a time, the holder of the scheduler
lease (``reconciler/lease.py``).

Choices made on purpose:

* **one worker thread** — a pull and a reconcile never run at the same time in one process,
  and SQLite never sees two writers of ours;
* **``coalesce``** — a job that missed several runs (the machine slept) runs once, not N
  times; with ``max_instances`` 1 a slot that comes while the same job still runs (a pull
  waiting out a partner's ``Retry-After``) is skipped, and APScheduler logs it;
* **``misfire_grace_time`` of 10 minutes** — a run late by less still happens; later, it
  waits for its next slot;
* **leader or standby** — every replica schedules every job, and each job runs only if this
  replica holds the lease right then (the gate, and why it is a gate and not a paused
  scheduler: ``reconciler.lease``); a standby's slot is skipped and counted
  (``reconciler_scheduler_jobs_total{outcome="skipped"}``). Every transaction a job commits
  is fenced by the lease epoch it started under, and a pull checks the lease again before
  each delivery, so a replica that lost the lease stops at its next unit of work and cannot
  commit the one in flight;
* **on becoming leader** (start-up or takeover) it pulls every connector at once, sends the
  outbox and due notifications, and reconciles if a delivery arrived after the last
  successful reconcile started, or a reconcile slot passed without one (an interval
  schedule: none for a whole interval; a cron schedule: a slot within the misfire grace) —
  so a failover loses no work and repeats none the old leader finished;
* **the database may be missing** — at start-up the daemon serves ``/healthz`` (alive) and
  ``/readyz`` (503, saying why) at once and retries the database with backoff (1 s doubling
  to 30 s), migrating SQLite or waiting for ``reconciler db upgrade`` on PostgreSQL, and
  starts scheduling when it can. Mid-run, a job failing on a database error is logged and
  runs again at its next slot; the leader's renewal fails and it steps down at once, and
  polls again until the database is back (pooled connections are pre-pinged; PostgreSQL
  connects time out after 10 s and connections use TCP keepalives: :func:`daemon_engine`);
* **runs are recorded**: a row in ``pull_runs`` per pull and in ``runs`` per reconcile
  (with its trigger, holder and epoch), read by ``reconciler status`` and the metrics;
* the outbox relay runs every ``bus.interval_seconds`` while Kafka is configured and backs
  off (doubling, up to ``bus.max_backoff_seconds``) while the broker is unreachable;
* the notifier plans digests after each reconcile and delivers what is due every
  ``notify.interval_seconds`` (retries follow each notification's own backoff);
* **SIGTERM / SIGINT** finish the unit of work in progress — a reconcile, or the delivery a
  pull is fetching or staging (the pull then stops before the next one; the next leader
  reads the rest from the committed cursor) — release the lease so a standby takes over at
  once, and exit 0. Give the platform's grace period the
  longest unit of work (seconds on most deployments; a reconcile of a national payroll may
  take minutes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from connectors import build_connector
from connectors.base import Connector, Delivery, IncrementalConnector
from reconciler.bus.relay import Backoff, OutboxRelay
from reconciler.config import Schedule, Settings
from reconciler.errors import ReconcilerError
from reconciler.health import SchedulerStatus
from reconciler.ingest import DeliveryStats, pull_connector, validation_worker
from reconciler.lease import Fence, LeaseKeeper, LeaseLost, SchedulerLease
from reconciler.metrics import Metrics, create_metrics
from reconciler.migrate import current_revision, head_revision, is_current, upgrade
from reconciler.observability import create_ops_app
from reconciler.pipeline import Progress, Reconciler, RunReport
from reconciler.registry import EmbeddedRegistry
from reconciler.rules.catalogue import load_catalogue
from reconciler.status import schedule_trigger
from reconciler.storage import create_db_engine, deliveries, pull_runs, runs
from reconciler.web.server import DeskServer
from reconciler.web.settings import load_web_settings

log = logging.getLogger(__name__)

MISFIRE_GRACE = 600  # seconds
STARTUP_BACKOFF = (1.0, 30.0)  # first and longest wait between database attempts
PULL_RUNS_KEPT = timedelta(days=30)


class ShuttingDown(ReconcilerError):
    """SIGTERM arrived: a pull stops before its next delivery (what it staged stays)."""


def _cause(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


def _database_error(exc: BaseException) -> bool:
    """SQLAlchemy's errors, and the driver's own where code talks to it directly (COPY)."""
    return isinstance(exc, SQLAlchemyError) or \
        type(exc).__module__.split(".")[0] in ("psycopg", "sqlite3")


def daemon_engine(url: str) -> Engine:
    """The daemon's engine, built without connecting: pooled connections are pre-pinged (a
    database restart must not fail the next job); PostgreSQL connects time out after 10 s
    and idle connections send TCP keepalives (unless the URL sets those parameters). A
    SQLite file whose folder cannot be created yet (a volume not mounted) still gets an
    engine; connecting fails, and start-up waits, until the folder can be made."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        # libpq: bounded connects, and TCP keepalives so a connection to a database that
        # vanished without a reset fails in about a minute instead of hanging a job
        defaults = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                    "keepalives_interval": 10, "keepalives_count": 3}
        kwargs["connect_args"] = {k: v for k, v in defaults.items() if k not in parsed.query}
    try:
        return create_db_engine(url, **kwargs)
    except OSError as exc:
        log.warning("cannot create the SQLite database's folder yet",
                    extra={"error": str(exc)})
        # the same driver, named explicitly: the factory then leaves the folder alone
        explicit = parsed.set(drivername="sqlite+pysqlite")
        return create_db_engine(explicit.render_as_string(hide_password=False), **kwargs)


def run_daemon(settings: Settings) -> int:
    """``reconciler run``: the daemon, built without touching the database (it may not be
    there yet: :meth:`Daemon.wait_for_database`)."""
    app = Reconciler(settings, daemon_engine(settings.database_url), EmbeddedRegistry(),
                     load_catalogue(settings.rules_path))
    return Daemon(app).run_forever()


class Daemon:
    def __init__(self, app: Reconciler, holder: str | None = None) -> None:
        self.app = app
        settings = app.settings
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": MISFIRE_GRACE},
            timezone=UTC,
        )
        self.lease = SchedulerLease(app.engine, holder, settings.lease.ttl_seconds)
        self.fence = Fence(app.engine)
        self.keeper = LeaseKeeper(self.lease, settings.lease.renew_interval,
                                  on_acquired=self._became_leader, on_lost=self._stepped_down)
        self.relay: OutboxRelay | None = app.outbox_relay()
        bus = app.settings.bus
        self.relay_backoff = Backoff(bus.interval_seconds, bus.max_backoff_seconds)
        self.notifier = app.notifier()
        if app.metrics is None:
            app.metrics = create_metrics(app.engine, [c.name for c in settings.connectors],
                                         self.scheduler_state)
        self.metrics: Metrics = app.metrics
        self.web: DeskServer | None = None
        self._waiting: str | None = "starting"  # why the scheduler has not started yet
        self._reset_index = False
        self._lock = threading.Lock()
        self._reconcile_queued = False
        self._stopped_at: float | None = None  # monotonic time of SIGTERM

    @property
    def holder(self) -> str:
        return self.lease.holder

    def scheduler_state(self) -> SchedulerStatus:
        """For /readyz and the metrics (``reconciler.health``)."""
        if self.stopping.is_set():
            return SchedulerStatus("none", "shutting down", self.holder)
        waiting = self._waiting
        if waiting is not None:
            return SchedulerStatus("none", f"waiting for the database: {waiting}", self.holder)
        return self.keeper.status()

    # -- the gate around every job ------------------------------------------------------------

    def _run_job(self, job: str, work: Callable[[int], None]) -> None:
        """Run ``work(epoch)`` if this replica leads right now, fenced by that epoch;
        otherwise count the slot as skipped. Failures are logged and counted, never raised
        into APScheduler: the job simply runs again at its next slot."""
        if self.stopping.is_set():
            return
        epoch = self.keeper.leader_epoch()
        if epoch is None:
            self.metrics.observe_job(job, "skipped")
            return
        try:
            with self.fence.guard(self.holder, epoch):
                work(epoch)
        except LeaseLost as exc:
            log.warning("job stopped: the scheduler lease is lost; what it had not committed "
                        "was rolled back and the leader does it",
                        extra={"job": job, "reason": str(exc)})
            self.metrics.observe_job(job, "fenced")
            self.keeper.lost(str(exc))
        except ShuttingDown as exc:
            log.info("job stopped for shutdown", extra={"job": job, "reason": str(exc)})
            self.metrics.observe_job(job, "succeeded")
        except Exception as exc:
            self.metrics.observe_job(job, "failed")
            if _database_error(exc):
                log.error("job failed on a database error; it runs again at its next slot",
                          extra={"job": job, "error": _cause(exc)})
                self.keeper.wake()  # let the lease find out now: renew, or step down
            else:
                log.exception("job failed; it runs again at its next slot",
                              extra={"job": job, "error": _cause(exc)})
        else:
            self.metrics.observe_job(job, "succeeded")

    def stop(self, *_: Any) -> None:
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self.stopping.set()

    # -- the jobs -----------------------------------------------------------------------------

    def pull(self, name: str, trigger: str = "schedule") -> None:
        self._run_job("pull", lambda epoch: self._pull(name, trigger, epoch))

    def _pull(self, name: str, trigger: str, epoch: int) -> None:
        declared = next(c for c in self.app.settings.connectors if c.name == name)
        connector = _stoppable(build_connector(declared, self.app.settings.inbox),
                               self.stopping)
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        with self.app.engine.begin() as conn:
            run_id = conn.execute(insert(pull_runs).values(
                connector=name, trigger=trigger, holder=self.holder, epoch=epoch,
                started_at=started_at, status="running", deliveries=0, rows_new=0)
                .returning(pull_runs.c.id)).scalar_one()
            conn.execute(pull_runs.delete().where(
                pull_runs.c.connector == name,
                pull_runs.c.started_at < started_at - PULL_RUNS_KEPT))
        units = _Units(self, epoch)
        stats: list[DeliveryStats] = []
        status, error = "failed", None
        try:
            with validation_worker() as worker:
                stats = pull_connector(units.begin, connector,
                                       self.app.settings.identity.profile, worker=worker)
            failures = [s.error for s in stats if s.error]
            status = "failed" if failures else "stopped" if connector.stopped else "succeeded"
            error = failures[0] if failures else None
            if connector.stopped:
                log.info("pull stopped for shutdown after the delivery in progress",
                         extra={"connector": name, "deliveries": len(stats)})
        except ShuttingDown as exc:
            status, error = "stopped", str(exc)
            raise
        except BaseException as exc:
            error = _cause(exc)
            raise
        finally:
            staged = [s for s in stats if not s.error]
            self._finish(update(pull_runs).where(pull_runs.c.id == run_id).values(
                finished_at=datetime.now(UTC), status=status,
                deliveries=len(staged) if stats else max(0, units.committed - 1),
                rows_new=sum(s.rows_new for s in staged), error=error))
        for delivery in stats:
            self.metrics.observe_delivery(delivery)
        self.metrics.observe_pull(name, time.perf_counter() - started)
        if any(s.rows_new for s in stats) and not self.stopping.is_set():
            self.request_reconcile("after-pull")

    def request_reconcile(self, trigger: str) -> None:
        """Fresh data: reconcile soon, once, after the pulls already queued (one worker runs
        jobs in the order they were due). Asked again before that reconcile starts, nothing
        more is queued; asked while it runs, one more follows."""
        with self._lock:
            if self._reconcile_queued:
                return
            self._reconcile_queued = True
        self._schedule_now(self.reconcile, "reconcile-after-pull", kwargs={"trigger": trigger})

    def reconcile(self, trigger: str = "schedule") -> None:
        with self._lock:  # whatever arrives from now on needs a reconcile after this one
            self._reconcile_queued = False
        self._run_job("reconcile", lambda epoch: self._reconcile(trigger, epoch))

    def _reconcile(self, trigger: str, epoch: int) -> None:
        if self._reset_index:  # another leader may have reconciled since our index was built
            self.app.index = None
            self._reset_index = False
        as_of = self.app.settings.today()
        with self.app.engine.begin() as conn:
            run_id = conn.execute(insert(runs).values(
                started_at=datetime.now(UTC), as_of=as_of, status="running",
                stats={"kind": "daemon", "trigger": trigger, "holder": self.holder,
                       "epoch": epoch}).returning(runs.c.id)).scalar_one()
        progress = Progress(False)
        report: RunReport | None = None
        error: str | None = None
        try:
            report = self.app.reconcile(as_of, progress, incremental=True)
            report.timings = progress.timings
        except BaseException as exc:
            self.app.index = None  # the index in memory may be ahead of what committed
            error = _cause(exc)
            self.metrics.observe_run_failed()
            raise
        finally:
            stats: dict[str, Any] = {"kind": "daemon", "trigger": trigger,
                                     "holder": self.holder, "epoch": epoch,
                                     "timings": progress.timings}
            if report is not None:
                stats.update(findings=report.findings, identity=report.identity)
            if error is not None:
                stats["error"] = error
            self._finish(update(runs).where(runs.c.id == run_id).values(
                finished_at=datetime.now(UTC),
                status="failed" if report is None else "succeeded",
                stats=json.loads(json.dumps(stats, default=str))))
        self.metrics.observe_run(report)
        log.info("reconciled", extra={"findings": report.findings,
                                      "identity": report.identity, "trigger": trigger})
        if self.notifier.enabled:
            self.notifier.run(self.app.settings.today())
        if self.relay is not None and not self.stopping.is_set():
            self._modify("relay", datetime.now(UTC))

    def catch_up(self) -> None:
        """On becoming leader: reconcile now if work is due (see the module docstring)."""
        self._run_job("reconcile", self._catch_up)

    def _catch_up(self, epoch: int) -> None:
        with self._lock:
            if self._reconcile_queued:
                return  # a takeover pull found fresh data: that reconcile is already queued
        with self.app.engine.connect() as conn:
            due = reconcile_due(conn, self.app.settings.reconcile_schedule,
                                datetime.now(UTC))
        if due is not None:
            log.info("reconciling on takeover", extra={"why": due})
            self._reconcile("takeover", epoch)

    def relay_outbox(self) -> None:
        """One relay pass; reschedule itself sooner or later depending on the broker."""
        self._run_job("relay", self._relay)

    def _relay(self, _epoch: int) -> None:
        assert self.relay is not None
        result = self.relay.relay()
        delay = self.relay_backoff.failure() if result.error else self.relay_backoff.success()
        if not self.stopping.is_set():
            self._modify("relay", datetime.now(UTC) + timedelta(seconds=delay))

    def deliver_notifications(self) -> None:
        self._run_job("notify", lambda _epoch: self._deliver())

    def _deliver(self) -> None:
        self.notifier.deliver_due()

    def _finish(self, statement: Any) -> None:
        """A job's own bookkeeping (its run record): not fenced, and never the reason a job
        fails — with the database down it stays ``running``, which ``status`` shows."""
        try:
            with self.fence.suspended(), self.app.engine.begin() as conn:
                conn.execute(statement)
        except SQLAlchemyError as exc:
            log.warning("could not record the end of a run", extra={"error": _cause(exc)})

    # -- leadership ---------------------------------------------------------------------------

    def _became_leader(self, epoch: int) -> None:
        """(The lease thread.) Catch up: pull everything now, relay and notify now, then
        reconcile if due; the person index is rebuilt from the database first."""
        self.metrics.observe_leadership("acquired")
        self._reset_index = True
        if self.stopping.is_set() or not self.scheduler.running:
            return
        now = datetime.now(UTC)
        for declared in self.app.settings.connectors:
            self._schedule_now(self.pull, f"takeover:pull:{declared.name}", now,
                               args=[declared.name, "takeover"])
        self._schedule_now(self.catch_up, "takeover:reconcile",
                           now + timedelta(milliseconds=1))
        for job in ("relay", "notify"):
            self._modify(job, now)

    def _stepped_down(self, reason: str) -> None:
        self.metrics.observe_leadership("released" if reason == "released" else "lost")

    def _schedule_now(self, func: Callable[..., None], job_id: str,
                      when: datetime | None = None, **kwargs: Any) -> None:
        with contextlib.suppress(SchedulerNotRunningError):  # shutting down
            self.scheduler.add_job(func, id=job_id, replace_existing=True,
                                   next_run_time=when or datetime.now(UTC), **kwargs)

    def _modify(self, job_id: str, when: datetime) -> None:
        with contextlib.suppress(SchedulerNotRunningError):
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.modify_job(job_id, next_run_time=when)

    # -- start, wait, stop --------------------------------------------------------------------

    def database_problem(self) -> str | None:
        """Why the database cannot be used yet (None: it can). SQLite is migrated here, as
        ``Reconciler.from_settings`` does; PostgreSQL waits for ``reconciler db upgrade``."""
        settings = self.app.settings
        url = self.app.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            folder = Path(str(url.database)).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return f"database unreachable: cannot create {folder}: {exc}"
        try:
            if settings.is_embedded:
                upgrade(self.app.engine)
            elif not is_current(self.app.engine):
                return (f"database schema at {current_revision(self.app.engine) or 'none'}, "
                        f"the code needs {head_revision(self.app.engine)}: run "
                        "`reconciler db upgrade`")
        except SQLAlchemyError as exc:
            return f"database unreachable: {_cause(exc)}"
        return None

    def wait_for_database(self) -> bool:
        """Retry until the database is usable (True) or SIGTERM arrives (False)."""
        delay, longest = STARTUP_BACKOFF
        while not self.stopping.is_set():
            problem = self.database_problem()
            if problem is None:
                return True
            self._waiting = problem
            log.warning("waiting for the database", extra={"reason": problem,
                                                          "retry_in_seconds": delay})
            self.stopping.wait(delay)
            delay = min(delay * 2, longest)
        return False

    def start_web(self) -> None:
        web = load_web_settings(sla_days=self.app.catalogue.sla_days())
        self.web = DeskServer(web, self.app, ops=create_ops_app(
            self.app.engine, self.metrics, self.scheduler_state))
        self.web.start()

    def start_scheduler(self) -> None:
        """Schedule every job, poll the lease once (a lone replica leads at once), then keep
        the lease in its own thread."""
        settings = self.app.settings
        for declared in settings.connectors:
            self.scheduler.add_job(self.pull, schedule_trigger(declared.schedule),
                                   args=[declared.name], id=f"pull:{declared.name}")
        self.scheduler.add_job(self.reconcile, schedule_trigger(settings.reconcile_schedule),
                               id="reconcile")
        if self.relay is not None:
            # the trigger is a ceiling; each pass sets its own next run (backoff)
            self.scheduler.add_job(self.relay_outbox, IntervalTrigger(
                seconds=settings.bus.max_backoff_seconds, timezone=UTC), id="relay")
        if self.notifier.enabled:
            self.scheduler.add_job(self.deliver_notifications, IntervalTrigger(
                seconds=settings.notify.interval_seconds, timezone=UTC), id="notify")
        self.scheduler.start()
        self.keeper.tick()
        self._waiting = None
        self.keeper.start()
        log.info("daemon started", extra={"jobs": [j.id for j in self.scheduler.get_jobs()],
                                          "holder": self.holder,
                                          "role": self.keeper.status().role})

    def start(self) -> bool:
        """Serve the desk and the probes at once, wait for the database, then schedule.
        False if SIGTERM came first."""
        self.start_web()
        if not self.wait_for_database():
            return False
        self.start_scheduler()
        return True

    def shutdown(self) -> None:
        """Finish the unit of work in progress (the lease is still renewed meanwhile), then
        release the lease, stop serving and close the database."""
        log.info("stopping: finishing the unit of work in progress")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.keeper.stop(release=True)
        if self.web is not None:
            self.web.stop()
        if self.relay is not None:
            self.relay.close()
        self.fence.close()
        self.app.engine.dispose()
        log.info("stopped")

    def run_forever(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        try:
            if self.start():
                self.stopping.wait()
        finally:
            self.stop()
            self.shutdown()
        return 0


class _Stoppable:
    """A connector whose stream ends, once SIGTERM arrived, before it fetches the next
    delivery — the one being fetched or staged when it came is finished first. The stream
    ends normally, so the pull returns what it staged (``stopped`` says it was cut short)."""

    def __init__(self, inner: Connector, stopping: threading.Event) -> None:
        self.inner = inner
        self.name = inner.name
        self.feed = inner.feed
        self.stopping = stopping
        self.stopped = False

    def deliveries(self, already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        return self._until_stopped(self.inner.deliveries(already_seen))

    def _until_stopped(self, stream: Iterator[Delivery]) -> Iterator[Delivery]:
        try:
            for delivery in stream:
                yield delivery
                if self.stopping.is_set():  # resumed after staging it: fetch no more
                    self.stopped = True
                    return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


class _StoppableIncremental(_Stoppable):
    def __init__(self, inner: IncrementalConnector, stopping: threading.Event) -> None:
        super().__init__(inner, stopping)  # type: ignore[arg-type]
        self.incremental = inner

    def deliveries_from(self, cursor: str | None, already_seen: Callable[[str], bool]
                        ) -> Iterator[Delivery]:
        return self._until_stopped(self.incremental.deliveries_from(cursor, already_seen))


def _stoppable(connector: Connector | IncrementalConnector, stopping: threading.Event
               ) -> _Stoppable:
    if isinstance(connector, IncrementalConnector):
        return _StoppableIncremental(connector, stopping)
    return _Stoppable(connector, stopping)


class _Units:
    """``pull_connector``'s ``begin`` for one pull: a transaction per unit of work (the
    seen-hashes read, then one per delivery), checked before it opens and fenced at its
    commit (the job's guard).

    * Still the leader under the job's epoch, or :class:`LeaseLost`.
    * Shutdown: a delivery whose fetch was under way when SIGTERM arrived is staged — that
      is the unit of work in progress; one fetched after it is not (:class:`ShuttingDown`:
      the pull ends there, the next leader fetches it again from the committed cursor).
    """

    def __init__(self, daemon: Daemon, epoch: int) -> None:
        self.daemon = daemon
        self.epoch = epoch
        self.last_end = time.monotonic()  # when the previous unit ended: the fetch began
        self.committed = 0

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        stopped = self.daemon._stopped_at
        if stopped is not None and stopped < self.last_end:
            raise ShuttingDown("shutting down: the pull stopped before its next delivery")
        if self.daemon.keeper.leader_epoch() != self.epoch:
            raise LeaseLost(f"no longer the leader under epoch {self.epoch}")
        with self.daemon.app.engine.begin() as conn:
            yield conn
        self.committed += 1
        self.last_end = time.monotonic()


def reconcile_due(conn: Connection, schedule: Schedule, now: datetime) -> str | None:
    """Why a new leader should reconcile now, or None: data delivered after the last
    successful reconcile started; or, with an interval schedule, no successful reconcile
    for a whole interval; with a cron schedule, a slot within the misfire grace that has no
    successful reconcile after it.

    These are the replicas' own UTC clocks (run records, not the lease, which never depends
    on them): a skew of a few seconds between replicas can add or spare one catch-up
    reconcile near a slot boundary, nothing more."""
    last = conn.execute(select(func.max(runs.c.started_at))
                        .where(runs.c.status == "succeeded")).scalar_one()
    last = (last.replace(tzinfo=UTC) if last.tzinfo is None else last) if last else None
    newest = conn.execute(select(func.max(deliveries.c.received_at))).scalar_one()
    if newest is not None:
        newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
        if last is None or newest >= last:
            return "data delivered since the last reconcile"
    if schedule.interval_seconds is not None:
        if last is None or last <= now - timedelta(seconds=schedule.interval_seconds):
            return f"no reconcile in the last {schedule.interval_seconds}s"
        return None
    trigger = schedule_trigger(schedule)
    slot: datetime | None = None
    fire = trigger.get_next_fire_time(None, now - timedelta(seconds=MISFIRE_GRACE))
    while fire is not None and fire <= now:
        slot = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    if slot is not None and (last is None or last < slot):
        return f"the {slot:%Y-%m-%d %H:%M}Z slot has no reconcile"
    return None
