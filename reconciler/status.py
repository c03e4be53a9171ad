"""``reconciler status``: what the scheduler did and will do, read from the database alone.

It needs no running daemon and asks none: everything comes from the tables the daemon
writes, so it answers the same on any replica, on a laptop with the database URL, and while
every daemon is down (that is when it is most useful).

* **Per connector**: its cursor (REST / SQL: the stored position; file drop: how many files
  it has delivered), the last pull and the last *successful* one (``pull_runs``, one row
  per pull the leader ran — a pull that stopped on a connector error is not successful, what
  it committed stays), the last delivery, the next scheduled run and the backlog.
* **Next run** is computed from the connector's schedule and its last pull the way
  APScheduler computes it: ``interval_seconds`` after the last pull started, or the first
  cron slot after it. A time in the past means the pull is overdue (no leader, or the
  leader is busy). Replicas anchor interval schedules at their own start and the leader
  pulls everything at once when it takes over, so for interval schedules this is the
  latest it should happen, not the exact second.
* **Backlog**: for a file drop, the files in its inbox folder that were never delivered
  (identified by content, as the connector does; a file already delivered from the same
  path and not modified since is not hashed again). For REST and SQL it is unknown until
  pulled — the partner is not asked — so the status shows how far behind now the cursor is.
* **Scheduler**: the lease holder, its epoch and when the lease expires (by the database's
  clock), or that it expired (no leader: a standby takes over at its next poll).
* **Last reconcile** (``runs``: the daemon's reconciles and ``run --once``), **outbox**
  backlog and the age of its oldest event, **quarantined** rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine, func, select

from connectors.base import Cursor
from connectors.filedrop import file_hash
from reconciler.bus.relay import outbox_status
from reconciler.config import ConnectorSettings, Schedule, Settings
from reconciler.lease import SCHEDULER, db_now, read_lease
from reconciler.storage import cursors, deliveries, pull_runs, quarantine, runs

OVERDUE_GRACE = 30.0  # seconds a run may be late (a busy single worker) before it is "overdue"


def schedule_trigger(schedule: Schedule) -> CronTrigger | IntervalTrigger:
    """The APScheduler trigger of a declared schedule (UTC)."""
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    assert schedule.interval_seconds is not None
    return IntervalTrigger(seconds=schedule.interval_seconds, timezone=UTC)


def describe_schedule(schedule: Schedule) -> str:
    return f"cron {schedule.cron}" if schedule.cron else f"every {schedule.interval_seconds}s"


def next_run(schedule: Schedule, last_started: datetime | None, now: datetime
             ) -> datetime | None:
    """When the schedule fires next after a run that started at ``last_started`` (None: never
    ran — the leader pulls at once when it starts or takes over, so: now)."""
    if last_started is None:
        return now
    fire: datetime | None = schedule_trigger(schedule).get_next_fire_time(last_started, now)
    return fire.astimezone(UTC) if fire is not None else None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class ConnectorStatus:
    name: str
    type: str
    feed: str
    schedule: str
    cursor: str | None
    last_pull_at: datetime | None
    last_pull_status: str | None
    last_pull_error: str | None
    last_success_at: datetime | None
    last_delivery_at: datetime | None
    next_run_at: datetime | None
    overdue: bool
    backlog: int | None  # None: unknown until pulled
    backlog_note: str


@dataclass
class LeaseStatus:
    state: str  # held | expired | none
    holder: str | None = None
    epoch: int | None = None
    acquired_at: datetime | None = None
    renewed_at: datetime | None = None
    expires_at: datetime | None = None
    expires_in_seconds: float | None = None


@dataclass
class ReconcileStatus:
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_status: str | None = None
    last_trigger: str | None = None
    last_success_at: datetime | None = None


@dataclass
class Status:
    generated_at: datetime
    database: str
    lease: LeaseStatus
    reconcile: ReconcileStatus
    outbox_pending: int
    outbox_oldest_age_seconds: float | None
    quarantined: int
    connectors: list[ConnectorStatus] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        out: dict[str, Any] = plain(asdict(self))
        return out


def collect_status(engine: Engine, settings: Settings, now: datetime | None = None
                   ) -> Status:
    """Everything ``reconciler status`` shows (database errors propagate)."""
    with engine.connect() as conn:
        clock = now or db_now(conn)
        lease = _lease(conn, clock)
        reconcile = _reconcile(conn)
        outbox = outbox_status(conn, clock)
        quarantined = int(conn.execute(select(func.count()).select_from(quarantine))
                          .scalar_one())
        connectors = [_connector(conn, declared, settings.inbox, clock)
                      for declared in settings.connectors]
    return Status(generated_at=clock,
                  database=engine.url.render_as_string(hide_password=True),
                  lease=lease, reconcile=reconcile, outbox_pending=outbox.pending,
                  outbox_oldest_age_seconds=outbox.oldest_pending_age_seconds,
                  quarantined=quarantined, connectors=connectors)


def _lease(conn: Connection, now: datetime) -> LeaseStatus:
    row = read_lease(conn, SCHEDULER)
    if row is None:
        return LeaseStatus("none")
    left = row.remaining(now)
    return LeaseStatus("held" if left > 0 else "expired", row.holder, row.epoch,
                       row.acquired_at, row.renewed_at, row.expires_at, round(left, 1))


def _reconcile(conn: Connection) -> ReconcileStatus:
    last = conn.execute(select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc())
                        .limit(1)).mappings().first()
    success = conn.execute(select(func.max(runs.c.finished_at))
                           .where(runs.c.status == "succeeded")).scalar_one()
    out = ReconcileStatus(last_success_at=_utc(success))
    if last is not None:
        stats = last["stats"] if isinstance(last["stats"], dict) else {}
        out.last_started_at = _utc(last["started_at"])
        out.last_finished_at = _utc(last["finished_at"])
        out.last_status = str(last["status"])
        out.last_trigger = str(stats.get("trigger") or "run --once")
    return out


def _connector(conn: Connection, declared: ConnectorSettings, inbox: Path, now: datetime
               ) -> ConnectorStatus:
    name = declared.name
    last = conn.execute(select(pull_runs).where(pull_runs.c.connector == name)
                        .order_by(pull_runs.c.started_at.desc(), pull_runs.c.id.desc())
                        .limit(1)).mappings().first()
    success = conn.execute(select(func.max(pull_runs.c.finished_at))
                           .where(pull_runs.c.connector == name,
                                  pull_runs.c.status == "succeeded")).scalar_one()
    delivered = conn.execute(select(func.max(deliveries.c.received_at))
                             .where(deliveries.c.connector == name)).scalar_one()
    last_started = _utc(last["started_at"]) if last is not None else None
    upcoming = next_run(declared.schedule, last_started, now)
    stored = conn.execute(select(cursors.c.value).where(cursors.c.connector == name)
                          ).scalar_one_or_none()
    if declared.type == "filedrop":
        backlog, note = _filedrop_backlog(conn, declared, inbox)
        files = int(conn.execute(select(func.count()).select_from(deliveries)
                                 .where(deliveries.c.connector == name)).scalar_one())
        cursor: str | None = f"{files} files delivered"
    else:
        backlog, cursor = None, stored
        note = "unknown until pulled"
        if stored:
            try:
                position = Cursor.decode(stored).updated_at
            except (ValueError, KeyError, TypeError):
                position = None
            if position is not None:
                note += f"; cursor {_ago((now - position).total_seconds())} behind now"
        else:
            note += "; no cursor yet (reads from the declared start)"
    return ConnectorStatus(
        name=name, type=declared.type, feed=declared.feed,
        schedule=describe_schedule(declared.schedule), cursor=cursor,
        last_pull_at=last_started, last_pull_status=str(last["status"]) if last else None,
        last_pull_error=str(last["error"]) if last is not None and last["error"] else None,
        last_success_at=_utc(success), last_delivery_at=_utc(delivered),
        next_run_at=upcoming,
        overdue=upcoming is not None and (now - upcoming).total_seconds() > OVERDUE_GRACE,
        backlog=backlog, backlog_note=note)


def _filedrop_backlog(conn: Connection, declared: ConnectorSettings, inbox: Path
                      ) -> tuple[int, str]:
    assert declared.path is not None
    folder = inbox / declared.path
    if not folder.is_dir():
        return 0, f"folder {folder} does not exist"
    hashes = set(conn.execute(select(deliveries.c.content_hash)
                              .where(deliveries.c.feed == declared.feed)).scalars())
    by_source: dict[str, datetime] = {}
    for source, received in conn.execute(
            select(deliveries.c.source, func.max(deliveries.c.received_at))
            .where(deliveries.c.connector == declared.name).group_by(deliveries.c.source)):
        moment = _utc(received)
        if moment is not None:
            by_source[str(source)] = moment
    waiting = 0
    for path in sorted(folder.glob(declared.pattern)):
        if not path.is_file():
            continue
        received = by_source.get(str(path))
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if received is not None and modified <= received:
            continue  # delivered from this path and not changed since: no need to hash it
        if file_hash(path) not in hashes:
            waiting += 1
    return waiting, f"{waiting} files in {folder} not yet delivered"


# -- the readable table -----------------------------------------------------------------------


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    delta = (moment - now).total_seconds()
    relative = f"in {_ago(delta)}" if delta > 0 else f"{_ago(delta)} ago"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z ({relative})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True))
            .rstrip() for r in [header, *rows]]


def format_status(status: Status) -> str:
    now = status.generated_at
    lease = status.lease
    if lease.state == "held":
        scheduler = (f"leader {lease.holder} (epoch {lease.epoch}), lease expires in "
                     f"{_ago(lease.expires_in_seconds or 0)}, leading since "
                     f"{_when(lease.acquired_at, now)}")
    elif lease.state == "expired":
        scheduler = (f"NO LEADER: the lease of {lease.holder} (epoch {lease.epoch}) expired "
                     f"{_when(lease.expires_at, now)}; a running standby takes over at its "
                     "next poll")
    else:
        scheduler = "no lease yet (no daemon has run on this database)"
    rec = status.reconcile
    reconcile = (f"last succeeded {_when(rec.last_success_at, now)}" if rec.last_success_at
                 else "never succeeded")
    if rec.last_started_at is not None:
        reconcile += (f"; last run {rec.last_status} ({rec.last_trigger}), started "
                      f"{_when(rec.last_started_at, now)}")
    age = status.outbox_oldest_age_seconds
    outbox = f"{status.outbox_pending} events pending" + (
        f", oldest {_ago(age)} old" if age is not None else "")
    lines = [f"reconciler status at {now.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z "
             f"({status.database})", "",
             f"scheduler   {scheduler}",
             f"reconcile   {reconcile}",
             f"outbox      {outbox}",
             f"quarantine  {status.quarantined} rows (reconciler quarantine list)", ""]
    header = ["connector", "type", "schedule", "cursor", "last pull", "last success",
              "next run", "backlog"]
    rows = []
    for c in status.connectors:
        last_pull = _when(c.last_pull_at, now) + (f" {c.last_pull_status}"
                                                  if c.last_pull_status else "")
        upcoming = _when(c.next_run_at, now) + (" OVERDUE" if c.overdue else "")
        backlog = (str(c.backlog) if c.backlog is not None else "?") + f" — {c.backlog_note}"
        rows.append([c.name, c.type, c.schedule, _short(c.cursor), last_pull,
                     _when(c.last_success_at, now), upcoming, backlog])
    lines += _table(header, rows)
    errors = [(c.name, c.last_pull_error) for c in status.connectors if c.last_pull_error]
    if errors:
        lines += ["", "last pull errors:"]
        lines += [f"  {name}: {error}" for name, error in errors]
    return "\n".join(lines)


def _short(cursor: str | None) -> str:
    if cursor is None:
        return "-"
    try:
        data = json.loads(cursor)
    except ValueError:
        return cursor[:40]
    if isinstance(data, dict) and "updated_at" in data:
        return f"{data['updated_at']} / {data.get('key')}"
    return cursor[:40]
