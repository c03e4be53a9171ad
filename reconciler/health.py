"""Liveness and readiness, as pure functions over what they are given.

* **Alive** (``/healthz``): the process answers. It deliberately does not touch the
  database — a database outage must make replicas *not ready*, not get them restarted.
* **Ready** (``/readyz``): the database answers ``SELECT 1``, its schema is at the code's
  Alembic head, and — in a process that runs the scheduler — the scheduler is either the
  leader or a standby.

The scheduler state is a callable returning a role (``"leader"``, ``"standby"``,
``"none"``) or a :class:`SchedulerStatus` (the role with its reason, this replica's lease
holder id and epoch, and who leads as last seen):

* ``leader`` — this replica holds the scheduling lease (``reconciler/lease.py``): it runs
  the pulls, reconciles, the relay and the notifier;
* ``standby`` — the scheduler runs but another replica holds the lease: ready, it serves
  the desk and ``/metrics`` and takes over when the lease expires or is released;
* ``none`` — not ready, and the reason says why: the daemon is still waiting for its
  database at start-up, it lost its lease and cannot read the lease row (the database is
  unreachable), or it is shutting down.

A process with no scheduler at all (the web desk on its own) passes ``None`` and the check
is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from reconciler.migrate import current_revision, head_revision

SchedulerRole = Literal["leader", "standby", "none"]
SCHEDULER_ROLES: tuple[SchedulerRole, ...] = ("leader", "standby", "none")
NO_ROLE_REASON = ("scheduler is neither leader nor standby (not started, stopped, or lost "
                  "its lease)")


class SchedulerStatus(NamedTuple):
    """What a scheduler says about itself. ``reason``: why the role is ``none`` (or, for a
    standby, the last step-down); ``holder``: this replica's lease holder id; ``epoch``: the
    fencing epoch it leads under; ``leader``: the lease holder it last saw (itself or
    another replica)."""

    role: SchedulerRole
    reason: str | None = None
    holder: str | None = None
    epoch: int | None = None
    leader: str | None = None


SchedulerState = Callable[[], SchedulerRole | SchedulerStatus]


class Health(NamedTuple):
    ok: bool
    reasons: list[str]


class Readiness(NamedTuple):
    """``/readyz`` in full: each check's state and every reason it is not ready."""

    ok: bool
    reasons: list[str]
    database: str  # reachable | unreachable
    migrations: str  # current | behind | unknown
    scheduler: SchedulerStatus | None  # None: no scheduler in this process

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ready" if self.ok else "not ready",
                               "reasons": self.reasons, "database": self.database,
                               "migrations": self.migrations}
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler.role
            out["lease"] = {"holder": self.scheduler.holder, "epoch": self.scheduler.epoch,
                            "leader": self.scheduler.leader}
        return out


def liveness() -> Health:
    """The process is alive if it can answer at all."""
    return Health(True, [])


def _database(engine: Engine) -> tuple[str, str, list[str]]:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return "unreachable", "unknown", [
            f"database unreachable at {engine.url.render_as_string(hide_password=True)}: "
            f"{cause}"]
    try:
        current, head = current_revision(engine), head_revision(engine)
    except SQLAlchemyError as exc:
        return "reachable", "unknown", [f"database schema unreadable: {exc}"]
    if current != head:
        return "reachable", "behind", [
            f"database schema at {current or 'no revision (empty database)'}, the code "
            f"needs {head}: run `reconciler db upgrade`"]
    return "reachable", "current", []


def database_reasons(engine: Engine) -> list[str]:
    """Why the database is not usable — empty when it answers and its schema is current."""
    return _database(engine)[2]


def scheduler_status(state: SchedulerRole | SchedulerStatus | str | None
                     ) -> SchedulerStatus | None:
    """A role or a status, as a status (``None`` stays ``None``: no scheduler here)."""
    if state is None or isinstance(state, SchedulerStatus):
        return state
    return SchedulerStatus(state)  # type: ignore[arg-type]  # checked by scheduler_reasons


def scheduler_reasons(state: SchedulerRole | SchedulerStatus | str | None) -> list[str]:
    """``None`` means the process runs no scheduler: nothing to check."""
    status = scheduler_status(state)
    if status is None or status.role in ("leader", "standby"):
        return []
    if status.role == "none":
        if status.reason:
            return [f"scheduler neither leader nor standby: {status.reason}"]
        return [NO_ROLE_REASON]
    return [f"scheduler reported an unknown role {status.role!r} (expected leader, standby, "
            "none)"]


def readiness_report(engine: Engine, scheduler_state: SchedulerState | None = None
                     ) -> Readiness:
    """Every check, its state and its reasons (what ``/readyz`` answers)."""
    database, migrations, reasons = _database(engine)
    status = scheduler_status(scheduler_state()) if scheduler_state is not None else None
    reasons = reasons + scheduler_reasons(status)
    return Readiness(not reasons, reasons, database, migrations, status)


def readiness(engine: Engine, scheduler_state: SchedulerState | None = None) -> Health:
    """Ready to serve and work: database reachable and current, scheduler leased or standby."""
    report = readiness_report(engine, scheduler_state)
    return Health(report.ok, report.reasons)
